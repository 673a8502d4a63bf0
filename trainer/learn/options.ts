// Every hyper-parameter of the learning stage as a named option, with the spec's defaults (§1), the presets
// `paper`, `reference`, `fast` and `bas`, and the switches for the baselines and ablations of §5.
import { ATTENTION_MODES, type AttentionMode, type AttentionSchedule } from './losses.ts';
import { layerSelectionProblem, type LayerSelection } from '../models/attention_layers.ts';
import type { LearningLayers } from '../pipelines/attention_layers_config.ts';
import type { SamplingMode } from './sampling.ts';
import { isNonNegativeInteger } from '../util/numbers.ts';

export type LrSchedule = 'cosine' | 'constant';
export type Phase2Mode = 'lora' | 'full';
/** mean: vocabulary mean + tiny seeded noise (transformers ≥ 4.46 mean-resizing, the reference's behaviour);
 *  normal: 𝒩(0, 0.02²) (older transformers); bas: copies of rows [−3N, −2N) of the resized table (Break-a-Scene). */
export type TokenInit = 'mean' | 'normal' | 'bas';

export interface OptimizerOptions {
  learningRate: number;
  betas: [number, number];
  weightDecay: number;
  eps: number;
  /** total gradient norm clip */
  maxGradNorm: number;
  /** cosine: linear warm-up then one cosine decay to 0 (diffusers cosine_with_restarts, 1 cycle); constant: no warm-up */
  schedule: LrSchedule;
  warmupSteps: number;
}

export interface AttentionLossOptions extends AttentionSchedule {
  layers: LayerSelection;
}

export interface PriorOptions {
  classPrompt: string;
  numImages: number;
  weight: number;
  /** DDIM steps and guidance used once to generate the cached class images */
  generationSteps: number;
  guidance: number;
  /** cache folder; default: $MIFO_CACHE/class-images or ~/.cache/mifo/class-images */
  cacheDir: string | null;
}

export interface Phase1Options {
  enabled: boolean;
  steps: number;
  optimizer: OptimizerOptions;
  attention: AttentionLossOptions;
  reconstructionWeight: number;
  /** masked reconstruction loss (off: the plain diffusion loss over the whole latent) */
  maskedLoss: boolean;
  /** prior preservation in phase 1 (Break-a-Scene; no effect on the tokens, which the class prompt lacks) */
  prior: boolean;
}

export interface Phase2Options {
  enabled: boolean;
  steps: number;
  mode: Phase2Mode;
  loraRank: number;
  loraAlpha: number;
  optimizer: OptimizerOptions;
  attention: AttentionLossOptions;
  reconstructionWeight: number;
  maskedLoss: boolean;
  /** reset the non-placeholder token rows after every step (MIFO); Break-a-Scene lets them drift */
  pinVocabulary: boolean;
  /** prior preservation: each batch is [class image, instance image] */
  prior: boolean;
}

export interface LearnOptions {
  seed: number;
  /** image side used for learning; null: the model's native size */
  resolution: number | null;
  sampling: SamplingMode;
  flipProbability: number;
  tokenInit: TokenInit;
  phase1: Phase1Options;
  phase2: Phase2Options;
  /** class images for prior preservation (used by the phases that enable it) */
  prior: PriorOptions;
  /** save a resumable checkpoint every K steps (0: only when stopped and between phases) */
  checkpointEvery: number;
  /** emit the head-averaged attention map of every placeholder every M steps (0: never) */
  attentionMapEvery: number;
  /** emit a preview image every P steps (0: never) */
  previewEvery: number;
  previewSteps: number;
  previewGuidance: number;
  /** training timesteps (below t_s) and noise seed at which the attention-mass metrics are measured */
  metricTimesteps: number[];
}

export type PresetName = 'paper' | 'reference' | 'fast' | 'bas';
export const PRESET_NAMES: readonly PresetName[] = ['paper', 'reference', 'fast', 'bas'];

/** Decoder cross-attention at the two coarsest resolutions: cross indices 7-12 on SD2.1-base (1/32 and 1/16). */
export const PHASE1_LAYERS: LayerSelection = { kind: 'cross', places: ['up'], resolution: { coarsest: 2 } };
/** Encoder and decoder cross-attention at the coarsest resolution, mid excluded: {4,5,7,8,9} on SD2.1-base. */
export const PHASE2_LAYERS: LayerSelection = { kind: 'cross', places: ['down', 'up'], resolution: { coarsest: 1 } };

