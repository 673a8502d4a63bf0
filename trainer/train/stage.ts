// The loop both training stages share: resume from the stage's checkpoint, then per step draw a batch, take the
// gradients of the stage's loss, clip them, take an AdamW step at the scheduled learning rate, update the EMA, and
// log, checkpoint and preview at their intervals. A stop request (signal or step budget) ends the loop after the
// current step with a checkpoint, so the next run continues exactly there.
import { join } from 'node:path';
import { AdamW, clipGradNorm } from '../learn/optim.ts';
import { tf } from '../runtime/backend.ts';
import type { Generator } from '../util/random.ts';
import { restoreStageCheckpoint, writeStageCheckpoint, type NamedParameter, type StageName } from './checkpoint.ts';
import type { ExponentialMovingAverage } from './ema.ts';
import type { LossLog, LossRecord } from './log.ts';
import { learningRateFactor, type OptimizerRecipe, type StageBookkeeping } from './recipe.ts';

export interface StepLoss {
  /** the loss to minimise */
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
  /** draws the step's data from `generator` and returns the loss function to differentiate */
  prepareStep(generator: Generator): { lossFn: () => StepLoss; dispose: () => void };
  /** writes a preview (decoded images) of the current weights into `dir` */
  preview(dir: string, step: number): Promise<void>;
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
}

export interface StageRunResult {
  /** all steps of the stage are done */
  completed: boolean;
  step: number;
  /** steps taken by this run */
  stepsThisRun: number;
  elapsedMs: number;
}

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
  const resumed = restoreStageCheckpoint(checkpointDir, { stage: stage.name, fingerprint: stage.fingerprint }, parameters, optimizer, stage.ema);
  if (resumed) {
    step = resumed.step;
    elapsedMs = resumed.elapsedMs;
    generator.setState(resumed.generator);
    say(`${stage.name}: resuming at step ${step} of ${settings.steps} (${(elapsedMs / 60000).toFixed(1)} min trained)`);
  } else {
    say(`${stage.name}: starting (${settings.steps} steps, batch ${settings.batch})`);
  }
  log.truncateAfter(stage.name, step);

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
    });

  const sums = new Map<string, number>();
  let counted = 0;
  let stepsThisRun = 0;
  let lastCheckpoint = step;
  try {
    while (step < settings.steps) {
      if ((options.maxSteps !== undefined && stepsThisRun >= options.maxSteps) || options.shouldStop?.()) break;
      const started = performance.now();
      const prepared = stage.prepareStep(generator);
      const kept: Record<string, tf.Scalar> = {};
      const variables = parameters.map((p) => p.variable);
      const { value, grads } = tf.engine().gradients(
        () => {
          const { loss, terms } = prepared.lossFn();
          for (const [name, term] of Object.entries(terms)) kept[name] = tf.keep(term);
          return loss;
        },
        variables,
        undefined,
        true,
      );
      prepared.dispose();
      const filled = grads.map((g, i) => g ?? tf.zerosLike(variables[i]!));
      const { norm, clipped } = clipGradNorm(filled, settings.optimizer.maxGradNorm);
      const lr = settings.optimizer.learningRate * learningRateFactor(settings.optimizer, step, settings.steps);
      optimizer.step(clipped, lr);
      stage.ema?.update();
      const loss = value.dataSync()[0]!;
      if (!Number.isFinite(loss)) throw new Error(`${stage.name}: the loss is ${loss} at step ${step + 1}; lower the learning rate`);
      sums.set('loss', (sums.get('loss') ?? 0) + loss);
      sums.set('gradNorm', (sums.get('gradNorm') ?? 0) + norm);
      for (const [name, term] of Object.entries(kept)) sums.set(name, (sums.get(name) ?? 0) + term.dataSync()[0]!);
      counted++;
      tf.dispose([value, ...filled, ...clipped, ...Object.values(kept)]);
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
      if (step % settings.checkpointEvery === 0 || step === settings.steps) {
        checkpoint();
        lastCheckpoint = step;
      }
    }
    if (lastCheckpoint !== step) checkpoint();
  } finally {
    optimizer.dispose();
  }
  return { completed: step >= settings.steps, step, stepsThisRun, elapsedMs };
}
