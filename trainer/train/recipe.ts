// The recipe of the embedded default model: model configs (diffusers / transformers names), the world data, and the
// two training stages (VAE, then text encoder + UNet). A recipe is a JSON file (trainer/train/configs/); every field
// is checked on load so a typo fails before hours of training, not after.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AutoencoderKLConfig } from '../models/autoencoder_kl.ts';
import type { UNet2DConditionConfig } from '../models/unet_2d_condition.ts';
import type { SchedulerConfig } from '../schedulers/scheduling_utils.ts';
import { NO_MODEL_ATTENTION_LAYERS, parseAttentionLayers, type ModelAttentionLayers } from '../pipelines/attention_layers_config.ts';
import { SAMPLER_NAMES, type GenerationDefaults } from '../pipelines/generation_defaults.ts';
import { SHAPE_NAMES } from '../world/definitions.ts';
import { checkMultiObjectScale, checkSameColourGap, checkShapeWeights, SAME_COLOUR_GAP, type SceneEmphasisOptions, type ShapeWeights } from '../world/sampler.ts';
import { isNonNegativeInteger, isPositiveInteger } from '../util/numbers.ts';
import type { TokenGrounding } from './grounding.ts';

/** The diffusers version whose folder layout the exported configs follow. */
export const DIFFUSERS_VERSION = '0.30.0';

export type LearningRateSchedule = 'constant_with_warmup' | 'cosine' | 'warmup_stable_decay';
const SCHEDULES: LearningRateSchedule[] = ['constant_with_warmup', 'cosine', 'warmup_stable_decay'];

export interface OptimizerRecipe {
  learningRate: number;
  schedule: LearningRateSchedule;
  warmupSteps: number;
  /** cosine and warmup_stable_decay: the factor reached at the last step */
  minFactor: number;
  /** warmup_stable_decay: the last this many steps fall linearly from 1 to minFactor (only that schedule has it) */
  decaySteps?: number;
  betas: [number, number];
  weightDecay: number;
  eps: number;
  maxGradNorm: number;
}

export interface StageBookkeeping {
  /** optimizer steps of the stage */
  steps: number;
  batch: number;
  /** write a resumable checkpoint every this many steps (and at the end) */
  checkpointEvery: number;
  /** write a preview grid every this many steps (0: only at the end) */
  previewEvery: number;
  /** append a loss record every this many steps */
  logEvery: number;
}

export interface VaeStageRecipe extends StageBookkeeping {
  config: AutoencoderKLConfig;
  optimizer: OptimizerRecipe;
  /** side of the random square crops the VAE trains on (the network is convolutional); imageSize for whole images */
  crop: number;
  /** weight of the KL term, on the mean KL per latent element next to the mean squared error per pixel channel */
  klWeight: number;
  /** weight of an extra mean absolute error term */
  l1Weight: number;
  /** images whose latent standard deviation sets scaling_factor (latents · scaling_factor have unit variance) */
  scalingImages: number;
}

/**
 * Stage 1b: the decoder alone (and post_quant_conv) on whole images, encoder frozen. It sharpens reconstructions
 * without moving the latent space, so it is independent of the diffusion stage (as SD's ft-MSE decoder).
 */
export interface DecoderStageRecipe extends StageBookkeeping {
  optimizer: OptimizerRecipe;
  l1Weight: number;
}

export interface DiffusionStageRecipe extends StageBookkeeping {
  optimizer: OptimizerRecipe;
  /** share of training captions replaced by "" so classifier-free guidance has an unconditional model */
  captionDropout: number;
  /** EMA of the text encoder and UNet weights: decay min(emaDecay, (1 + step) / (10 + step)) */
  emaDecay: number;
  /** previews: held-out captions generated with the EMA weights, the `generation` sampler and its guidance rescale */
  previewCaptions: number;
  previewSteps: number;
  previewGuidance: number;
  /** shapes the training scenes draw more often from a step on (empty: every shape alike throughout) */
  shapeEmphasis: ShapeEmphasis[];
}

