// Box-controlled composition (MIFO synthesis, spec §2): DDIM + CFG sampling in which, before each of the first G
// steps, the latents descend the gradient of the in-box/out-of-box attention losses, every attention layer is
// bounded by the subjects' regions, and from step N on the regions are refined by clustering self-attention.
// One library call for the CLI and the server's jobs: AbortSignal for cancellation, events for progress.
import { tf } from '../runtime/backend.ts';
import { tensorToRgbImages, type RgbImage } from '../io/image.ts';
import type { StableDiffusionPipeline } from '../pipelines/stable_diffusion.ts';
import { guidedPrediction } from '../pipelines/guidance.ts';
import type { SchedulerConfig } from '../schedulers/scheduling_utils.ts';
import { assertConceptTokensLoaded } from '../concepts/load.ts';
import { AlphaClock } from './alpha.ts';
import { BoundedAttentionController, gridAtLevel } from './controller.ts';
import { layersByOrder, selectLayers } from './layers.ts';
import { resolveControl, type AblationName, type ControlOverrides, type PresetName, type SynthesisControl } from './options.ts';
import { boxMask, boxSpan, validateBox, type Box } from './regions.ts';
import { analysePrompt, resolveSubjects, type Subject } from './tokens.ts';

/** The reference builds its DDIM scheduler from the betas only: steps_offset 0 (timesteps 980 … 0 for 50 steps). */
export const REFERENCE_SCHEDULER_OVERRIDES: SchedulerConfig = { steps_offset: 0, clip_sample: false, set_alpha_to_one: false, timestep_spacing: 'leading' };

export interface ComposeOptions {
  prompt: string;
  negativePrompt?: string;
  /** one normalised box (x0, y0, x1, y1; origin top left) per subject */
  boxes: readonly (readonly number[])[];
  /** the words each box holds, one per box; default: the prompt's placeholder tokens, else its noun phrases, in order */
  subjects?: readonly string[];
  seed?: number;
  batch?: number;
  steps?: number;
  /** classifier-free guidance scale (≤ 1 disables CFG; default: the model's) */
  guidanceScale?: number;
  /** diffusers' guidance_rescale φ in [0, 1] (default: the model's, see GenerationDefaults): see guidedPrediction */
  guidanceRescale?: number;
  height?: number;
  width?: number;
  preset?: PresetName;
  ablations?: readonly AblationName[];
  control?: ControlOverrides;
  /** decode an x̂0 preview every k steps (0: never) */
  previewEvery?: number;
  signal?: AbortSignal;
  onEvent?: (event: ComposeEvent) => void;
}

export interface MaskSnapshot {
  height: number;
  width: number;
  /** [sample][subject], row-major, 1 = the subject's region */
  masks: Uint8Array[][];
}

export type ComposeEvent =
  | { type: 'start'; steps: number; samples: number; timesteps: number[]; subjects: Subject[]; masks: MaskSnapshot }
  | { type: 'guidance'; step: number; iteration: number; loss: number; normalizedLoss: number; alpha: { cross: number; self: number }; stepSize: number }
  | { type: 'masks'; step: number; masks: MaskSnapshot; fellBack: number[][] }
  | { type: 'step'; step: number; total: number; timestep: number; loss: number | null }
  | { type: 'preview'; step: number; images: RgbImage[]; masks: MaskSnapshot };

export interface GuidanceIterationRecord {
  loss: number;
  normalizedLoss: number;
  alpha: { cross: number; self: number };
  /** L^CA per [sample][subject] */
  cross: number[][] | null;
  /** L^SA per [sample][subject] */
  self: number[][] | null;
}

export interface StepLossRecord {
  step: number;
  timestep: number;
  stepSize: number;
  iterations: GuidanceIterationRecord[];
}

