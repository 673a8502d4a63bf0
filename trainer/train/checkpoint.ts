// Resumable stage checkpoints: checkpoint.json (stage, step, RNG state, wall time, optimizer bookkeeping) naming one
// safetensors file with the trainable parameters, the AdamW moments and the EMA weights, all float32 in the engine's
// layout, so a resumed run continues bit for bit. The JSON is replaced atomically after its tensors are on disk and
// older tensor files are removed only then, so a crash mid-write leaves the previous checkpoint usable.
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readJson } from '../io/model_index.ts';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../io/safetensors.ts';
import { AdamW } from '../learn/optim.ts';
import { tf } from '../runtime/backend.ts';
import type { GeneratorState } from '../util/random.ts';
import type { ExponentialMovingAverage } from './ema.ts';
import { firstEmphasisDifference, firstScheduleDifference, type ScheduleRecord, type ShapeEmphasis } from './recipe.ts';

export const TRAIN_CHECKPOINT_VERSION = 1;
const STATE_FILE = 'checkpoint.json';
const TENSOR_FILE = /^state-s\d+\.safetensors$/;

export type StageName = 'vae' | 'decoder' | 'diffusion';

export interface NamedParameter {
  /** component-qualified key, e.g. "unet.conv_in.weight" */
  name: string;
  variable: tf.Variable;
}

export interface StageCheckpointState {
  version: number;
  stage: StageName;
  /** stageFingerprint of the recipe; resuming under another recipe is refused */
  fingerprint: string;
  /** optimizer steps completed */
  step: number;
  generator: GeneratorState;
  /** training wall time of the stage so far (previews and checkpoints included) */
  elapsedMs: number;
  /** trainable parameter names, in optimizer order */
  parameters: string[];
  optimizerSteps: number;
  emaSteps: number | null;
  /** the micro-batch split the run has used (absent in checkpoints written before it was kept: plan afresh) */
  microBatches?: number[];
  /** loss-log sums of the steps since the last log record, so the next record averages the same steps */
  pendingLog?: { sums: Record<string, number>; steps: number };
  /** the learning-rate schedule of the steps taken (absent in checkpoints written before it was kept) */
  schedule?: ScheduleRecord;
  /** the shape emphasis the steps were drawn with (absent: every shape alike, or a stage without one) */
  shapeEmphasis?: ShapeEmphasis[];
  tensors: string;
}

export interface StageSnapshot {
  stage: StageName;
  fingerprint: string;
  step: number;
  generator: GeneratorState;
  elapsedMs: number;
  parameters: NamedParameter[];
  optimizer: AdamW;
  ema: ExponentialMovingAverage | null;
  microBatches?: number[];
  pendingLog: { sums: Record<string, number>; steps: number };
  schedule: ScheduleRecord;
  shapeEmphasis?: readonly ShapeEmphasis[];
}

function engineTensor(data: Float32Array, shape: readonly number[]): TensorToWrite {
  return { dtype: 'F32', shape: [...shape], data };
}

export function writeStageCheckpoint(dir: string, snapshot: StageSnapshot): void {
  mkdirSync(dir, { recursive: true });
  const tensors: Record<string, TensorToWrite> = {};
  const optimizerState = snapshot.optimizer.getState();
  snapshot.parameters.forEach(({ name, variable }, i) => {
    tensors[`param/${name}`] = engineTensor(Float32Array.from(variable.dataSync() as Float32Array), variable.shape);
    const moments = optimizerState.moments[i]!;
    tensors[`adam_m/${name}`] = engineTensor(moments.m, variable.shape);
    tensors[`adam_v/${name}`] = engineTensor(moments.v, variable.shape);
  });
  if (snapshot.ema) {
    for (const [name, value] of snapshot.ema.entries()) tensors[`ema/${name}`] = engineTensor(Float32Array.from(value.dataSync() as Float32Array), value.shape);
  }
  const tensorFile = `state-s${snapshot.step}.safetensors`;
  writeSafetensors(join(dir, tensorFile), tensors);
  const state: StageCheckpointState = {
    version: TRAIN_CHECKPOINT_VERSION,
    stage: snapshot.stage,
    fingerprint: snapshot.fingerprint,
    step: snapshot.step,
    generator: snapshot.generator,
    elapsedMs: snapshot.elapsedMs,
    parameters: snapshot.parameters.map((p) => p.name),
    optimizerSteps: optimizerState.step,
    emaSteps: snapshot.ema ? snapshot.ema.steps : null,
    ...(snapshot.microBatches ? { microBatches: snapshot.microBatches } : {}),
    pendingLog: snapshot.pendingLog,
    schedule: snapshot.schedule,
    ...(snapshot.shapeEmphasis?.length ? { shapeEmphasis: [...snapshot.shapeEmphasis] } : {}),
    tensors: tensorFile,
  };
  const temp = join(dir, `${STATE_FILE}.tmp-${process.pid}`);
  writeFileSync(temp, `${JSON.stringify(state, null, 1)}\n`);
  renameSync(temp, join(dir, STATE_FILE));
  for (const name of readdirSync(dir)) if (name !== tensorFile && TENSOR_FILE.test(name)) unlinkSync(join(dir, name));
}

