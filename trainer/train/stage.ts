// The loop both training stages share: resume from the stage's checkpoint, then per step draw a batch, take the
// gradients of the stage's loss, clip them, take an AdamW step at the scheduled learning rate, update the EMA, and
// log, checkpoint and preview at their intervals. A stop request (signal or step budget) ends the loop after the
// current step with a checkpoint, so the next run continues exactly there. A batch larger than the wasm heap holds is
// split into micro-batches whose gradients are accumulated (planned once, on the first step of a run).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AdamW, clipGradNorm } from '../learn/optim.ts';
import { tf } from '../runtime/backend.ts';
import { accumulateGradients, heapStats, planBatch, splitBatch } from '../runtime/memory.ts';
import type { Generator } from '../util/random.ts';
import { copyStageCheckpoint, restoreStageCheckpoint, writeStageCheckpoint, type NamedParameter, type StageName } from './checkpoint.ts';
import type { ExponentialMovingAverage } from './ema.ts';
import type { LossLog, LossRecord } from './log.ts';
import { learningRateFactor, type OptimizerRecipe, type ShapeEmphasis, type StageBookkeeping } from './recipe.ts';

export interface StepLoss {
  /** the loss to minimise: a mean over the samples it was asked for */
  loss: tf.Scalar;
  /** named scalar terms for the log (kept alive by the caller of `lossFn`) */
  terms: Record<string, tf.Scalar>;
}

export interface TrainingStage {
  name: StageName;
  fingerprint: string;
  settings: StageBookkeeping & { optimizer: OptimizerRecipe };
  parameters: NamedParameter[];
  ema: ExponentialMovingAverage | null;
  /**
   * Draws the data of 0-based step `step` (settings.batch samples) from `generator` and returns the loss function to
   * differentiate over the samples [start, start + size) of that batch; it must not draw from the generator.
   */
  prepareStep(generator: Generator, step: number): PreparedStep;
  /** what the stage's data draws differently from a step on; kept in the checkpoint and checked on resume */
  shapeEmphasis?: readonly ShapeEmphasis[];
  /** writes a preview (decoded images) of the current weights into `dir` */
  preview(dir: string, step: number): Promise<void>;
}

export interface SampleRange {
  start: number;
  size: number;
}

export interface PreparedStep {
  lossFn: (range: SampleRange) => StepLoss;
  dispose: () => void;
}

export interface StageRunOptions {
  /** the stage's folder: checkpoint/ and previews/ are written under it */
  dir: string;
  log: LossLog;
  generator: Generator;
  /** stop after this many steps in this run (the checkpoint lets the next run continue) */
  maxSteps?: number;
  /** checked after every step; when set, the stage checkpoints and returns */
  shouldStop?: () => boolean;
  onStep?: (record: { step: number; total: number; loss: number; lr: number; seconds: number }) => void;
  onMessage?: (message: string) => void;
  /** samples per forward/backward pass; default: the largest that fits the heap (planned on the first step) */
  microBatch?: number;
}

export interface StageRunResult {
  /** all steps of the stage are done */
  completed: boolean;
  step: number;
  /** steps taken by this run */
  stepsThisRun: number;
  elapsedMs: number;
}

/**
 * Under warm-up-stable-decay, the checkpoint of the last step at the full rate is kept here (in the stage's folder):
 * a run that ends short of its goal can go back to it and continue at the full rate for longer before decaying
 * (rewindToStableCheckpoint), which the steps already decayed would not allow.
 */
export const STABLE_CHECKPOINT_DIR = 'checkpoint-before-decay';

