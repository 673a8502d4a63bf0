// The whole recipe in order: stage 1 (VAE), stage 1b (decoder fine-tune), stage 2 (text encoder + UNet), each
// resumable, then the export of the diffusers folder. A work folder holds everything a rerun needs to continue:
//   recipe.json            the recipe the run started with
//   loss.jsonl             loss records of every stage
//   vae/checkpoint/        stage-1 checkpoint; vae/previews/ originals over reconstructions
//   vae/model/             the stage-1 VAE (float32, scaling_factor set); its presence marks stage 1 done
//   decoder/checkpoint/    stage-1b checkpoint; decoder/previews/
//   decoder/model/         the final VAE: stage-1 encoder, fine-tuned decoder; marks stage 1b done
//   diffusion/checkpoint/  stage-2 checkpoint (weights, AdamW moments, EMA); diffusion/previews/ held-out captions
//   diffusion/checkpoint-before-decay/
//                          the stage-2 checkpoint where a warm-up-stable-decay schedule starts its decay
//   diffusion/tokenizer/   the world's CLIP tokenizer
//   continued-from.json    only in a folder whose stage 2 went on from an exported model (continueFromExport): that
//                          model's record; its VAE stands in decoder/model, and stages 1 and 1b have no checkpoints
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readJson } from '../io/model_index.ts';
import { AdamW } from '../learn/optim.ts';
import { Generator } from '../util/random.ts';
import { copyStageCheckpoint, readStageCheckpointState, restoreStageCheckpoint, writeStageCheckpoint, type NamedParameter } from './checkpoint.ts';
import { createDiffusionModels, diffusionTrainingStage, exportPipeline, type DiffusionModels } from './diffusion_stage.ts';
import { LossLog } from './log.ts';
import { stageFingerprint, type Recipe } from './recipe.ts';
import { primeOptimizerMoments, runStage, STABLE_CHECKPOINT_DIR } from './stage.ts';
import { AutoencoderKL } from '../models/autoencoder_kl.ts';
import { readTrainingRecord, stageProgress, TRAINING_RECORD_FILE, writeTrainingRecord, type ContinuedFrom } from './model_card.ts';
import { createVae, decoderTrainingStage, heldOutScenes, latentScalingFactor, measureReconstruction, saveVae, vaeTrainingStage } from './vae_stage.ts';

/** Later stages draw from streams of their own, so an earlier stage's step count never changes what they see. */
const DECODER_STREAM_OFFSET = 2000;
const DIFFUSION_STREAM_OFFSET = 1000;
/** Held-out scenes measured when stage 1 ends (the acceptance figure comes from scripts/eval-default-model.ts). */
const STAGE_END_PSNR_SCENES = 64;
const CONTINUED_FROM_FILE = 'continued-from.json';

export interface TrainOptions {
  workDir: string;
  /** where the finished diffusers folder goes */
  outDir: string;
  /** optimizer steps to take in this run, over both stages (default: until done) */
  maxSteps?: number;
  shouldStop?: () => boolean;
  onMessage?: (message: string) => void;
  onStep?: (record: { stage: string; step: number; total: number; loss: number; lr: number; seconds: number }) => void;
}

export interface TrainResult {
  /** both stages finished and the folder was exported */
  completed: boolean;
  vaeStep: number;
  decoderStep: number;
  diffusionStep: number;
}

export function vaeModelDir(workDir: string): string {
  return join(workDir, 'vae', 'model');
}

/** The VAE the pipeline ships: stage-1 encoder, stage-1b decoder. */
export function finalVaeDir(workDir: string): string {
  return join(workDir, 'decoder', 'model');
}

function stageTwoOptimizer(recipe: Recipe, parameters: NamedParameter[]): AdamW {
  const { betas, weightDecay, eps } = recipe.diffusion.optimizer;
  return new AdamW(parameters.map((p) => p.variable), { betas, weightDecay, eps });
}