/** Copies the checkpoint in `fromDir` to `toDir`, replacing what is there only once the copy is whole. */
export function copyStageCheckpoint(fromDir: string, toDir: string): StageCheckpointState {
  const state = readStageCheckpointState(fromDir);
  if (!state) throw new Error(`${fromDir} holds no checkpoint to copy`);
  const temp = `${toDir}.tmp-${process.pid}`;
  rmSync(temp, { recursive: true, force: true });
  mkdirSync(temp, { recursive: true });
  copyFileSync(join(fromDir, state.tensors), join(temp, state.tensors));
  copyFileSync(join(fromDir, STATE_FILE), join(temp, STATE_FILE));
  rmSync(toDir, { recursive: true, force: true });
  renameSync(temp, toDir);
  return state;
}

export function readStageCheckpointState(dir: string): StageCheckpointState | null {
  const path = join(dir, STATE_FILE);
  if (!existsSync(path)) return null;
  const state = readJson<StageCheckpointState>(path);
  if (state.version !== TRAIN_CHECKPOINT_VERSION) throw new Error(`${path}: checkpoint version ${state.version} is not supported (expected ${TRAIN_CHECKPOINT_VERSION})`);
  return state;
}

/**
 * Restores parameters, optimizer moments and EMA weights from the checkpoint in `dir` into the given objects.
 * Returns the checkpoint state (step, generator, wall time) or null when there is none. With `expected.schedule`, the
 * steps already taken must have had the learning rates that schedule gives them; with `expected.shapeEmphasis`, the
 * shape weights that emphasis gives them.
 */
export function restoreStageCheckpoint(
  dir: string,
  expected: { stage: StageName; fingerprint: string; schedule?: ScheduleRecord; shapeEmphasis?: readonly ShapeEmphasis[] },
  parameters: NamedParameter[],
  optimizer: AdamW,
  ema: ExponentialMovingAverage | null,
): StageCheckpointState | null {
  const state = readStageCheckpointState(dir);
  if (!state) return null;
  if (state.stage !== expected.stage) throw new Error(`${dir} holds a '${state.stage}' checkpoint, not '${expected.stage}'`);
  if (state.fingerprint !== expected.fingerprint) {
    throw new Error(
      `${dir}: the checkpoint was written under another recipe (fingerprint ${state.fingerprint}, now ${expected.fingerprint}); ` +
        'use a fresh work folder or restore the recipe',
    );
  }
  if (expected.schedule) {
    const { optimizer, totalSteps } = expected.schedule;
    // before checkpoints kept their schedule, a stage could only resume under another one when its rate was constant
    const taken = state.schedule ?? { optimizer: optimizer.schedule === 'cosine' ? optimizer : { ...optimizer, schedule: 'constant_with_warmup' as const }, totalSteps };
    const differs = firstScheduleDifference(taken, expected.schedule, state.step);
    if (differs !== null) {
      throw new Error(
        `${dir}: the recipe gives step ${differs + 1} another learning rate than the checkpoint's ${state.step} steps were taken with ` +
          `(${taken.optimizer.schedule} over ${taken.totalSteps} steps then, ${optimizer.schedule} over ${totalSteps} now); ` +
          'a stage can only be extended or given its decay where the steps already taken keep their rates',
      );
    }
  }
  if (expected.shapeEmphasis) {
    const differs = firstEmphasisDifference(state.shapeEmphasis ?? [], expected.shapeEmphasis, state.step);
    if (differs !== null) {
      throw new Error(
        `${dir}: the recipe's shapeEmphasis draws the scenes of step ${differs + 1} otherwise than the checkpoint's ${state.step} steps were drawn with ` +
          `(${JSON.stringify(state.shapeEmphasis ?? [])} then, ${JSON.stringify(expected.shapeEmphasis)} now); an emphasis can only change from step ${state.step} on`,
      );
    }
  }
  const names = parameters.map((p) => p.name);
  if (state.parameters.length !== names.length || state.parameters.some((name, i) => name !== names[i])) {
    throw new Error(`${dir}: the checkpoint's parameters do not match the model (${state.parameters.length} saved, ${names.length} now)`);
  }
  const path = join(dir, state.tensors);
  if (!existsSync(path)) throw new Error(`${join(dir, STATE_FILE)} names ${state.tensors}, which is missing`);
  const file = SafetensorsFile.open(path);
  try {
    const read = (key: string, like: tf.Tensor): Float32Array => {
      const { shape, data } = file.readFloat32(key);
      if (!tf.util.arraysEqual(shape, like.shape)) throw new Error(`${path}: '${key}' has shape [${shape}], expected [${like.shape}]`);
      return data;
    };
    for (const { name, variable } of parameters) {
      const values = read(`param/${name}`, variable);
      tf.tidy(() => variable.assign(tf.tensor(values, variable.shape)));
    }
    optimizer.setState({
      step: state.optimizerSteps,
      moments: parameters.map(({ name, variable }) => ({ m: read(`adam_m/${name}`, variable), v: read(`adam_v/${name}`, variable) })),
    });
    if (ema) {
      if (state.emaSteps === null) throw new Error(`${path}: the checkpoint has no EMA weights`);
      ema.restore(state.emaSteps, (name, like) => read(`ema/${name}`, like));
    }
  } finally {
    file.close();
  }
  return state;
}
