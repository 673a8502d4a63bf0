// The `compose` job's handler: loads the base model and the concept folders (tokens renamed to the names the prompt
// uses), runs compose() with live x̂0 previews as progress images, stores the images and the compose record, and
// optionally repeats the same seed without box control for a side-by-side comparison.
import { join } from 'node:path';
import { loadConcepts } from '../../../trainer/concepts/load.ts';
import { encodePng, tensorToRgbImages } from '../../../trainer/io/image.ts';
import { StableDiffusionPipeline } from '../../../trainer/pipelines/stable_diffusion.ts';
import { initRuntime } from '../../../trainer/runtime/backend.ts';
import { compose, type ComposeEvent } from '../../../trainer/synth/compose.ts';
import { resolveControl, type ControlOverrides } from '../../../trainer/synth/options.ts';
import { JobInputError, type ImageRef, type JobContext, type JsonValue } from '../contract.ts';
import { resolveBaseModel } from './base-model.ts';
import type { ComposeJobInput, ComposeJobResult, ComposeVariantResult } from '../types/compose.ts';

export async function runComposeJob(context: JobContext<ComposeJobInput>): Promise<ComposeJobResult> {
  const { input } = context;
  const modelDir = resolveBaseModel(input.model, context.workerId);
  try {
    resolveControl(input.preset, input.ablations, input.control as ControlOverrides);
  } catch (error) {
    throw new JobInputError((error as Error).message);
  }
  const conceptDirs: { dir: string; rename?: Record<string, string>; loraScale?: number }[] = [];
  for (const [i, concept] of input.concepts.entries()) {
    if (!context.artifacts.has(concept.folder)) throw new JobInputError(`concept folder ${i} (artifact ${concept.folder}) is not in the artifact store`);
    const dir = join(context.workDir, 'concepts', String(i));
    await context.artifacts.materializeTree(concept.folder, dir);
    conceptDirs.push({ dir, rename: concept.rename, loraScale: concept.loraScale });
  }

  await initRuntime();
  const pipe = StableDiffusionPipeline.fromPretrained(modelDir);
  try {
    loadConcepts(pipe, conceptDirs);
  } catch (error) {
    throw new JobInputError(`the learned concepts cannot be loaded: ${(error as Error).message}`);
  }

  const runs = input.compareWithoutControl && input.preset !== 'off' ? (['box control', 'no box control'] as const) : (['box control'] as const);
  const total = input.steps * runs.length;
  const variants: ComposeVariantResult[] = [];
  // the box-control run (always the first) is what the job reports as its settings
  let firstRun: Pick<ComposeJobResult, 'height' | 'width' | 'guidanceScale' | 'guidanceRescale' | 'control'> | null = null;
  for (const [run, variant] of runs.entries()) {
    const preset = variant === 'box control' ? input.preset : 'off';
    const offset = run * input.steps;
    // compose() reports synchronously; images are stored in order and each progress event waits for its own.
    let pending: Promise<void> = Promise.resolve();
    let started = false;
    const onEvent = (event: ComposeEvent) => {
      if (event.type === 'start') started = true;
      if (event.type === 'step') {
        const metrics = event.loss === null ? undefined : { loss: event.loss };
        pending = pending.then(() => context.progress({ step: offset + event.step + 1, total, phase: variant, ...(metrics ? { metrics } : {}) }));
      } else if (event.type === 'preview') {
        const images = event.images;
        pending = pending.then(async () => {
          const refs: ImageRef[] = [];
          for (const [i, image] of images.entries()) refs.push(await context.putImage(await encodePng(image), 'image/png', `preview:${i}`));
          context.progress({ step: offset + event.step + 1, total, phase: variant, message: `x̂0 at step ${event.step + 1}`, images: refs });
        });
      }
    };
    let result;
    try {
      result = await compose(pipe, {
        prompt: input.prompt,
        negativePrompt: input.negativePrompt,
        boxes: input.boxes,
        subjects: input.subjects,
        seed: input.seed,
        batch: input.batch,
        steps: input.steps,
        guidanceScale: input.guidanceScale,
        guidanceRescale: input.guidanceRescale,
        preset,
        ablations: preset === 'off' ? [] : input.ablations,
        control: preset === 'off' ? {} : (input.control as ControlOverrides),
        previewEvery: input.previewEvery,
        signal: context.signal,
        onEvent,
      });
    } catch (error) {
      // compose() checks the prompt, boxes, subjects and knobs before it starts: those errors recur on every attempt.
      if (!started && (error as Error).name !== 'AbortError') throw new JobInputError((error as Error).message);
      throw error;
    } finally {
      await pending;
    }
    try {
      const rgb = tensorToRgbImages(result.images);
      const images: string[] = [];
      for (const image of rgb) images.push((await context.artifacts.put(await encodePng(image), 'image/png')).sha256);
      const record = { ...result.record, model: modelDir, concepts: input.concepts, images };
      const stored = await context.artifacts.putJson(record);
      variants.push({ variant, preset, images, record: stored.sha256, subjects: result.record.subjects.map((s) => s.text), seconds: result.record.seconds });
      if (run === 0) {
        const { height, width, guidanceScale, guidanceRescale } = result.record;
        firstRun = { height, width, guidanceScale, guidanceRescale, control: JSON.parse(JSON.stringify(result.record.control)) as JsonValue };
      }
      context.log(`${variant}: ${images.length} image(s) in ${result.record.seconds.toFixed(1)} s`);
    } finally {
      result.images.dispose();
      result.latents.dispose();
    }
  }
  if (!firstRun) throw new Error('compose job finished without its box-control run');
  return { model: modelDir, ...firstRun, variants };
}