/**
 * From optimizer step `fromStep` (0-based) until the next entry, the training scenes draw the plain shapes with these
 * relative weights (1 for a shape not named), keep objects of one colour `sameColourGap` apart and draw the objects
 * of scenes with two or more `multiObjectScale` times the world's size, with `tokenGrounding` the loss also
 * teaches each object's words to attend to the object, and with `timesteps` the noise levels where outlines form are
 * drawn more often. Like a warm-up-stable schedule's length, it may change where
 * the steps already taken keep theirs, so an emphasis can be added to a stage under way.
 */
export interface ShapeEmphasis {
  fromStep: number;
  weights: ShapeWeights;
  /** share of the image side between the bounding discs of same-colour objects (default: the world's SAME_COLOUR_GAP) */
  sameColourGap?: number;
  /** factor on the object sizes of scenes with two or more objects (default 1: the world's) */
  multiObjectScale?: number;
  /** the token-grounding term of the loss (absent: none) */
  tokenGrounding?: TokenGrounding;
  /** a band of training timesteps drawn more often than the rest (absent: all alike) */
  timesteps?: TimestepEmphasis;
}

/** Training timesteps in [from, to) are drawn `weight` times as often as each of the others. */
export interface TimestepEmphasis {
  from: number;
  to: number;
  weight: number;
}

export interface TextEncoderRecipe {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  hidden_act: string;
  /** spare embedding rows after the world's vocabulary, for placeholder tokens */
  headroom: number;
  /** tokens per prompt (tokenizer model_max_length = max_position_embeddings) */
  maxLength: number;
}

export interface WorldRecipe {
  imageSize: number;
  minObjects: number;
  maxObjects: number;
}

export interface Recipe {
  name: string;
  seed: number;
  world: WorldRecipe;
  textEncoder: TextEncoderRecipe;
  unet: UNet2DConditionConfig;
  scheduler: SchedulerConfig;
  vae: VaeStageRecipe;
  decoder: DecoderStageRecipe;
  diffusion: DiffusionStageRecipe;
  /** what text-to-image with the exported model defaults to: its scheduler and generation_config.json (measured, not trained) */
  generation: GenerationDefaults;
  /** where the exported model's words ground in its images, for learning and box control: attention_layers.json (measured) */
  attentionLayers: ModelAttentionLayers;
}

export class RecipeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecipeError';
  }
}

type Json = Record<string, unknown>;

function object(value: unknown, where: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new RecipeError(`${where} must be an object`);
  return value as Json;
}

function number(raw: Json, key: string, where: string, check: (n: number) => boolean, rule: string): number {
  const value = raw[key];
  if (typeof value !== 'number' || !Number.isFinite(value) || !check(value)) {
    throw new RecipeError(`${where}.${key} must be ${rule}, got ${JSON.stringify(value)}`);
  }
  return value;
}

const unitInterval = (n: number) => n >= 0 && n <= 1;
const nonNegative = (n: number) => n >= 0;

function checkKeys(raw: Json, allowed: string[], where: string): void {
  const unknown = Object.keys(raw).filter((key) => !allowed.includes(key));
  if (unknown.length > 0) throw new RecipeError(`${where} has unknown field(s): ${unknown.join(', ')} (known: ${allowed.join(', ')})`);
}

function parseOptimizer(value: unknown, where: string): OptimizerRecipe {
  const raw = object(value, where);
  checkKeys(raw, ['learningRate', 'schedule', 'warmupSteps', 'minFactor', 'decaySteps', 'betas', 'weightDecay', 'eps', 'maxGradNorm'], where);
  const schedule = raw.schedule as LearningRateSchedule;
  if (!SCHEDULES.includes(schedule)) throw new RecipeError(`${where}.schedule must be one of ${SCHEDULES.map((name) => `"${name}"`).join(', ')}, got ${JSON.stringify(schedule)}`);
  if ((schedule === 'warmup_stable_decay') !== (raw.decaySteps !== undefined)) throw new RecipeError(`${where}.decaySteps belongs to the "warmup_stable_decay" schedule, and only to it`);
  const betas = raw.betas;
  if (!Array.isArray(betas) || betas.length !== 2 || !betas.every((b) => typeof b === 'number' && b >= 0 && b < 1)) {
    throw new RecipeError(`${where}.betas must be two numbers in [0, 1), got ${JSON.stringify(betas)}`);
  }
  return {
    learningRate: number(raw, 'learningRate', where, (n) => n > 0, 'a positive number'),
    schedule,
    warmupSteps: number(raw, 'warmupSteps', where, isNonNegativeInteger, 'a non-negative integer'),
    minFactor: number(raw, 'minFactor', where, unitInterval, 'in [0, 1]'),
    betas: betas as [number, number],
    weightDecay: number(raw, 'weightDecay', where, nonNegative, 'non-negative'),
    eps: number(raw, 'eps', where, (n) => n > 0, 'positive'),
    maxGradNorm: number(raw, 'maxGradNorm', where, (n) => n > 0, 'positive'),
    ...(schedule === 'warmup_stable_decay' ? { decaySteps: number(raw, 'decaySteps', where, isPositiveInteger, 'a positive integer') } : {}),
  };
}

