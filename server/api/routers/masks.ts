// Instance masks: SAM click-to-segment (the photo's embedding comes from a sam-encode job; each click is decoded
// here), uploads of painted or imported mask images, and SAM automatic-mask-generator JSON. Every mask is stored
// as a greyscale PNG at the photo's size (server/sam/masks.ts).
import { z } from 'zod';
import type { ServerServices } from '../../services.ts';
import { AmgFormatError, parseAmgJson } from '../../sam/amg.ts';
import { MaskError, maskToPng, readMaskImage, resizeMask } from '../../sam/masks.ts';
import { getSamService } from '../../sam/service.ts';
import { UploadError } from '../../storage/images.ts';
import { ConflictError, type Project } from '../../storage/projects.ts';
import { requestSamEmbedding } from '../../studio/projects.ts';
import { mapErrors } from '../errors.ts';
import { publicProcedure, router } from '../trpc.ts';

const id = z.string().min(1).max(128);
/** Imported candidates shown at once; the generator's largest masks come first. */
const MAX_CANDIDATES = 48;

function photoOf(project: Project): NonNullable<Project['photo']> & { width: number; height: number } {
  const photo = project.photo;
  if (!photo || !photo.width || !photo.height) throw new ConflictError('this project has no photo yet: upload one first');
  return photo as NonNullable<Project['photo']> & { width: number; height: number };
}

function formProject(services: ServerServices, form: FormData): Project {
  const value = form.get('projectId');
  if (typeof value !== 'string') throw new UploadError("give the project as the form field 'projectId'");
  return services.projects.require(id.parse(value));
}

function formFile(form: FormData, what: string): File {
  const value = form.get('file');
  if (!(value instanceof Blob)) throw new UploadError(`attach the ${what} as the file field 'file'`);
  return value as File;
}

/** Mask errors are the user's to fix: they come back as BAD_REQUEST with their message. */
async function userErrors<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof MaskError || error instanceof AmgFormatError) throw new UploadError(error.message);
    throw error;
  }
}

const point = z.object({ x: z.number().finite(), y: z.number().finite(), positive: z.boolean() });

export const masksRouter = router({
  /** Whether click-to-segment is ready for the project's photo; starts the sam-encode job when nothing is making the embedding. */
  prepare: publicProcedure.input(z.object({ projectId: id })).mutation(({ ctx, input }) =>
    mapErrors(async () => {
      const result = await requestSamEmbedding(await ctx.services(), input.projectId);
      return result.ready ? { ready: true as const, jobId: null } : { ready: false as const, jobId: result.job.id };
    }),
  ),

  /** One decoder run: positive/negative points and an optional box, in photo pixels → the mask as a PNG data URL. */
  segment: publicProcedure
    .input(z.object({ projectId: id, points: z.array(point).max(64), box: z.tuple([z.number(), z.number(), z.number(), z.number()]).nullish() }))
    .mutation(({ ctx, input }) =>
      mapErrors(async () => {
        const services = await ctx.services();
        const project = services.projects.require(input.projectId);
        const photo = photoOf(project);
        if (input.points.length === 0 && !input.box) throw new UploadError('click on the object or drag a box around it');
        if (!project.samEmbeddingSha256) throw new ConflictError('click-to-segment is still preparing this photo (a few seconds): try again when the tool says it is ready');
        const started = Date.now();
        const mask = await getSamService(services.artifacts).segment(project.samEmbeddingSha256, { points: input.points, box: input.box ?? null });
        if (mask.width !== photo.width || mask.height !== photo.height) throw new ConflictError('the SAM embedding belongs to another photo: reload the page');
        const png = await maskToPng(mask.mask, mask.width, mask.height);
        return { dataUrl: `data:image/png;base64,${png.toString('base64')}`, score: mask.score, area: mask.area, ms: Date.now() - started };
      }),
    ),

  /** FormData: projectId, file (a mask image, any size with the photo's shape) → stored at the photo's size. */
  upload: publicProcedure.input(z.instanceof(FormData)).mutation(({ ctx, input }) =>
    mapErrors(() =>
      userErrors(async () => {
        const services = await ctx.services();
        const project = formProject(services, input);
        const photo = photoOf(project);
        const file = formFile(input, 'mask');
        if (file.size > services.config.maxUploadBytes) throw new UploadError(`the mask is larger than ${(services.config.maxUploadBytes / 1048576).toFixed(0)} MB`);
        const name = typeof file.name === 'string' && file.name ? file.name : 'the mask';
        const { mask, area } = await readMaskImage(new Uint8Array(await file.arrayBuffer()), photo, name, services.config.maxUploadPixels);
        if (area === 0) throw new UploadError(`${name} is empty: nothing is marked (white or opaque) in it`);
        const stored = await services.artifacts.put(await maskToPng(mask, photo.width, photo.height), 'image/png');
        return { sha256: stored.sha256, area, coverage: area / (photo.width * photo.height) };
      }),
    ),
  ),

  /** FormData: projectId, file (SAM automatic-mask-generator JSON, COCO RLE) → candidate masks to pick from. */
  importSamJson: publicProcedure.input(z.instanceof(FormData)).mutation(({ ctx, input }) =>
    mapErrors(() =>
      userErrors(async () => {
        const services = await ctx.services();
        const project = formProject(services, input);
        const photo = photoOf(project);
        const file = formFile(input, 'JSON file');
        if (file.size > services.config.maxUploadBytes) throw new UploadError(`the JSON file is larger than ${(services.config.maxUploadBytes / 1048576).toFixed(0)} MB`);
        const candidates = parseAmgJson(await file.text(), services.config.maxUploadPixels)
          .filter((candidate) => candidate.area > 0)
          .sort((a, b) => b.area - a.area);
        if (candidates.length === 0) throw new UploadError('every mask in the file is empty');
        const shown: { index: number; sha256: string; coverage: number; predictedIou: number | null; stabilityScore: number | null }[] = [];
        // one photo-sized mask in memory at a time
        for (const candidate of candidates.slice(0, MAX_CANDIDATES)) {
          const mask = resizeMask(candidate.decode(), candidate.width, candidate.height, photo, `mask ${candidate.index} (${candidate.width}×${candidate.height})`);
          let area = 0;
          for (const value of mask) area += value;
          const stored = await services.artifacts.put(await maskToPng(mask, photo.width, photo.height), 'image/png');
          shown.push({ index: candidate.index, sha256: stored.sha256, coverage: area / (photo.width * photo.height), predictedIou: candidate.predictedIou, stabilityScore: candidate.stabilityScore });
        }
        return { total: candidates.length, candidates: shown };
      }),
    ),
  ),
});