export async function runStage(stage: TrainingStage, options: StageRunOptions): Promise<StageRunResult> {
  const { settings, parameters } = stage;
  const { log, generator } = options;
  const checkpointDir = join(options.dir, 'checkpoint');
  const previewDir = join(options.dir, 'previews');
  const say = options.onMessage ?? (() => {});
  const optimizer = new AdamW(
    parameters.map((p) => p.variable),
    { betas: settings.optimizer.betas, weightDecay: settings.optimizer.weightDecay, eps: settings.optimizer.eps },
  );
  let step = 0;
  let elapsedMs = 0;
  const schedule = { optimizer: settings.optimizer, totalSteps: settings.steps };
  const resumed = restoreStageCheckpoint(checkpointDir, { stage: stage.name, fingerprint: stage.fingerprint, schedule, shapeEmphasis: stage.shapeEmphasis }, parameters, optimizer, stage.ema);
  if (resumed) {
    step = resumed.step;
    elapsedMs = resumed.elapsedMs;
    generator.setState(resumed.generator);
    say(`${stage.name}: resuming at step ${step} of ${settings.steps} (${(elapsedMs / 60000).toFixed(1)} min trained)`);
  } else {
    say(`${stage.name}: starting (${settings.steps} steps, batch ${settings.batch})`);
  }
  log.truncateAfter(stage.name, step);

  const sums = new Map<string, number>(Object.entries(resumed?.pendingLog?.sums ?? {}));
  let counted = resumed?.pendingLog?.steps ?? 0;
  let microBatches: number[] | undefined = options.microBatch === undefined ? resumed?.microBatches : undefined;
  const checkpoint = () =>
    writeStageCheckpoint(checkpointDir, {
      stage: stage.name,
      fingerprint: stage.fingerprint,
      step,
      generator: generator.getState(),
      elapsedMs,
      parameters,
      optimizer,
      ema: stage.ema,
      microBatches,
      pendingLog: { sums: Object.fromEntries(sums), steps: counted },
      schedule,
      shapeEmphasis: stage.shapeEmphasis,
    });

  const decayStart = settings.optimizer.schedule === 'warmup_stable_decay' ? settings.steps - settings.optimizer.decaySteps! : null;
  const stableDir = join(options.dir, STABLE_CHECKPOINT_DIR);
  const keepStableCheckpoint = () => {
    copyStageCheckpoint(checkpointDir, stableDir);
    say(`${stage.name}: the learning rate decays from step ${step}; its checkpoint is kept in ${STABLE_CHECKPOINT_DIR}/`);
  };
  // a run stopped between the checkpoint and its copy
  if (resumed && step === decayStart && !existsSync(stableDir)) keepStableCheckpoint();
  let stepsThisRun = 0;
  let lastCheckpoint = step;
  const variables = parameters.map((p) => p.variable);
  try {
    while (step < settings.steps) {
      // a step is synchronous: without a turn of the event loop a Ctrl-C handler would only run at the next preview
      await new Promise((resolve) => setImmediate(resolve));
      if ((options.maxSteps !== undefined && stepsThisRun >= options.maxSteps) || options.shouldStop?.()) break;
      const started = performance.now();
      const prepared = stage.prepareStep(generator, step);
      microBatches ??= await planMicroBatches(prepared, variables, settings.batch, optimizer.steps === 0, options.microBatch, say);
      const { loss, terms, grads } = accumulatedStep(prepared, variables, microBatches);
      prepared.dispose();
      const { norm, clipped } = clipGradNorm(grads, settings.optimizer.maxGradNorm);
      const lr = settings.optimizer.learningRate * learningRateFactor(settings.optimizer, step, settings.steps);
      optimizer.step(clipped, lr);
      stage.ema?.update();
      if (!Number.isFinite(loss)) throw new Error(`${stage.name}: the loss is ${loss} at step ${step + 1}; lower the learning rate`);
      sums.set('loss', (sums.get('loss') ?? 0) + loss);
      sums.set('gradNorm', (sums.get('gradNorm') ?? 0) + norm);
      for (const [name, term] of Object.entries(terms)) sums.set(name, (sums.get(name) ?? 0) + term);
      counted++;
      tf.dispose([...grads, ...clipped]);
      step++;
      stepsThisRun++;
      elapsedMs += performance.now() - started;

      if (step % settings.logEvery === 0 || step === settings.steps) {
        // each record holds the means over the steps since the previous record
        const means = Object.fromEntries([...sums].map(([name, sum]) => [name, sum / counted]));
        const record: LossRecord = { ...means, stage: stage.name, step, loss: means.loss!, lr, gradNorm: means.gradNorm!, seconds: Math.round(elapsedMs / 100) / 10 };
        log.append(record);
        sums.clear();
        counted = 0;
      }
      options.onStep?.({ step, total: settings.steps, loss, lr, seconds: elapsedMs / 1000 });
      if ((settings.previewEvery > 0 && step % settings.previewEvery === 0) || step === settings.steps) {
        const t = performance.now();
        await stage.preview(previewDir, step);
        elapsedMs += performance.now() - t;
      }
      if (step % settings.checkpointEvery === 0 || step === settings.steps || step === decayStart) {
        checkpoint();
        lastCheckpoint = step;
      }
      if (step === decayStart) keepStableCheckpoint();
    }
    if (lastCheckpoint !== step) checkpoint();
  } finally {
    optimizer.dispose();
  }
  return { completed: step >= settings.steps, step, stepsThisRun, elapsedMs };
}