/** Everything needed to reproduce a composition, plus what it produced (JSON-serialisable). */
export interface ComposeRecord {
  format: 'mifo-compose/1';
  prompt: string;
  negativePrompt: string;
  boxes: Box[];
  subjects: (Subject & { tokens: string[] })[];
  eosIndex: number;
  filterIndices: number[];
  seed: number;
  batch: number;
  steps: number;
  guidanceScale: number;
  guidanceRescale: number;
  height: number;
  width: number;
  preset: PresetName;
  ablations: AblationName[];
  control: SynthesisControl;
  scheduler: SchedulerConfig;
  timesteps: number[];
  /** the loss and mask-map layers; the bounded ones, or null where every layer is bounded */
  layers: { loss: { order: number; id: string }[]; maps: { order: number; id: string }[]; bounded: { order: number; id: string }[] | null };
  losses: StepLossRecord[];
  refinements: { step: number; fellBack: number[][] }[];
  /** final subject masks on the mask-map grid: masks[sample][subject] is row-major 0/1 */
  masks: { height: number; width: number; masks: number[][][] };
  seconds: number;
}

export interface ComposeResult {
  /** NHWC in [0, 1] */
  images: tf.Tensor4D;
  latents: tf.Tensor4D;
  record: ComposeRecord;
}

function orderAndId(layers: readonly { order: number; id: string }[]): { order: number; id: string }[] {
  return layers.map(({ order, id }) => ({ order, id }));
}

function snapshot(height: number, width: number, masks: Uint8Array[][]): MaskSnapshot {
  return { height, width, masks };
}