function checkScheduleFits(stage: StageBookkeeping & { optimizer: OptimizerRecipe }, where: string): void {
  const { warmupSteps, decaySteps = 0 } = stage.optimizer;
  if (warmupSteps + decaySteps > stage.steps) throw new RecipeError(`${where}: optimizer.warmupSteps + decaySteps (${warmupSteps + decaySteps}) exceed steps (${stage.steps})`);
}

const BOOKKEEPING_KEYS = ['steps', 'batch', 'checkpointEvery', 'previewEvery', 'logEvery'];

function parseBookkeeping(raw: Json, where: string): StageBookkeeping {
  return {
    steps: number(raw, 'steps', where, isPositiveInteger, 'a positive integer'),
    batch: number(raw, 'batch', where, isPositiveInteger, 'a positive integer'),
    checkpointEvery: number(raw, 'checkpointEvery', where, isPositiveInteger, 'a positive integer'),
    previewEvery: number(raw, 'previewEvery', where, isNonNegativeInteger, 'a non-negative integer'),
    logEvery: number(raw, 'logEvery', where, isPositiveInteger, 'a positive integer'),
  };
}

/** Validates a parsed recipe. Model configs are checked again, in full, by the model constructors. */
export function parseRecipe(input: unknown, source = 'recipe'): Recipe {
  const raw = object(input, source);
  checkKeys(raw, ['name', 'seed', 'world', 'textEncoder', 'unet', 'scheduler', 'vae', 'decoder', 'diffusion', 'generation', 'attentionLayers'], source);
  if (typeof raw.name !== 'string' || raw.name.length === 0) throw new RecipeError(`${source}.name must be a non-empty string`);

  const worldRaw = object(raw.world, `${source}.world`);
  checkKeys(worldRaw, ['imageSize', 'minObjects', 'maxObjects'], `${source}.world`);
  const world: WorldRecipe = {
    imageSize: number(worldRaw, 'imageSize', `${source}.world`, isPositiveInteger, 'a positive integer'),
    minObjects: number(worldRaw, 'minObjects', `${source}.world`, (n) => Number.isInteger(n) && n >= 1 && n <= 4, 'an integer in 1..4'),
    maxObjects: number(worldRaw, 'maxObjects', `${source}.world`, (n) => Number.isInteger(n) && n >= 1 && n <= 4, 'an integer in 1..4'),
  };
  if (world.minObjects > world.maxObjects) throw new RecipeError(`${source}.world: minObjects exceeds maxObjects`);

  const textRaw = object(raw.textEncoder, `${source}.textEncoder`);
  const textKeys = ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'headroom', 'maxLength'];
  checkKeys(textRaw, [...textKeys, 'hidden_act'], `${source}.textEncoder`);
  const textEncoder = Object.fromEntries(
    textKeys.map((key) => [key, number(textRaw, key, `${source}.textEncoder`, key === 'headroom' ? isNonNegativeInteger : isPositiveInteger, 'a positive integer')]),
  ) as Omit<TextEncoderRecipe, 'hidden_act'>;
  const hiddenAct = textRaw.hidden_act ?? 'quick_gelu';
  if (typeof hiddenAct !== 'string') throw new RecipeError(`${source}.textEncoder.hidden_act must be a string`);

  const unet = object(raw.unet, `${source}.unet`) as unknown as UNet2DConditionConfig;
  const scheduler = object(raw.scheduler, `${source}.scheduler`) as SchedulerConfig;
  const crossDim = unet.cross_attention_dim;
  if (crossDim !== textEncoder.hidden_size) {
    throw new RecipeError(`${source}: unet.cross_attention_dim (${JSON.stringify(crossDim)}) must equal textEncoder.hidden_size (${textEncoder.hidden_size})`);
  }

  const vaeRaw = object(raw.vae, `${source}.vae`);
  checkKeys(vaeRaw, [...BOOKKEEPING_KEYS, 'config', 'optimizer', 'crop', 'klWeight', 'l1Weight', 'scalingImages'], `${source}.vae`);
  const vae: VaeStageRecipe = {
    ...parseBookkeeping(vaeRaw, `${source}.vae`),
    config: object(vaeRaw.config, `${source}.vae.config`) as unknown as AutoencoderKLConfig,
    optimizer: parseOptimizer(vaeRaw.optimizer, `${source}.vae.optimizer`),
    crop: number(vaeRaw, 'crop', `${source}.vae`, isPositiveInteger, 'a positive integer'),
    klWeight: number(vaeRaw, 'klWeight', `${source}.vae`, nonNegative, 'non-negative'),
    l1Weight: number(vaeRaw, 'l1Weight', `${source}.vae`, nonNegative, 'non-negative'),
    scalingImages: number(vaeRaw, 'scalingImages', `${source}.vae`, isPositiveInteger, 'a positive integer'),
  };
  if (vae.crop > world.imageSize) throw new RecipeError(`${source}.vae.crop (${vae.crop}) exceeds world.imageSize (${world.imageSize})`);
  const vaeFactor = 2 ** (vae.config.block_out_channels.length - 1);
  if (vae.crop % vaeFactor !== 0 || world.imageSize % vaeFactor !== 0) {
    throw new RecipeError(`${source}: vae.crop and world.imageSize must be multiples of the VAE's downsampling factor ${vaeFactor}`);
  }
  if (unet.in_channels !== vae.config.latent_channels || unet.out_channels !== vae.config.latent_channels) {
    throw new RecipeError(`${source}: unet in/out channels must equal vae.config.latent_channels (${vae.config.latent_channels})`);
  }
  if (unet.sample_size !== world.imageSize / vaeFactor) {
    throw new RecipeError(`${source}: unet.sample_size must be world.imageSize / ${vaeFactor} = ${world.imageSize / vaeFactor}`);
  }

  const decoderRaw = object(raw.decoder, `${source}.decoder`);
  checkKeys(decoderRaw, [...BOOKKEEPING_KEYS, 'optimizer', 'l1Weight'], `${source}.decoder`);
  const decoder: DecoderStageRecipe = {
    ...parseBookkeeping(decoderRaw, `${source}.decoder`),
    optimizer: parseOptimizer(decoderRaw.optimizer, `${source}.decoder.optimizer`),
    l1Weight: number(decoderRaw, 'l1Weight', `${source}.decoder`, nonNegative, 'non-negative'),
  };

  const diffusionRaw = object(raw.diffusion, `${source}.diffusion`);
  checkKeys(
    diffusionRaw,
    [...BOOKKEEPING_KEYS, 'optimizer', 'captionDropout', 'emaDecay', 'previewCaptions', 'previewSteps', 'previewGuidance', 'shapeEmphasis'],
    `${source}.diffusion`,
  );
  const diffusion: DiffusionStageRecipe = {
    ...parseBookkeeping(diffusionRaw, `${source}.diffusion`),
    optimizer: parseOptimizer(diffusionRaw.optimizer, `${source}.diffusion.optimizer`),
    captionDropout: number(diffusionRaw, 'captionDropout', `${source}.diffusion`, unitInterval, 'in [0, 1]'),
    emaDecay: number(diffusionRaw, 'emaDecay', `${source}.diffusion`, (n) => n >= 0 && n < 1, 'in [0, 1)'),
    previewCaptions: number(diffusionRaw, 'previewCaptions', `${source}.diffusion`, isPositiveInteger, 'a positive integer'),
    previewSteps: number(diffusionRaw, 'previewSteps', `${source}.diffusion`, isPositiveInteger, 'a positive integer'),
    previewGuidance: number(diffusionRaw, 'previewGuidance', `${source}.diffusion`, nonNegative, 'non-negative'),
    shapeEmphasis: parseShapeEmphasis(diffusionRaw.shapeEmphasis ?? [], `${source}.diffusion.shapeEmphasis`, {
      levels: Array.isArray(unet.down_block_types) ? unet.down_block_types.length : 0,
      timesteps: scheduler.num_train_timesteps ?? 1000,
    }),
  };

  const generationRaw = object(raw.generation, `${source}.generation`);
  checkKeys(generationRaw, ['sampler', 'steps', 'guidance', 'guidanceRescale'], `${source}.generation`);
  const sampler = generationRaw.sampler as GenerationDefaults['sampler'];
  if (!SAMPLER_NAMES.includes(sampler)) throw new RecipeError(`${source}.generation.sampler must be one of ${SAMPLER_NAMES.join(', ')}, got ${JSON.stringify(sampler)}`);
  const generation: GenerationDefaults = {
    sampler,
    steps: number(generationRaw, 'steps', `${source}.generation`, isPositiveInteger, 'a positive integer'),
    guidance: number(generationRaw, 'guidance', `${source}.generation`, nonNegative, 'non-negative'),
    guidanceRescale: number(generationRaw, 'guidanceRescale', `${source}.generation`, unitInterval, 'in [0, 1]'),
  };

  let attentionLayers = NO_MODEL_ATTENTION_LAYERS;
  try {
    if (raw.attentionLayers !== undefined) attentionLayers = parseAttentionLayers(raw.attentionLayers, `${source}.attentionLayers`);
  } catch (error) {
    throw new RecipeError((error as Error).message);
  }

  checkScheduleFits(vae, `${source}.vae`);
  checkScheduleFits(decoder, `${source}.decoder`);
  checkScheduleFits(diffusion, `${source}.diffusion`);
  return {
    name: raw.name,
    seed: number(raw, 'seed', source, isNonNegativeInteger, 'a non-negative integer'),
    world,
    textEncoder: { ...textEncoder, hidden_act: hiddenAct },
    unet,
    scheduler,
    vae,
    decoder,
    diffusion,
    generation,
    attentionLayers,
  };
}