/**
 * Fills a fresh optimizer's moments from `steps` batches (drawn as steps fromStep, fromStep + 1, ...) without moving
 * the weights: AdamW steps at learning rate 0. A stage continued from weights alone (an exported model keeps no
 * moments) would otherwise begin with the outsized updates of moments estimated from a single gradient. Returns the
 * micro-batch split it planned, for the stage's checkpoint.
 */
export async function primeOptimizerMoments(
  stage: TrainingStage,
  optimizer: AdamW,
  generator: Generator,
  fromStep: number,
  steps: number,
  options: { microBatch?: number; onMessage?: (message: string) => void } = {},
): Promise<number[]> {
  const say = options.onMessage ?? (() => {});
  const variables = stage.parameters.map((p) => p.variable);
  let microBatches: number[] | undefined;
  for (let k = 0; k < steps; k++) {
    const prepared = stage.prepareStep(generator, fromStep + k);
    microBatches ??= await planMicroBatches(prepared, variables, stage.settings.batch, optimizer.steps === 0, options.microBatch, say);
    const { grads } = accumulatedStep(prepared, variables, microBatches);
    prepared.dispose();
    const { clipped } = clipGradNorm(grads, stage.settings.optimizer.maxGradNorm);
    optimizer.step(clipped, 0);
    tf.dispose([...grads, ...clipped]);
    if ((k + 1) % 10 === 0 || k + 1 === steps) say(`${stage.name}: optimizer moments from ${k + 1} of ${steps} batches`);
  }
  return microBatches ?? [];
}

/**
 * The micro-batch split of a step: `requested` when given, else the largest pass that fits the heap, measured on the
 * prepared batch. Before the optimizer's first step its moments (two copies of the parameters) do not exist yet, so
 * their bytes are held back from the plan.
 */
async function planMicroBatches(
  prepared: PreparedStep,
  variables: tf.Variable[],
  batch: number,
  optimizerStateMissing: boolean,
  requested: number | undefined,
  say: (message: string) => void,
): Promise<number[]> {
  if (requested !== undefined) {
    if (!Number.isInteger(requested) || requested < 1) throw new Error(`microBatch must be a positive integer, got ${requested}`);
    return splitBatch(batch, requested).microBatches;
  }
  const parameterBytes = variables.reduce((sum, v) => sum + v.size * 4, 0);
  const limitBytes = heapStats().limitBytes - (optimizerStateMissing ? 2 * parameterBytes : 0);
  const plan = await planBatch({
    batch,
    limitBytes,
    trainStep: (size) => {
      const { value, grads } = tf.engine().gradients(() => prepared.lossFn({ start: 0, size }).loss, variables, undefined, true);
      tf.dispose([value, ...grads.filter((g): g is tf.Tensor => g !== null)]);
    },
  });
  if (plan.microBatches.length > 1) {
    const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
    say(`batch ${batch} does not fit the heap (${mib(plan.fixedBytes)} MiB + ${mib(plan.bytesPerSample)} MiB per sample): accumulating gradients over ${plan.microBatches.join(' + ')}`);
  }
  return plan.microBatches;
}

/** The batch-mean loss, its logged terms and the gradients of every variable, summed over the micro-batches. */
function accumulatedStep(
  prepared: PreparedStep,
  variables: tf.Variable[],
  microBatches: number[],
): { loss: number; terms: Record<string, number>; grads: tf.Tensor[] } {
  const total = microBatches.reduce((a, b) => a + b, 0);
  let loss = 0;
  const terms: Record<string, number> = {};
  const sums = accumulateGradients(microBatches, (start, size) => {
    const kept: Record<string, tf.Scalar> = {};
    const { value, grads } = tf.engine().gradients(
      () => {
        const result = prepared.lossFn({ start, size });
        for (const [name, term] of Object.entries(result.terms)) kept[name] = tf.keep(term);
        return result.loss;
      },
      variables,
      undefined,
      true,
    );
    const share = size / total;
    loss += share * value.dataSync()[0]!;
    for (const [name, term] of Object.entries(kept)) terms[name] = (terms[name] ?? 0) + share * term.dataSync()[0]!;
    tf.dispose([value, ...Object.values(kept)]);
    return Object.fromEntries(grads.map((g, i) => [String(i), g]));
  });
  return { loss, terms, grads: variables.map((v, i) => sums[String(i)] ?? tf.zerosLike(v)) };
}
