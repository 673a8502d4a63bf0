// The studio's workflow: the base model it runs on, sample photos, new projects with a square crop, and the learn
// and compose steps built from a project's instances and learned tokens (the jobs router does the rest).
import { z } from 'zod';
import { JobInputError } from '../../jobs/contract.ts';
import { COMPOSE_ABLATIONS, COMPOSE_PRESETS, composeInput } from '../../jobs/types/compose.ts';
import { LEARN_PRESETS } from '../../jobs/types/learn.ts';
import { UploadError } from '../../storage/images.ts';
import { defaultModelInfo, type ModelInfo } from '../../studio/model-info.ts';
import { storeSquarePhoto, type SquareCrop } from '../../studio/photos.ts';
import { createProjectFromSample, learnedTokens, readSamples, submitCompose, submitLearn } from '../../studio/projects.ts';
import { mapErrors } from '../errors.ts';
import { publicProcedure, router } from '../trpc.ts';

const id = z.string().min(1).max(128);
const projectName = z.string().trim().min(1, 'give the project a name').max(200);

function formText(form: FormData, name: string): string | undefined {
  const value = form.get(name);
  if (value === null) return undefined;
  if (typeof value !== 'string') throw new UploadError(`form field '${name}' must be text`);
  return value;
}

function formCrop(form: FormData): SquareCrop | null {
  const text = formText(form, 'crop');
  if (text === undefined || text === '') return null;
  let crop: unknown;
  try {
    crop = JSON.parse(text);
  } catch {
    throw new UploadError(`the crop must be JSON {x, y, size}, got ${text.slice(0, 80)}`);
  }
  const parsed = z.object({ x: z.number().int().min(0), y: z.number().int().min(0), size: z.number().int().min(1) }).safeParse(crop);
  if (!parsed.success) throw new UploadError(`the crop must be whole pixels {x, y, size}, got ${text.slice(0, 80)}`);
  return parsed.data;
}

let modelInfo: { value: ModelInfo; at: number } | null = null;

export const studioRouter = router({
  /** The base model jobs use when they name none, and the square side it learns and composes at. */
  model: publicProcedure.query(() => {
    // Re-read now and then: the embedded model may be installed while the server runs.
    if (!modelInfo || Date.now() - modelInfo.at > 30_000) modelInfo = { value: defaultModelInfo(), at: Date.now() };
    return modelInfo.value;
  }),

  samples: publicProcedure.query(() => readSamples().map(({ id: sampleId, title, caption, photo, instances }) => ({ id: sampleId, title, caption, photo: `/samples/${photo}`, instances: instances.map((i) => i.name) }))),

  /** FormData: name, photo (JPEG/PNG/WebP), crop (JSON {x, y, size} in the upright photo's pixels; default: centred). */
  createProject: publicProcedure.input(z.instanceof(FormData)).mutation(({ ctx, input }) =>
    mapErrors(async () => {
      const services = await ctx.services();
      const name = projectName.parse(formText(input, 'name') ?? '');
      const file = input.get('photo');
      if (!(file instanceof Blob)) throw new UploadError("attach the photo as the file field 'photo'");
      const stored = await storeSquarePhoto(services, file, formCrop(input));
      const project = services.projects.create({ name, photo: stored.photo, settings: { original: stored.original } });
      services.projects.update(project.id, { thumbnailSha256: stored.thumbnailSha256 });
      // Click-to-segment needs the photo's embedding: start on it now, it is ready by the time the user clicks.
      await services.jobs.submit({ type: 'sam-encode', input: { image: stored.photo.sha256 }, projectId: project.id });
      return services.projects.require(project.id);
    }),
  ),

  openSample: publicProcedure.input(z.object({ sampleId: z.string().min(1).max(64), withMasks: z.boolean() })).mutation(({ ctx, input }) =>
    mapErrors(async () => createProjectFromSample(await ctx.services(), input.sampleId, { withMasks: input.withMasks })),
  ),

  /** A project's learned tokens, named after their instances: what compose prompts may use. */
  tokens: publicProcedure.input(z.object({ projectId: id })).query(({ ctx, input }) =>
    mapErrors(async () => {
      const detail = (await ctx.services()).projects.detail(input.projectId);
      return learnedTokens(detail.concepts, detail.instances);
    }),
  ),

  /** initializeFromNames: each token starts from its instance's name where the model knows the word (on unless said) */
  learn: publicProcedure
    .input(z.object({ projectId: id, preset: z.enum(LEARN_PRESETS), initializeFromNames: z.boolean().default(true) }))
    .mutation(({ ctx, input }) => mapErrors(async () => submitLearn(await ctx.services(), input.projectId, input.preset, input.initializeFromNames))),

  compose: publicProcedure
    .input(
      z.object({
        projectId: id,
        prompt: z.string().trim().min(1, 'write a prompt').max(1000),
        negativePrompt: z.string().max(1000).default(''),
        boxes: z.array(z.tuple([z.number(), z.number(), z.number(), z.number()])).min(1, 'draw one box per subject').max(8),
        seed: z.number().int().min(0).max(2 ** 31 - 1),
        batch: z.number().int().min(1).max(8),
        steps: z.number().int().min(1).max(200),
        /** default: the model's */
        guidanceScale: z.number().min(0).max(30).optional(),
        guidanceRescale: z.number().min(0).max(1).optional(),
        preset: z.enum(COMPOSE_PRESETS),
        ablations: z.array(z.enum(COMPOSE_ABLATIONS)).default([]),
        control: z.record(z.string(), z.unknown()).default({}),
        previewEvery: z.number().int().min(0).max(200).default(0),
        compareWithoutControl: z.boolean().default(false),
      }),
    )
    .mutation(({ ctx, input }) =>
      mapErrors(async () => {
        const { projectId, ...request } = input;
        const checked = composeInput.safeParse({ ...request, concepts: [] });
        if (!checked.success) throw new JobInputError(z.prettifyError(checked.error));
        return submitCompose(await ctx.services(), projectId, request);
      }),
    ),
});