function parseShapeEmphasis(value: unknown, where: string, model: { levels: number; timesteps: number }): ShapeEmphasis[] {
  if (!Array.isArray(value)) throw new RecipeError(`${where} must be a list of { fromStep, weights }`);
  return value.map((item, i) => {
    const entry = object(item, `${where}[${i}]`);
    checkKeys(entry, ['fromStep', 'weights', 'sameColourGap', 'multiObjectScale', 'tokenGrounding', 'timesteps'], `${where}[${i}]`);
    const fromStep = number(entry, 'fromStep', `${where}[${i}]`, isNonNegativeInteger, 'a non-negative integer');
    const previous = i > 0 ? (value[i - 1] as { fromStep: number }).fromStep : -1;
    if (fromStep <= previous) throw new RecipeError(`${where}[${i}].fromStep must be after the previous entry's (${previous}), got ${fromStep}`);
    const weights = object(entry.weights, `${where}[${i}].weights`) as ShapeWeights;
    try {
      checkShapeWeights(weights, `${where}[${i}].weights`);
      if (entry.sameColourGap !== undefined) checkSameColourGap(entry.sameColourGap as number, `${where}[${i}].sameColourGap`);
      if (entry.multiObjectScale !== undefined) checkMultiObjectScale(entry.multiObjectScale as number, `${where}[${i}].multiObjectScale`);
    } catch (error) {
      throw new RecipeError((error as Error).message);
    }
    return {
      fromStep,
      weights: { ...weights },
      ...(entry.sameColourGap === undefined ? {} : { sameColourGap: entry.sameColourGap as number }),
      ...(entry.multiObjectScale === undefined ? {} : { multiObjectScale: entry.multiObjectScale as number }),
      ...(entry.tokenGrounding === undefined ? {} : { tokenGrounding: parseTokenGrounding(entry.tokenGrounding, `${where}[${i}].tokenGrounding`, model) }),
      ...(entry.timesteps === undefined ? {} : { timesteps: parseTimestepEmphasis(entry.timesteps, `${where}[${i}].timesteps`, model.timesteps) }),
    };
  });
}

