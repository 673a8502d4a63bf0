// A real checkpointing job for the queue tests, loaded into worker processes with `--module`. Each step sleeps
// (standing in for a training step that cannot be interrupted), adds step² to a running sum, saves {step, sum} plus
// a file as its checkpoint and reports progress. A resumed attempt continues from the checkpoint, so the final sum
// is the same however often the job was interrupted. When it completes it leaves a marker file, so tests can count
// how many times each job ran to completion.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { JobInputError, type JobContext } from '../../../server/jobs/contract.ts';
import type { JobRegistry } from '../../../server/jobs/registry.ts';
import { writeFileAtomic } from '../../../server/storage/atomic.ts';

export const STEP_JOB = 'test-steps';
export const STEP_JOB_CPU = 'test-steps-cpu';

const input = z.object({
  steps: z.number().int().min(1).max(10_000),
  stepMs: z.number().int().min(0).max(10_000),
  /** throw an unexpected error when reaching this step on this attempt */
  crashAt: z.object({ attempt: z.number().int().min(1), step: z.number().int().min(1) }).optional(),
  /** an artifact the job needs; a missing one is bad input */
  sourceSha256: z.string().optional(),
});

type StepInput = z.infer<typeof input>;

export type StepJobResult = {
  sum: number;
  steps: number;
  resumedFrom: number;
  attempt: number;
  pid: number;
  startedAt: number;
  finishedAt: number;
};

export function expectedSum(steps: number): number {
  return (steps * (steps + 1) * (2 * steps + 1)) / 6;
}

export function completionMarkerDir(dataDir: string): string {
  return join(dataDir, 'test-completions');
}

const PREVIEW = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0]);

async function runSteps(context: JobContext<StepInput>): Promise<StepJobResult> {
  const { steps, stepMs, crashAt, sourceSha256 } = context.input;
  if (sourceSha256 !== undefined && !/^[0-9a-f]{64}$/.test(sourceSha256)) throw new JobInputError(`sourceSha256 '${sourceSha256}' is not a sha256`);
  if (sourceSha256 !== undefined && !context.artifacts.has(sourceSha256)) throw new JobInputError(`source artifact ${sourceSha256} does not exist`);
  const startedAt = Date.now();
  const checkpoint = await context.checkpoint.load<{ step: number; sum: number }>();
  let step = checkpoint?.state.step ?? 0;
  let sum = checkpoint?.state.sum ?? 0;
  if (checkpoint && readFileSync(checkpoint.files['sum.txt']!, 'utf8') !== String(sum)) throw new Error('checkpoint file does not match its state');
  const resumedFrom = step;
  while (step < steps) {
    context.signal.throwIfAborted();
    await sleep(stepMs);
    step += 1;
    sum += step * step;
    if (crashAt && crashAt.attempt === context.attempt && crashAt.step === step) throw new Error(`simulated crash at step ${step}`);
    await context.checkpoint.save({ step, sum }, { 'sum.txt': Buffer.from(String(sum)) });
    const images = step === 1 ? [await context.putImage(PREVIEW, 'image/png', 'preview')] : undefined;
    context.progress({ step, total: steps, metrics: { sum }, ...(images ? { images } : {}) });
  }
  const dataDir = process.env.MIFO_DATA_DIR!;
  await writeFileAtomic(join(completionMarkerDir(dataDir), `${context.jobId}.${process.pid}.${randomBytes(4).toString('hex')}`), String(sum));
  return { sum, steps, resumedFrom, attempt: context.attempt, pid: process.pid, startedAt, finishedAt: Date.now() };
}

export function register(registry: JobRegistry): void {
  const common = { input, timeoutMs: 60_000, maxTimeoutMs: 600_000, maxAttempts: 3, description: 'test: a checkpointing step loop' };
  registry.handle(registry.define({ type: STEP_JOB, resource: 'gpu', ...common }), runSteps);
  registry.handle(registry.define({ type: STEP_JOB_CPU, resource: 'cpu', ...common }), runSteps);
}