function disposeDiffusionModels(models: DiffusionModels): void {
  models.textEncoder.dispose();
  models.unet.store.dispose();
  models.vae.store.dispose();
}

/** The training record of an export from `workDir`: its stages' progress and, if any, the export it continued from. */
function writeWorkTrainingRecord(outDir: string, recipe: Recipe, workDir: string): void {
  const path = join(workDir, CONTINUED_FROM_FILE);
  const continuedFrom = existsSync(path) ? readJson<ContinuedFrom>(path) : null;
  writeTrainingRecord(outDir, recipe, stageProgress(recipe, workDir, continuedFrom), continuedFrom);
}

function rememberRecipe(workDir: string, recipe: Recipe): void {
  const path = join(workDir, 'recipe.json');
  const text = `${JSON.stringify(recipe, null, 2)}\n`;
  if (existsSync(path) && readFileSync(path, 'utf8') !== text) {
    writeFileSync(join(workDir, `recipe.${Date.now()}.json`), readFileSync(path, 'utf8'));
  }
  writeFileSync(path, text);
}

export async function trainDefaultModel(recipe: Recipe, options: TrainOptions): Promise<TrainResult> {
  const { workDir } = options;
  const say = options.onMessage ?? (() => {});
  mkdirSync(workDir, { recursive: true });
  rememberRecipe(workDir, recipe);
  const log = new LossLog(join(workDir, 'loss.jsonl'));
  let budget = options.maxSteps ?? Infinity;
  const result: TrainResult = { completed: false, vaeStep: recipe.vae.steps, decoderStep: recipe.decoder.steps, diffusionStep: 0 };

  const vaeDir = vaeModelDir(workDir);
  const decoderDir = finalVaeDir(workDir);
  if (!existsSync(join(vaeDir, 'config.json')) && !existsSync(join(decoderDir, 'config.json'))) {
    const vae = createVae(recipe.vae.config, recipe.seed);
    try {
      const run = await runStage(vaeTrainingStage(recipe, vae), {
        dir: join(workDir, 'vae'),
        log,
        generator: new Generator(recipe.seed),
        maxSteps: budget,
        shouldStop: options.shouldStop,
        onMessage: say,
        onStep: (r) => options.onStep?.({ stage: 'vae', ...r }),
      });
      result.vaeStep = run.step;
      budget -= run.stepsThisRun;
      if (!run.completed) return result;
      const scalingFactor = latentScalingFactor(vae, recipe, recipe.vae.scalingImages);
      const report = measureReconstruction(vae, heldOutScenes(STAGE_END_PSNR_SCENES, recipe.world.imageSize, 0));
      say(`vae: done in ${(run.elapsedMs / 60000).toFixed(1)} min; scaling_factor ${scalingFactor.toFixed(5)}; held-out PSNR ${report.meanPsnr.toFixed(2)} dB (pooled ${report.pooledPsnr.toFixed(2)})`);
      saveVae(vaeDir, vae, scalingFactor, 'F32');
    } finally {
      vae.store.dispose();
    }
  }

  if (!existsSync(join(decoderDir, 'config.json'))) {
    const vae = AutoencoderKL.fromPretrained(vaeDir).model;
    try {
      const run = await runStage(decoderTrainingStage(recipe, vae), {
        dir: join(workDir, 'decoder'),
        log,
        generator: new Generator(recipe.seed + DECODER_STREAM_OFFSET),
        maxSteps: budget,
        shouldStop: options.shouldStop,
        onMessage: say,
        onStep: (r) => options.onStep?.({ stage: 'decoder', ...r }),
      });
      result.decoderStep = run.step;
      budget -= run.stepsThisRun;
      if (!run.completed) return result;
      const report = measureReconstruction(vae, heldOutScenes(STAGE_END_PSNR_SCENES, recipe.world.imageSize, 0));
      say(`decoder: done in ${(run.elapsedMs / 60000).toFixed(1)} min; held-out PSNR ${report.meanPsnr.toFixed(2)} dB (pooled ${report.pooledPsnr.toFixed(2)})`);
      saveVae(decoderDir, vae, vae.scalingFactor, 'F32');
    } finally {
      vae.store.dispose();
    }
  }

  const models = createDiffusionModels(recipe, join(workDir, 'diffusion', 'tokenizer'), decoderDir);
  try {
    const stage = diffusionTrainingStage(recipe, models, options.outDir);
    try {
      const run = await runStage(stage, {
        dir: join(workDir, 'diffusion'),
        log,
        generator: new Generator(recipe.seed + DIFFUSION_STREAM_OFFSET),
        maxSteps: budget,
        shouldStop: options.shouldStop,
        onMessage: say,
        onStep: (r) => options.onStep?.({ stage: 'diffusion', ...r }),
      });
      result.diffusionStep = run.step;
      if (!run.completed) return result;
      await exportPipeline(options.outDir, recipe, models, stage.ema);
      writeWorkTrainingRecord(options.outDir, recipe, workDir);
      say(`diffusion: done in ${(run.elapsedMs / 60000).toFixed(1)} min; exported ${options.outDir}`);
      result.completed = true;
    } finally {
      stage.ema.dispose();
    }
  } finally {
    disposeDiffusionModels(models);
  }
  return result;
}

