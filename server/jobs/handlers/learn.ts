// The `learn` job's handler: runs trainer/learn's learn() on the job's artifacts, turns its events into job progress
// (loss terms as metrics, attention maps and previews as PNG artifacts), mirrors each of its checkpoints into the
// job's checkpoint store so any worker can resume the run, and stores the concept folder as a tree artifact.
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { encodePng } from '../../../trainer/io/image.ts';
import { loadTrainingMask } from '../../../trainer/learn/data.ts';
import type { LearnEvent, TokenAttentionMap } from '../../../trainer/learn/events.ts';
import { learn, type LearnResult } from '../../../trainer/learn/learn.ts';
import { resolveOptions, type DeepPartial, type LearnOptions } from '../../../trainer/learn/options.ts';
import { JobInputError, type ImageRef, type JobContext, type JsonValue } from '../contract.ts';
import { resolveBaseModel } from './base-model.ts';
import type { LearnJobInput, LearnJobResult } from '../types/learn.ts';

/** Unless the submission says otherwise, a job checkpoints this often, so a takeover repeats at most this many steps. */
export const JOB_CHECKPOINT_EVERY = 10;
/** learn() keeps its checkpoint as this JSON file plus the tensor file it names. */
const CHECKPOINT_STATE_FILE = 'checkpoint.json';


export async function runLearnJob(context: JobContext<LearnJobInput>): Promise<LearnJobResult> {
  const { input } = context;
  const model = resolveBaseModel(input.model, context.workerId);
  const options = { checkpointEvery: JOB_CHECKPOINT_EVERY, ...input.options } as DeepPartial<LearnOptions>;
  try {
    // the worker's class-image cache is the worker's business, not a folder a submission may write into
    if (options.prior?.cacheDir != null) throw new Error('prior.cacheDir cannot be set by a job; the worker chooses it');
    resolveOptions(input.preset, options);
  } catch (error) {
    throw new JobInputError(`learn options: ${(error as Error).message}`);
  }
  const image = await inputPath(context, input.image, 'the photo');
  const masks = await Promise.all(input.masks.map((sha256, i) => inputPath(context, sha256, `mask ${i}`)));
  await checkReadable(image, masks);

  const checkpointDir = join(context.workDir, 'checkpoint');
  const saved = await context.checkpoint.load();
  if (saved) {
    await mkdir(checkpointDir, { recursive: true });
    for (const [name, path] of Object.entries(saved.files)) await copyFile(path, join(checkpointDir, name));
  }

  const run = learn({
    model,
    image,
    masks,
    names: input.names,
    initializerWords: input.initializerWords,
    initializeFromNames: input.initializeFromNames,
    outDir: join(context.workDir, 'concept'),
    preset: input.preset,
    options,
    checkpointDir,
    resume: saved !== null,
    signal: context.signal,
  });
  const progress: ProgressState = { step: 0, total: 0, early: [] };
  let result: LearnResult;
  for (;;) {
    const next = await run.next();
    if (next.done) {
      result = next.value;
      break;
    }
    await report(context, next.value, progress, checkpointDir);
  }
  const concept = await context.artifacts.putTree(result.conceptDir);
  return {
    concept: concept.sha256,
    tokens: result.manifest.tokens.map((token) => token.token),
    manifest: JSON.parse(JSON.stringify(result.manifest)) as JsonValue,
    metrics: JSON.parse(JSON.stringify(result.metrics)) as JsonValue,
  };
}

async function inputPath(context: JobContext<LearnJobInput>, sha256: string, what: string): Promise<string> {
  if (!context.artifacts.has(sha256)) throw new JobInputError(`${what} (artifact ${sha256}) is not in the artifact store`);
  return context.artifacts.pathOf(sha256);
}