/** The spec's sets; a model folder may name its own (attention_layers.json) where these do not ground its words. */
export const SPEC_LEARNING_LAYERS: LearningLayers = { phase1: PHASE1_LAYERS, phase2: PHASE2_LAYERS };

/** AdamW with weight decay 1e-2, eps 1e-8 and clipping at 1, shared by every preset. */
function adamw(learningRate: number, schedule: LrSchedule, warmupSteps: number, beta2: number): OptimizerOptions {
  return { learningRate, betas: [0.9, beta2], weightDecay: 1e-2, eps: 1e-8, maxGradNorm: 1, schedule, warmupSteps };
}

function reference(layers: LearningLayers): LearnOptions {
  const attention = { rewardSteps: 200, timestepThreshold: 500, rewardWeight: 1e-2, penaltyWeight: 2e-2, rewardAlpha: 0.5 };
  return {
    seed: 0,
    resolution: null,
    sampling: 'joint',
    flipProbability: 0.5,
    tokenInit: 'mean',
    phase1: {
      enabled: true,
      steps: 600,
      optimizer: adamw(5e-3, 'cosine', 10, 0.99),
      attention: { mode: 'reward-penalty', ...attention, layers: layers.phase1 },
      reconstructionWeight: 1,
      maskedLoss: true,
      prior: false,
    },
    phase2: {
      enabled: true,
      steps: 400,
      mode: 'full',
      loraRank: 4,
      loraAlpha: 4,
      optimizer: adamw(2e-6, 'constant', 0, 0.99),
      attention: { mode: 'penalty', ...attention, layers: layers.phase2 },
      reconstructionWeight: 1,
      maskedLoss: true,
      pinVocabulary: true,
      prior: true,
    },
    prior: { classPrompt: 'a photo of a chair', numImages: 100, weight: 1, generationSteps: 50, guidance: 7.5, cacheDir: null },
    checkpointEvery: 100,
    attentionMapEvery: 50,
    previewEvery: 0,
    previewSteps: 50,
    previewGuidance: 7.5,
    metricTimesteps: [100, 200, 300, 400],
  };
}

/** LoRA phase 2 (rank 4 on UNet and text-encoder attention) with the learning rate LoRA needs. */
function withLora(options: LearnOptions): LearnOptions {
  return {
    ...options,
    phase2: {
      ...options.phase2,
      mode: 'lora',
      optimizer: { ...options.phase2.optimizer, learningRate: 1e-4 },
      prior: false,
    },
  };
}

const PRESETS: Record<PresetName, (layers: LearningLayers) => LearnOptions> = {
  // The reference code (Kareneveve/MIFO): 600 + 400 steps, full fine-tuning with chair prior preservation.
  reference,
  // The paper's schedule (200 reward + 600 penalty steps, then 400) with the studio's LoRA phase 2.
  paper: (layers) => {
    const base = withLora(reference(layers));
    return { ...base, phase1: { ...base.phase1, steps: 800 } };
  },
  // A few seconds on the embedded/test models: same losses, short schedules, frequent observation.
  fast: (layers) => {
    const base = withLora(reference(layers));
    return {
      ...base,
      phase1: {
        ...base.phase1,
        steps: 80,
        optimizer: { ...base.phase1.optimizer, warmupSteps: 5 },
        attention: { ...base.phase1.attention, rewardSteps: 25 },
      },
      phase2: { ...base.phase2, steps: 20, optimizer: { ...base.phase2.optimizer, learningRate: 1e-3 } },
      checkpointEvery: 0,
      attentionMapEvery: 20,
    };
  },
  // Break-a-Scene (google/break-a-scene): 400 + 400 steps, reward on max-normalised maps at every timestep, constant
  // LR, β₂ 0.999, prior preservation in both phases, BaS token initialisation, vocabulary rows free in phase 2.
  bas: (layers) => {
    const base = reference(layers);
    const attention = { ...base.phase1.attention, mode: 'bas' as const, rewardWeight: 1e-2, layers: layers.phase2 };
    return {
      ...base,
      tokenInit: 'bas',
      phase1: { ...base.phase1, steps: 400, optimizer: adamw(5e-4, 'constant', 0, 0.999), attention, prior: true },
      phase2: {
        ...base.phase2,
        steps: 400,
        optimizer: adamw(2e-6, 'constant', 0, 0.999),
        attention,
        pinVocabulary: false,
      },
      prior: { ...base.prior, classPrompt: 'a photo at the beach' },
      attentionMapEvery: 200,
    };
  },
};