/**
 * Exports the latest stage-2 checkpoint (EMA weights) as a diffusers folder with its training record, e.g. to evaluate
 * a run in progress.
 */
export async function exportCheckpoint(recipe: Recipe, workDir: string, outDir: string): Promise<number> {
  const vaeDir = finalVaeDir(workDir);
  if (!existsSync(join(vaeDir, 'config.json'))) throw new Error(`${workDir}: stages 1 and 1b (VAE, decoder) have not finished; nothing to export`);
  const models = createDiffusionModels(recipe, join(workDir, 'diffusion', 'tokenizer'), vaeDir);
  const stage = diffusionTrainingStage(recipe, models, outDir);
  const optimizer = stageTwoOptimizer(recipe, stage.parameters);
  try {
    const state = restoreStageCheckpoint(join(workDir, 'diffusion', 'checkpoint'), { stage: 'diffusion', fingerprint: stage.fingerprint }, stage.parameters, optimizer, stage.ema);
    if (!state) throw new Error(`${workDir}: stage 2 has no checkpoint yet; nothing to export`);
    await exportPipeline(outDir, recipe, models, stage.ema);
    writeWorkTrainingRecord(outDir, recipe, workDir);
    return state.step;
  } finally {
    optimizer.dispose();
    stage.ema.dispose();
    disposeDiffusionModels(models);
  }
}

/**
 * Puts stage 2 back where its learning rate began to decay, so that a recipe with more steps continues from there at
 * the full rate. The checkpoint it replaces is kept as diffusion/checkpoint-decayed-sN. Returns both steps.
 */
export function rewindToStableCheckpoint(workDir: string): { from: number; to: number; keptAs: string } {
  const stageDir = join(workDir, 'diffusion');
  const stableDir = join(stageDir, STABLE_CHECKPOINT_DIR);
  const stable = readStageCheckpointState(stableDir);
  if (!stable) throw new Error(`${stableDir} holds no checkpoint: stage 2 has not reached the start of its decay`);
  const checkpointDir = join(stageDir, 'checkpoint');
  const current = readStageCheckpointState(checkpointDir);
  if (!current) throw new Error(`${checkpointDir} holds no checkpoint`);
  if (current.step <= stable.step) throw new Error(`stage 2 is at step ${current.step}, not past the start of its decay (step ${stable.step}): nothing to go back from`);
  const keptAs = join(stageDir, `checkpoint-decayed-s${current.step}`);
  if (existsSync(keptAs)) throw new Error(`${keptAs} exists already: move it away first`);
  renameSync(checkpointDir, keptAs);
  copyStageCheckpoint(stableDir, checkpointDir);
  return { from: current.step, to: stable.step, keptAs };
}