function parseTokenGrounding(value: unknown, where: string, model: { levels: number; timesteps: number }): TokenGrounding {
  const raw = object(value, where);
  checkKeys(raw, ['weight', 'levels', 'maxTimestep'], where);
  const levels = raw.levels;
  const isLevel = (level: unknown) => typeof level === 'number' && isNonNegativeInteger(level) && level < model.levels;
  if (!Array.isArray(levels) || levels.length === 0 || !levels.every(isLevel) || new Set(levels).size !== levels.length) {
    throw new RecipeError(`${where}.levels must list distinct UNet levels in 0..${model.levels - 1}, got ${JSON.stringify(levels)}`);
  }
  return {
    weight: number(raw, 'weight', where, (n) => Number.isFinite(n) && n > 0, 'positive'),
    levels: [...(levels as number[])].sort((a, b) => a - b),
    maxTimestep: number(raw, 'maxTimestep', where, (n) => isPositiveInteger(n) && n <= model.timesteps, `an integer in 1..${model.timesteps}`),
  };
}

function parseTimestepEmphasis(value: unknown, where: string, timesteps: number): TimestepEmphasis {
  const raw = object(value, where);
  checkKeys(raw, ['from', 'to', 'weight'], where);
  const from = number(raw, 'from', where, (n) => isNonNegativeInteger(n) && n < timesteps, `an integer in 0..${timesteps - 1}`);
  const to = number(raw, 'to', where, (n) => isPositiveInteger(n) && n > from && n <= timesteps, `an integer in ${from + 1}..${timesteps} (after from)`);
  return { from, to, weight: number(raw, 'weight', where, (n) => Number.isFinite(n) && n > 0, 'positive') };
}