export function presetOptions(name: PresetName, layers: LearningLayers = SPEC_LEARNING_LAYERS): LearnOptions {
  const make = PRESETS[name];
  if (!make) throw new Error(`unknown preset '${name}' (one of: ${PRESET_NAMES.join(', ')})`);
  return make(layers);
}

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends unknown[] ? T[K] : T[K] extends object | null ? DeepPartial<T[K]> : T[K] };

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `base` with `overrides` merged in; an override key the options do not have is an error naming it. */
export function mergeOptions<T>(base: T, overrides: DeepPartial<T> | undefined, path = ''): T {
  if (overrides === undefined) return base;
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [key, value] of Object.entries(overrides as Record<string, unknown>)) {
    if (value === undefined) continue;
    if (!(key in out)) throw new Error(`unknown learning option '${path}${key}'`);
    const current = out[key];
    const bothObjects = isPlainObject(current) && isPlainObject(value);
    // A resolution selection is a union; replace it whole rather than merging one form into the other.
    out[key] = bothObjects && key !== 'resolution' ? mergeOptions(current, value as DeepPartial<typeof current>, `${path}${key}.`) : value;
  }
  return out as T;
}

/** Deep-merges two sets of overrides (later wins); keys are checked when the result meets a preset. */
export function combineOverrides(a: DeepPartial<LearnOptions>, b: DeepPartial<LearnOptions>): DeepPartial<LearnOptions> {
  const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
  for (const [key, value] of Object.entries(b as Record<string, unknown>)) {
    if (value === undefined) continue;
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) && key !== 'resolution' ? combineOverrides(current as DeepPartial<LearnOptions>, value as DeepPartial<LearnOptions>) : value;
  }
  return out as DeepPartial<LearnOptions>;
}

/** Sets one option from "phase1.optimizer.learningRate=1e-3" style text (values parsed as JSON, else strings). */
export function parseOptionAssignment(text: string): DeepPartial<LearnOptions> {
  const equals = text.indexOf('=');
  if (equals <= 0) throw new Error(`expected KEY=VALUE, got '${text}'`);
  const keys = text.slice(0, equals).split('.');
  const raw = text.slice(equals + 1);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = raw;
  }
  return keys.reduceRight<unknown>((inner, key) => ({ [key]: inner }), value) as DeepPartial<LearnOptions>;
}

function check(condition: boolean, message: string): void {
  if (!condition) throw new Error(`invalid learning options: ${message}`);
}

const isPositive = (n: unknown) => typeof n === 'number' && Number.isFinite(n) && n > 0;
const isNonNegative = (n: unknown) => typeof n === 'number' && Number.isFinite(n) && n >= 0;

function validateOptimizer(o: OptimizerOptions, where: string): void {
  check(isNonNegative(o.learningRate), `${where}.learningRate must be ≥ 0`);
  check(Array.isArray(o.betas) && o.betas.length === 2 && o.betas.every((b) => b >= 0 && b < 1), `${where}.betas must be two numbers in [0, 1)`);
  check(isNonNegative(o.weightDecay), `${where}.weightDecay must be ≥ 0`);
  check(isPositive(o.eps), `${where}.eps must be > 0`);
  check(isPositive(o.maxGradNorm), `${where}.maxGradNorm must be > 0`);
  check(o.schedule === 'cosine' || o.schedule === 'constant', `${where}.schedule must be cosine or constant`);
  check(isNonNegativeInteger(o.warmupSteps), `${where}.warmupSteps must be a non-negative integer`);
}

