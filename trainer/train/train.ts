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
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AdamW } from '../learn/optim.ts';
import { Generator } from '../util/random.ts';
import { copyStageCheckpoint, readStageCheckpointState, restoreStageCheckpoint } from './checkpoint.ts';
import { createDiffusionModels, diffusionTrainingStage, exportPipeline } from './diffusion_stage.ts';
import { LossLog } from './log.ts';
import type { Recipe } from './recipe.ts';
import { runStage, STABLE_CHECKPOINT_DIR } from './stage.ts';
import { AutoencoderKL } from '../models/autoencoder_kl.ts';
import { stageProgress, writeTrainingRecord } from './model_card.ts';
import { createVae, decoderTrainingStage, heldOutScenes, latentScalingFactor, measureReconstruction, saveVae, vaeTrainingStage } from './vae_stage.ts';

/** Later stages draw from streams of their own, so an earlier stage's step count never changes what they see. */
const DECODER_STREAM_OFFSET = 2000;
const DIFFUSION_STREAM_OFFSET = 1000;
/** Held-out scenes measured when stage 1 ends (the acceptance figure comes from scripts/eval-default-model.ts). */
const STAGE_END_PSNR_SCENES = 64;

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
  if (!existsSync(join(vaeDir, 'config.json'))) {
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

  const decoderDir = finalVaeDir(workDir);
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
      writeTrainingRecord(options.outDir, recipe, stageProgress(recipe, workDir));
      say(`diffusion: done in ${(run.elapsedMs / 60000).toFixed(1)} min; exported ${options.outDir}`);
      result.completed = true;
    } finally {
      stage.ema.dispose();
    }
  } finally {
    models.textEncoder.dispose();
    models.unet.store.dispose();
    models.vae.store.dispose();
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
  const optimizer = new AdamW(
    stage.parameters.map((p) => p.variable),
    { betas: recipe.diffusion.optimizer.betas, weightDecay: recipe.diffusion.optimizer.weightDecay, eps: recipe.diffusion.optimizer.eps },
  );
  try {
    const state = restoreStageCheckpoint(join(workDir, 'diffusion', 'checkpoint'), { stage: 'diffusion', fingerprint: stage.fingerprint }, stage.parameters, optimizer, stage.ema);
    if (!state) throw new Error(`${workDir}: stage 2 has no checkpoint yet; nothing to export`);
    await exportPipeline(outDir, recipe, models, stage.ema);
    writeTrainingRecord(outDir, recipe, stageProgress(recipe, workDir));
    return state.step;
  } finally {
    optimizer.dispose();
    stage.ema.dispose();
    models.textEncoder.dispose();
    models.unet.store.dispose();
    models.vae.store.dispose();
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