export function readRecipe(path: string): Recipe {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new RecipeError(`cannot read the recipe ${path}: ${(error as Error).message}`);
  }
  return parseRecipe(parsed, path);
}

/**
 * A hash of what a stage's result depends on. Bookkeeping (checkpoint, preview and log intervals) is left out, so a
 * run can be checkpointed more often and still resume. So is, for a schedule that is constant after warm-up until an
 * optional decay at the end, the step count and the decay: such a stage can be extended, or given its decay, while
 * the steps already taken agree (the resume compares them: firstScheduleDifference). A finished upstream stage
 * counts without its steps: its output is fixed.
 */
export function stageFingerprint(recipe: Recipe, stage: 'vae' | 'decoder' | 'diffusion'): string {
  const strip = ({ steps: _steps, checkpointEvery: _c, previewEvery: _p, logEvery: _l, shapeEmphasis: _e, ...rest }: StageBookkeeping & Json) => rest;
  const own = (settings: StageBookkeeping & { optimizer: OptimizerRecipe }) => {
    const rest = strip(settings as unknown as StageBookkeeping & Json);
    if (settings.optimizer.schedule === 'cosine') return { ...rest, steps: settings.steps };
    const { decaySteps: _decay, ...optimizer } = settings.optimizer;
    return { ...rest, optimizer: { ...optimizer, schedule: 'constant_with_warmup', minFactor: 0 } };
  };
  const vae = strip(recipe.vae as unknown as StageBookkeeping & Json);
  // the decoder stage leaves the encoder, hence the latents the diffusion stage trains on, as stage 1 made them
  const relevant =
    stage === 'vae'
      ? { seed: recipe.seed, world: recipe.world, vae: own(recipe.vae) }
      : stage === 'decoder'
        ? { seed: recipe.seed, world: recipe.world, vae, decoder: own(recipe.decoder) }
        : { seed: recipe.seed, world: recipe.world, vae, textEncoder: recipe.textEncoder, unet: recipe.unet, scheduler: recipe.scheduler, diffusion: own(recipe.diffusion) };
  return createHash('sha256').update(JSON.stringify(relevant)).digest('hex').slice(0, 16);
}

