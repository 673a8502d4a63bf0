// Projects and their instances. Uploads are FormData mutations (the client must send them through httpLink: a
// batch link turns FormData into {}).
import { z } from 'zod';
import type { ServerServices } from '../../services.ts';
import { assertSha256 } from '../../storage/artifacts.ts';
import { inspectPhoto, UploadError } from '../../storage/images.ts';
import { mapErrors } from '../errors.ts';
import { publicProcedure, router } from '../trpc.ts';

const id = z.string().min(1).max(128);
const projectName = z.string().trim().min(1, 'a project needs a name').max(200);
/** An instance's name becomes its token in prompts, so it is one word. */
const instanceName = z
  .string()
  .trim()
  .min(1, 'an instance needs a name')
  .max(64)
  .regex(/^[\p{L}\p{N}_-]+$/u, 'an instance name is one word: letters, digits, _ and - only');
const color = z.string().regex(/^#[0-9a-fA-F]{6}$/, 'a colour is #rrggbb');
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 is 64 lowercase hex digits');

function formText(form: FormData, name: string): string | undefined {
  const value = form.get(name);
  if (value === null) return undefined;
  if (typeof value !== 'string') throw new UploadError(`form field '${name}' must be text`);
  return value;
}

function formFile(form: FormData, name: string): File {
  const value = form.get(name);
  if (!(value instanceof Blob)) throw new UploadError(`attach the photo as the file field '${name}'`);
  return value as File;
}

async function storePhoto(services: ServerServices, file: File) {
  if (file.size > services.config.maxUploadBytes) {
    throw new UploadError(`the photo is ${(file.size / 1048576).toFixed(1)} MB; the limit is ${(services.config.maxUploadBytes / 1048576).toFixed(0)} MB`);
  }
  const bytes = new Uint8Array(await file.arrayBuffer());
  const info = await inspectPhoto(bytes, { maxBytes: services.config.maxUploadBytes, maxPixels: services.config.maxUploadPixels });
  const ref = await services.artifacts.put(bytes, info.mediaType);
  return { sha256: ref.sha256, mediaType: info.mediaType, width: info.width, height: info.height };
}

function requireStored(services: ServerServices, value: string | null | undefined): void {
  if (value && !services.artifacts.has(assertSha256(value))) throw new UploadError(`artifact ${value} has not been uploaded`);
}

export const projectsRouter = router({
  list: publicProcedure
    .input(z.object({ limit: z.number().int().min(1).max(500).optional(), before: id.optional() }).optional())
    .query(({ ctx, input }) => mapErrors(async () => (await ctx.services()).projects.list(input ?? {}))),

  get: publicProcedure.input(z.object({ id })).query(({ ctx, input }) => mapErrors(async () => (await ctx.services()).projects.detail(input.id))),

  /** FormData: name (text), photo (file: JPEG, PNG or WebP). */
  create: publicProcedure.input(z.instanceof(FormData)).mutation(({ ctx, input }) =>
    mapErrors(async () => {
      const services = await ctx.services();
      const name = projectName.parse(formText(input, 'name') ?? '');
      const photo = await storePhoto(services, formFile(input, 'photo'));
      return services.projects.create({ name, photo });
    }),
  ),

  /** FormData: id (text), photo (file). Clears what belonged to the old photo (SAM embedding, thumbnail). */
  replacePhoto: publicProcedure.input(z.instanceof(FormData)).mutation(({ ctx, input }) =>
    mapErrors(async () => {
      const services = await ctx.services();
      const projectId = id.parse(formText(input, 'id') ?? '');
      services.projects.require(projectId);
      return services.projects.update(projectId, { photo: await storePhoto(services, formFile(input, 'photo')) });
    }),
  ),

  update: publicProcedure
    .input(
      z.object({
        id,
        name: projectName.optional(),
        baseModel: z.string().max(500).nullish(),
        settings: z.record(z.string(), z.unknown()).optional(),
        thumbnailSha256: sha256.nullish(),
      }),
    )
    .mutation(({ ctx, input }) =>
      mapErrors(async () => {
        const services = await ctx.services();
        requireStored(services, input.thumbnailSha256);
        const { id: projectId, ...changes } = input;
        return services.projects.update(projectId, changes);
      }),
    ),

  /** Cancels the project's unfinished jobs, then deletes it with its instances, concepts and generations. */
  delete: publicProcedure.input(z.object({ id })).mutation(({ ctx, input }) =>
    mapErrors(async () => {
      const services = await ctx.services();
      services.projects.require(input.id);
      for (const job of services.jobs.list({ projectId: input.id, statuses: ['queued', 'running'], limit: 500 })) await services.jobs.cancel(job.id);
      services.projects.delete(input.id);
      return { id: input.id };
    }),
  ),

  addInstance: publicProcedure
    .input(z.object({ projectId: id, name: instanceName, maskSha256: sha256.nullish(), color: color.nullish(), prompts: z.record(z.string(), z.unknown()).optional() }))
    .mutation(({ ctx, input }) =>
      mapErrors(async () => {
        const services = await ctx.services();
        requireStored(services, input.maskSha256);
        const { projectId, ...instance } = input;
        return services.projects.addInstance(projectId, instance);
      }),
    ),

  updateInstance: publicProcedure
    .input(z.object({ id, name: instanceName.optional(), maskSha256: sha256.nullish(), color: color.nullish(), prompts: z.record(z.string(), z.unknown()).optional() }))
    .mutation(({ ctx, input }) =>
      mapErrors(async () => {
        const services = await ctx.services();
        requireStored(services, input.maskSha256);
        const { id: instanceId, ...changes } = input;
        return services.projects.updateInstance(instanceId, changes);
      }),
    ),

  deleteInstance: publicProcedure.input(z.object({ id })).mutation(({ ctx, input }) =>
    mapErrors(async () => {
      (await ctx.services()).projects.deleteInstance(input.id);
      return { id: input.id };
    }),
  ),

  reorderInstances: publicProcedure
    .input(z.object({ projectId: id, ids: z.array(id).max(1000) }))
    .mutation(({ ctx, input }) => mapErrors(async () => (await ctx.services()).projects.reorderInstances(input.projectId, input.ids))),
});