/** Unreadable images and empty masks are bad input: they would fail the same way on every attempt. */
async function checkReadable(image: string, masks: string[]): Promise<void> {
  try {
    await sharp(image).metadata();
  } catch (error) {
    throw new JobInputError(`the photo cannot be read: ${(error as Error).message}`);
  }
  for (const [i, mask] of masks.entries()) {
    try {
      await loadTrainingMask(mask, 64);
    } catch (error) {
      throw new JobInputError(`mask ${i}: ${(error as Error).message}`);
    }
  }
}

interface ProgressState {
  step: number;
  /** 0 until learn() has said how many steps there are */
  total: number;
  /** what arrived before that (the attention maps before learning), sent with the first progress event */
  early: { images: ImageRef[]; metrics: Record<string, number> }[];
}

async function report(context: JobContext<LearnJobInput>, event: LearnEvent, progress: ProgressState, checkpointDir: string): Promise<void> {
  const position = () => ({ step: progress.step, total: progress.total });
  switch (event.type) {
    case 'start': {
      progress.total = event.totalSteps;
      progress.step = event.resumedFrom ? (event.resumedFrom.phase === 2 ? event.phaseSteps[1] : 0) + event.resumedFrom.step : 0;
      context.log(`learning ${event.tokens.join(' ')} on ${event.engine}${event.resumedFrom ? `, resumed at phase ${event.resumedFrom.phase} step ${event.resumedFrom.step}` : ''}`);
      const images = progress.early.flatMap((early) => early.images);
      const metrics = Object.assign({}, ...progress.early.map((early) => early.metrics)) as Record<string, number>;
      progress.early = [];
      context.progress({ ...position(), phase: 'start', ...(images.length ? { images, metrics } : {}) });
      return;
    }
    case 'prepare':
      context.progress({ ...position(), phase: 'class images', message: `class images ${event.done}/${event.total}` });
      return;
    case 'phase':
      context.log(`phase ${event.phase}: ${event.steps} steps`);
      return;
    case 'step':
      progress.step = event.globalStep;
      context.progress({
        ...position(),
        phase: `phase ${event.phase}`,
        metrics: { loss: event.loss, ...event.terms, lr: event.lr, gradNorm: event.gradNorm, timestep: event.timestep },
        etaMs: event.etaMs,
      });
      return;
    case 'attention': {
      const images: ImageRef[] = [];
      for (const map of event.maps) images.push(await context.putImage(await attentionPng(map), 'image/png', `attention:${map.token}`));
      const metrics = Object.fromEntries(event.mass.map((mass) => [`attentionInside:${mass.token}`, mass.own]));
      if (progress.total === 0) progress.early.push({ images, metrics });
      else context.progress({ ...position(), phase: `phase ${event.phase}`, metrics, images });
      return;
    }
    case 'preview':
      context.progress({ ...position(), phase: `phase ${event.phase}`, images: [await context.putImage(await encodePng(event.image), 'image/png', 'preview')] });
      return;
    case 'checkpoint':
      await mirrorCheckpoint(context, checkpointDir, event.phase, event.step);
      return;
    case 'done':
      return;
  }
}

/** Copies learn()'s checkpoint (its state file and the tensor file that names) into the job's checkpoint store. */
async function mirrorCheckpoint(context: JobContext<LearnJobInput>, dir: string, phase: number, step: number): Promise<void> {
  const statePath = join(dir, CHECKPOINT_STATE_FILE);
  const { tensors } = JSON.parse(await readFile(statePath, 'utf8')) as { tensors: string };
  await context.checkpoint.save({ phase, step }, { [CHECKPOINT_STATE_FILE]: { path: statePath }, [tensors]: { path: join(dir, tensors) } });
}

/** A head-averaged attention map as a grey PNG, scaled so its peak is white. */
function attentionPng({ map }: TokenAttentionMap): Promise<Buffer> {
  let peak = 0;
  for (const value of map.data) peak = Math.max(peak, value);
  const gray = new Uint8Array(map.data.length);
  for (let i = 0; i < gray.length; i++) gray[i] = peak > 0 ? Math.round((255 * map.data[i]!) / peak) : 0;
  return encodePng({ width: map.width, height: map.height, data: gray });
}