/** The learning-rate factor at 0-based optimizer step `step` of `totalSteps` (diffusers' schedules; warm-up starts at 0). */
export function learningRateFactor(optimizer: OptimizerRecipe, step: number, totalSteps: number): number {
  if (step < optimizer.warmupSteps) return step / Math.max(1, optimizer.warmupSteps);
  if (optimizer.schedule === 'constant_with_warmup') return 1;
  if (optimizer.schedule === 'warmup_stable_decay') {
    const decayStart = totalSteps - optimizer.decaySteps!;
    return step < decayStart ? 1 : 1 - (1 - optimizer.minFactor) * Math.min(1, (step - decayStart) / optimizer.decaySteps!);
  }
  const progress = Math.min(1, (step - optimizer.warmupSteps) / Math.max(1, totalSteps - optimizer.warmupSteps));
  return optimizer.minFactor + (1 - optimizer.minFactor) * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/** A stage's learning-rate schedule: its optimizer settings and its step count. */
export interface ScheduleRecord {
  optimizer: OptimizerRecipe;
  totalSteps: number;
}

/** How 0-based step `step` draws its scenes ({}: as the held-out sets). */
export function sceneOptionsAt(emphasis: readonly ShapeEmphasis[], step: number): SceneEmphasisOptions {
  const entry = emphasis.findLast((e) => e.fromStep <= step);
  if (!entry) return {};
  const { weights: shapeWeights, sameColourGap, multiObjectScale } = entry;
  return { shapeWeights, ...(sameColourGap === undefined ? {} : { sameColourGap }), ...(multiObjectScale === undefined ? {} : { multiObjectScale }) };
}

/** The token-grounding term of 0-based step `step`, or null. */
export function tokenGroundingAt(emphasis: readonly ShapeEmphasis[], step: number): TokenGrounding | null {
  return emphasis.findLast((e) => e.fromStep <= step)?.tokenGrounding ?? null;
}

/** The timestep band of 0-based step `step`, or null (every timestep alike). */
export function timestepEmphasisAt(emphasis: readonly ShapeEmphasis[], step: number): TimestepEmphasis | null {
  return emphasis.findLast((e) => e.fromStep <= step)?.timesteps ?? null;
}

/**
 * The training timestep (of `count`) that a uniform draw `u` in [0, 1) stands for when `band` is drawn `band.weight`
 * times as often: the draw is spread over the stretched line, so one random number makes one timestep, as without a
 * band, and a stage keeps its random stream.
 */
export function emphasizedTimestep(u: number, count: number, band: TimestepEmphasis | null): number {
  if (!band || band.weight === 1) return Math.floor(u * count);
  const bandLength = (band.to - band.from) * band.weight;
  const x = u * (count - (band.to - band.from) + bandLength);
  const t = x < band.from ? x : x < band.from + bandLength ? band.from + (x - band.from) / band.weight : band.to + (x - band.from - bandLength);
  return Math.min(count - 1, Math.floor(t));
}

/** The first of the steps [0, steps) that the two emphases train differently (scenes or loss), or null. */
export function firstEmphasisDifference(a: readonly ShapeEmphasis[], b: readonly ShapeEmphasis[], steps: number): number | null {
  const effective = (emphasis: readonly ShapeEmphasis[], step: number) => {
    const { shapeWeights = {}, sameColourGap = SAME_COLOUR_GAP, multiObjectScale = 1 } = sceneOptionsAt(emphasis, step);
    const grounding = tokenGroundingAt(emphasis, step);
    const band = timestepEmphasisAt(emphasis, step);
    const timesteps = band && band.weight !== 1 ? band : null;
    return JSON.stringify([SHAPE_NAMES.map((shape) => shapeWeights[shape] ?? 1), sameColourGap, multiObjectScale, grounding, timesteps]);
  };
  const changes = [...new Set([0, ...a.map((e) => e.fromStep), ...b.map((e) => e.fromStep)])].filter((step) => step < steps).sort((x, y) => x - y);
  return changes.find((step) => effective(a, step) !== effective(b, step)) ?? null;
}

/** The first of the steps [0, steps) at which the two schedules give different learning rates, or null. */
export function firstScheduleDifference(a: ScheduleRecord, b: ScheduleRecord, steps: number): number | null {
  for (let step = 0; step < steps; step++) {
    const rateA = a.optimizer.learningRate * learningRateFactor(a.optimizer, step, a.totalSteps);
    const rateB = b.optimizer.learningRate * learningRateFactor(b.optimizer, step, b.totalSteps);
    if (rateA !== rateB) return step;
  }
  return null;
}