export async function compose(pipe: StableDiffusionPipeline, options: ComposeOptions): Promise<ComposeResult> {
  const started = Date.now();
  const preset = options.preset ?? 'mifo';
  const ablations = [...(options.ablations ?? [])];
  const control = resolveControl(preset, ablations, options.control);
  const steps = options.steps ?? 50;
  const guidanceScale = options.guidanceScale ?? pipe.generationDefaults.guidance;
  const guidanceRescale = options.guidanceRescale ?? pipe.generationDefaults.guidanceRescale;
  const batch = options.batch ?? 1;
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const height = options.height ?? pipe.defaultSize;
  const width = options.width ?? pipe.defaultSize;
  const previewEvery = options.previewEvery ?? 0;
  const negativePrompt = options.negativePrompt ?? '';
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`steps must be a positive integer, got ${steps}`);
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`batch must be a positive integer, got ${batch}`);
  if (!(guidanceScale >= 0)) throw new Error(`guidance scale must be ≥ 0, got ${guidanceScale}`);
  if (!(guidanceRescale >= 0 && guidanceRescale <= 1)) throw new Error(`guidance rescale must be in [0, 1], got ${guidanceRescale}`);
  if (!Number.isInteger(previewEvery) || previewEvery < 0) throw new Error(`previewEvery must be an integer ≥ 0, got ${previewEvery}`);
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`seed must be an integer ≥ 0, got ${seed}`);
  if (control.refine && control.refineStart < 1) throw new Error('mask refinement needs at least one denoising step of attention maps: refineStart must be ≥ 1');
  const boxes = options.boxes.map((box, i) => validateBox(box, `box ${i + 1}`));
  if (boxes.length === 0) throw new Error('give at least one box');

  for (const text of [options.prompt, options.negativePrompt ?? '']) assertConceptTokensLoaded(pipe.tokenizer, text);
  const analysis = analysePrompt(pipe.tokenizer, options.prompt);
  const subjects = resolveSubjects(pipe.tokenizer, analysis, boxes.length, options.subjects);
  const unet = pipe.unet;
  const modelLayers = pipe.attentionLayers.synthesis;
  const lossOrders = control.lossLayers ?? modelLayers?.lossLayers;
  const mapOrders = control.mapLayers ?? modelLayers?.mapLayers;
  const lossLayers = lossOrders ? layersByOrder(unet.attentionLayers, lossOrders, 'loss layers') : selectLayers(unet.attentionLayers).loss;
  const mapLayers = mapOrders ? layersByOrder(unet.attentionLayers, mapOrders, 'map layers') : selectLayers(unet.attentionLayers).maps;
  const boundedOrders = control.boundedLayers ?? modelLayers?.boundedLayers ?? null;
  const boundedLayers = boundedOrders ? layersByOrder(unet.attentionLayers, boundedOrders, 'bounded layers') : null;
  const factor = pipe.vae.scaleFactor;
  if (!Number.isInteger(height / factor) || !Number.isInteger(width / factor) || height <= 0 || width <= 0) {
    throw new Error(`height and width must be positive multiples of ${factor}, got ${height}x${width}`);
  }
  const latentHeight = height / pipe.vae.scaleFactor;
  const latentWidth = width / pipe.vae.scaleFactor;
  const gridOf = (level: number): [number, number] => [gridAtLevel(latentHeight, level), gridAtLevel(latentWidth, level)];
  const mapLevels = new Set(mapLayers.map((l) => l.level));
  if (mapLevels.size !== 1) throw new Error(`mask-map layers must share one resolution, got levels ${[...mapLevels].join(', ')}`);
  const mapGrid = gridOf(mapLayers[0]!.level);
  if (control.boxControl) {
    for (const layer of lossLayers) {
      const [h, w] = gridOf(layer.level);
      boxes.forEach((box, i) => {
        const { rows, cols } = boxSpan(box, h, w);
        if (rows[1] <= rows[0] || cols[1] <= cols[0]) {
          throw new Error(`box ${i + 1} (${box.join(',')}) covers no pixel of the ${h}x${w} attention grid of ${layer.id}: make it larger`);
        }
      });
    }
  }

  const scheduler = pipe.makeScheduler(REFERENCE_SCHEDULER_OVERRIDES);
  const timesteps = Array.from(scheduler.setTimesteps(steps));
  const useCfg = guidanceScale > 1;
  const controller = control.boxControl
    ? new BoundedAttentionController({
        boxes,
        tokens: { subjects: subjects.map((s) => s.positions), filter: analysis.filterIndices, eos: analysis.eosIndex },
        leading: subjects.map((s) => s.leading),
        control,
        lossLayers,
        mapLayers,
        boundedLayers,
        mapGrid,
      })
    : null;
  const alphaClock = new AlphaClock(control.alphaSchedule, control.alphaIndexing, control.alpha);
  const currentMasks = () => snapshot(mapGrid[0], mapGrid[1], controller ? controller.currentMasks(batch) : Array.from({ length: batch }, () => boxes.map((b) => boxMask(b, mapGrid[0], mapGrid[1]))));
  const emit = (event: ComposeEvent) => options.onEvent?.(event);

  const conditional = pipe.encodePrompt(Array(batch).fill(options.prompt));
  const unconditional = useCfg ? pipe.encodePrompt(Array(batch).fill(negativePrompt)) : null;
  const context = unconditional ? (tf.concat([unconditional, conditional], 0) as tf.Tensor3D) : conditional;
  let latents = pipe.initialLatents(batch, height, width, seed);
  const losses: StepLossRecord[] = [];
  const refinements: { step: number; fellBack: number[][] }[] = [];

  try {
    emit({ type: 'start', steps, samples: batch, timesteps, subjects, masks: currentMasks() });
    for (const [step, t] of timesteps.entries()) {
      options.signal?.throwIfAborted();
      let stepLoss: number | null = null;
      if (controller && step < control.guidanceSteps && (control.crossWeight > 0 || control.selfWeight > 0)) {
        const stepSize = control.stepSizeStart + ((control.stepSizeEnd - control.stepSizeStart) * step) / control.guidanceSteps;
        const record: StepLossRecord = { step, timestep: t, stepSize, iterations: [] };
        let normalizedLoss = Infinity;
        for (let iteration = 0; iteration < control.iterationsPerStep && !(normalizedLoss < control.lossStop); iteration++) {
          options.signal?.throwIfAborted();
          const alpha = { cross: alphaClock.next(step), self: alphaClock.next(step) };
          const evaluation = controller.evaluateGuidance(unet, latents, t, conditional, alpha);
          const next = tf.tidy(() => tf.sub(latents, tf.mul(evaluation.grad, stepSize)) as tf.Tensor4D);
          evaluation.grad.dispose();
          latents.dispose();
          latents = next;
          normalizedLoss = evaluation.normalizedLoss;
          stepLoss = evaluation.loss;
          record.iterations.push({ loss: evaluation.loss, normalizedLoss, alpha, cross: evaluation.cross, self: evaluation.self });
          emit({ type: 'guidance', step, iteration, loss: evaluation.loss, normalizedLoss, alpha, stepSize });
          await new Promise((resolve) => setImmediate(resolve));
        }
        losses.push(record);
      }
      if (controller && control.refine && step >= control.refineStart && (!controller.hasRefinedMasks || step % control.refineEvery === 0)) {
        const fellBack = controller.refine();
        refinements.push({ step, fellBack });
        emit({ type: 'masks', step, masks: currentMasks(), fellBack });
      }

      controller?.setPass('denoising', { samples: batch, cfg: useCfg });
      const { prevSample, predOriginalSample } = tf.tidy(() => {
        const input = useCfg ? (tf.concat([latents, latents], 0) as tf.Tensor4D) : latents;
        const out = unet.forward(input, [t], context, controller ? { controller } : {});
        let noisePred = out;
        if (useCfg) {
          const [uncond, text] = tf.split(out, 2, 0) as [tf.Tensor4D, tf.Tensor4D];
          noisePred = guidedPrediction(uncond, text, guidanceScale, guidanceRescale);
        }
        const result = scheduler.step(noisePred, t, latents);
        return { prevSample: result.prevSample as tf.Tensor4D, predOriginalSample: result.predOriginalSample as tf.Tensor4D };
      });
      latents.dispose();
      latents = prevSample;
      if (previewEvery > 0 && ((step + 1) % previewEvery === 0 || step === timesteps.length - 1)) {
        const decoded = pipe.decodeLatents(predOriginalSample);
        emit({ type: 'preview', step, images: tensorToRgbImages(decoded), masks: currentMasks() });
        decoded.dispose();
      }
      predOriginalSample.dispose();
      emit({ type: 'step', step, total: timesteps.length, timestep: t, loss: stepLoss });
      await new Promise((resolve) => setImmediate(resolve));
    }
    const images = pipe.decodeLatents(latents);
    const finalMasks = currentMasks();
    const record: ComposeRecord = {
      format: 'mifo-compose/1',
      prompt: options.prompt,
      negativePrompt,
      boxes,
      subjects: subjects.map((s) => ({ ...s, tokens: s.positions.map((p) => analysis.tokens[p]!) })),
      eosIndex: analysis.eosIndex,
      filterIndices: analysis.filterIndices,
      seed,
      batch,
      steps,
      guidanceScale,
      guidanceRescale,
      height,
      width,
      preset,
      ablations,
      control,
      scheduler: { ...pipe.schedulerConfig, ...REFERENCE_SCHEDULER_OVERRIDES },
      timesteps,
      layers: { loss: orderAndId(lossLayers), maps: orderAndId(mapLayers), bounded: boundedLayers && orderAndId(boundedLayers) },
      losses,
      refinements,
      masks: { height: finalMasks.height, width: finalMasks.width, masks: finalMasks.masks.map((sample) => sample.map((m) => Array.from(m))) },
      seconds: (Date.now() - started) / 1000,
    };
    return { images, latents, record };
  } catch (error) {
    latents.dispose();
    throw error;
  } finally {
    tf.dispose([conditional, ...(unconditional ? [unconditional, context] : [])]);
    controller?.dispose();
  }
}