/**
 * Starts a work folder whose stage 2 goes on from a model this trainer exported (its training.json names the recipe
 * and the step), for when the run's own work folder is gone: the export's EMA weights become the weights and the EMA,
 * its VAE the final VAE, and the AdamW moments, which an export does not keep, are estimated from `primeSteps` batches
 * (primeOptimizerMoments). The data stream begins anew. The checkpoint written at the export's step carries the
 * export's schedule and shape emphasis, so the recipe continuing it must give the steps already taken the same rates
 * and scenes, as on any resume. Returns that step.
 */
export async function continueFromExport(
  recipe: Recipe,
  modelDir: string,
  workDir: string,
  options: { primeSteps: number; microBatch?: number; onMessage?: (message: string) => void },
): Promise<number> {
  const record = readTrainingRecord(modelDir);
  if (!record) throw new Error(`${modelDir} has no ${TRAINING_RECORD_FILE}: only a model this trainer exported can be continued`);
  const trainedUnder = record.recipe;
  if (stageFingerprint(trainedUnder, 'diffusion') !== stageFingerprint(recipe, 'diffusion')) {
    throw new Error(`${modelDir} was trained under another recipe (its world, networks, noise schedule or stage-2 settings differ); continue it under the recipe in its ${TRAINING_RECORD_FILE}`);
  }
  const trained = record.stages.find((s) => s.stage === 'diffusion');
  if (!trained || trained.step < 1) throw new Error(`${modelDir}: its record shows no stage-2 step; nothing to continue`);
  const { step } = trained;
  const checkpointDir = join(workDir, 'diffusion', 'checkpoint');
  if (readStageCheckpointState(checkpointDir)) throw new Error(`${workDir} has a stage-2 checkpoint already: resume it, or continue into a new work folder`);
  if (!Number.isInteger(options.primeSteps) || options.primeSteps < 1) throw new Error(`primeSteps must be a positive integer, got ${options.primeSteps}`);

  mkdirSync(workDir, { recursive: true });
  cpSync(join(modelDir, 'vae'), finalVaeDir(workDir), { recursive: true });
  const models = createDiffusionModels(recipe, join(workDir, 'diffusion', 'tokenizer'), finalVaeDir(workDir));
  models.textEncoder.store.loadComponent(join(modelDir, 'text_encoder'));
  models.unet.store.loadComponent(join(modelDir, 'unet'));
  const stage = diffusionTrainingStage(recipe, models, modelDir);
  const optimizer = stageTwoOptimizer(recipe, stage.parameters);
  try {
    // the exported weights are already an average over the run: its EMA goes on at full decay
    stage.ema.restore(step, (_, like) => Float32Array.from(like.dataSync() as Float32Array));
    const generator = new Generator(recipe.seed + DIFFUSION_STREAM_OFFSET + step);
    const microBatches = await primeOptimizerMoments(stage, optimizer, generator, step, options.primeSteps, options);
    writeStageCheckpoint(checkpointDir, {
      stage: 'diffusion',
      fingerprint: stage.fingerprint,
      step,
      generator: generator.getState(),
      elapsedMs: trained.minutes * 60000,
      parameters: stage.parameters,
      optimizer,
      ema: stage.ema,
      microBatches,
      pendingLog: { sums: {}, steps: 0 },
      schedule: { optimizer: trainedUnder.diffusion.optimizer, totalSteps: trainedUnder.diffusion.steps },
      shapeEmphasis: trainedUnder.diffusion.shapeEmphasis,
    });
    const continuedFrom: ContinuedFrom = { model: modelDir, exportedAt: record.exportedAt, stages: record.stages };
    writeFileSync(join(workDir, CONTINUED_FROM_FILE), `${JSON.stringify(continuedFrom, null, 2)}\n`);
    return step;
  } finally {
    optimizer.dispose();
    stage.ema.dispose();
    disposeDiffusionModels(models);
  }
}