function validateAttention(a: AttentionLossOptions, where: string): void {
  check(ATTENTION_MODES.includes(a.mode as AttentionMode), `${where}.mode must be one of ${ATTENTION_MODES.join(', ')}`);
  check(isNonNegativeInteger(a.rewardSteps), `${where}.rewardSteps must be a non-negative integer`);
  check(isNonNegative(a.timestepThreshold), `${where}.timestepThreshold must be ≥ 0`);
  check(isNonNegative(a.rewardWeight) && isNonNegative(a.penaltyWeight), `${where} weights must be ≥ 0`);
  check(Number.isFinite(a.rewardAlpha), `${where}.rewardAlpha must be a number`);
  const layersProblem = layerSelectionProblem(a.layers);
  check(layersProblem === null, `${where}.layers ${layersProblem}`);
}

/** SD's latents at 4096² already need about 20 GB for one UNet pass; anything larger is a typo. */
const MAX_RESOLUTION = 4096;

export function validateOptions(o: LearnOptions): LearnOptions {
  check(Number.isInteger(o.seed) && o.seed >= 0, 'seed must be a non-negative integer');
  check(o.resolution === null || (Number.isInteger(o.resolution) && o.resolution > 0 && o.resolution <= MAX_RESOLUTION), `resolution must be a positive integer up to ${MAX_RESOLUTION}, or null`);
  check(o.sampling === 'joint' || o.sampling === 'separate', 'sampling must be joint or separate');
  check(o.flipProbability >= 0 && o.flipProbability <= 1, 'flipProbability must be in [0, 1]');
  check(['mean', 'normal', 'bas'].includes(o.tokenInit), 'tokenInit must be mean, normal or bas');
  check(o.phase1.enabled || o.phase2.enabled, 'at least one phase must be enabled');
  for (const [name, phase] of [['phase1', o.phase1], ['phase2', o.phase2]] as const) {
    check(isNonNegativeInteger(phase.steps) && (!phase.enabled || phase.steps > 0), `${name}.steps must be a positive integer`);
    check(isNonNegative(phase.reconstructionWeight), `${name}.reconstructionWeight must be ≥ 0`);
    validateOptimizer(phase.optimizer, `${name}.optimizer`);
    validateAttention(phase.attention, `${name}.attention`);
  }
  check(o.phase2.mode === 'lora' || o.phase2.mode === 'full', 'phase2.mode must be lora or full');
  check(Number.isInteger(o.phase2.loraRank) && o.phase2.loraRank > 0, 'phase2.loraRank must be a positive integer');
  check(isPositive(o.phase2.loraAlpha), 'phase2.loraAlpha must be > 0');
  const prior = o.prior;
  if (o.phase1.prior || o.phase2.prior) {
    check(typeof prior.classPrompt === 'string' && prior.classPrompt.length > 0, 'prior.classPrompt must be a prompt');
    check(Number.isInteger(prior.numImages) && prior.numImages > 0, 'prior.numImages must be a positive integer');
    check(isNonNegative(prior.weight), 'prior.weight must be ≥ 0');
    check(Number.isInteger(prior.generationSteps) && prior.generationSteps > 0, 'prior.generationSteps must be a positive integer');
    check(isNonNegative(prior.guidance), 'prior.guidance must be ≥ 0');
    check(prior.cacheDir === null || (typeof prior.cacheDir === 'string' && prior.cacheDir.length > 0), 'prior.cacheDir must be a folder path or null');
  }
  check(isNonNegativeInteger(o.checkpointEvery) && isNonNegativeInteger(o.attentionMapEvery) && isNonNegativeInteger(o.previewEvery), 'checkpointEvery, attentionMapEvery and previewEvery must be non-negative integers');
  check(Number.isInteger(o.previewSteps) && o.previewSteps > 0, 'previewSteps must be a positive integer');
  check(Array.isArray(o.metricTimesteps) && o.metricTimesteps.length > 0 && o.metricTimesteps.every(isNonNegativeInteger), 'metricTimesteps must list timesteps');
  return o;
}

/** A preset (on `layers`: the model's, else the spec's) with overrides, validated. */
export function resolveOptions(preset: PresetName = 'paper', overrides?: DeepPartial<LearnOptions>, layers: LearningLayers = SPEC_LEARNING_LAYERS): LearnOptions {
  return validateOptions(mergeOptions(presetOptions(preset, layers), overrides));
}
