// Runs one attempt of a job in a worker process, whichever queue delivered it: validates the input, builds the
// handler's context, enforces the timeout, turns every way an attempt can end into an AttemptOutcome.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ArtifactStore } from '../storage/artifacts.ts';
import { JobCheckpoints } from './checkpoints.ts';
import { JobInputError, type ImageRef, type JobContext, type JobEventKind, type JsonValue, type ProgressUpdate } from './contract.ts';
import { parseJobInput, type JobRegistry } from './registry.ts';
import type { AttemptOutcome } from './store.ts';

export const MAX_PREVIEW_BYTES = 4 * 1024 * 1024;

/** Why a worker stopped an attempt from outside the handler; used as the AbortSignal's reason. */
export class StopReason extends Error {
  constructor(readonly kind: 'cancelled' | 'timeout' | 'shutdown' | 'lease-lost', message: string) {
    super(message);
    this.name = 'StopReason';
  }
}

/** Delivers an attempt's events in order (to SQLite or to the Redis stream). */
export interface AttemptReporter {
  emit(kind: JobEventKind, data: Record<string, JsonValue>): void;
  /** Resolves when every emitted event is stored; rejects with the first delivery error. */
  flush(): Promise<void>;
}

export interface AttemptSpec {
  jobId: string;
  type: string;
  input: unknown;
  attempt: number;
  maxAttempts: number;
  timeoutMs: number;
}

export interface AttemptEnvironment {
  registry: JobRegistry;
  artifacts: ArtifactStore;
  dataDir: string;
  workerId: string;
  reporter: AttemptReporter;
  /** aborted by the worker with a StopReason: cancellation, shutdown, lease lost */
  stop: AbortSignal;
  /** how long a handler gets to notice an abort before the attempt is given up on without it */
  graceMs: number;
  /** throws when this attempt may no longer save checkpoints */
  assertStillOwner?: () => void;
}

export interface AttemptResult {
  outcome: AttemptOutcome;
  /** the handler ignored the abort past the grace period and is still running in this process */
  handlerStillRunning: boolean;
}

export async function runAttempt(spec: AttemptSpec, env: AttemptEnvironment): Promise<AttemptResult> {
  const definition = env.registry.definition(spec.type);
  const handler = env.registry.handler(spec.type);
  if (!definition || !handler) {
    return { outcome: { kind: 'crashed', error: { kind: 'crash', message: `worker ${env.workerId} has no handler for job type '${spec.type}'` } }, handlerStillRunning: false };
  }
  let input: unknown;
  try {
    input = parseJobInput(definition, spec.input);
  } catch (error) {
    return { outcome: { kind: 'failed', error: { kind: 'input', message: (error as Error).message } }, handlerStillRunning: false };
  }

  const controller = new AbortController();
  const forwardStop = () => controller.abort(env.stop.reason);
  if (env.stop.aborted) forwardStop();
  else env.stop.addEventListener('abort', forwardStop, { once: true });
  const timer = setTimeout(() => controller.abort(new StopReason('timeout', `the attempt ran past its timeout of ${formatDuration(spec.timeoutMs)}`)), spec.timeoutMs);

  const checkpoint = new JobCheckpoints(env.dataDir, spec.jobId, spec.attempt, () => {
    env.assertStillOwner?.();
    const reason = controller.signal.reason;
    if (reason instanceof StopReason && reason.kind === 'lease-lost') throw reason;
  });
  await mkdir(join(tmpdir(), 'mifo-work'), { recursive: true });
  const workDir = await mkdtemp(join(tmpdir(), 'mifo-work', `${spec.jobId}-`));
  let handlerStillRunning = false;
  try {
    const previous = await checkpoint.load().catch(() => null);
    env.reporter.emit('started', {
      attempt: spec.attempt,
      workerId: env.workerId,
      resumedFromCheckpoint: previous !== null,
      checkpointSavedAt: previous?.savedAt ?? null,
    });
    const context: JobContext<unknown> = {
      jobId: spec.jobId,
      type: spec.type,
      input,
      attempt: spec.attempt,
      maxAttempts: spec.maxAttempts,
      workerId: env.workerId,
      signal: controller.signal,
      artifacts: env.artifacts,
      checkpoint,
      workDir,
      progress: (update) => env.reporter.emit('progress', progressData(update)),
      log: (message, level = 'info') => env.reporter.emit('log', { level, message: String(message) }),
      putImage: async (bytes, mediaType, name) => {
        if (bytes.byteLength > MAX_PREVIEW_BYTES) throw new Error(`preview '${name}' is ${bytes.byteLength} bytes; the limit is ${MAX_PREVIEW_BYTES}`);
        return { ...(await env.artifacts.put(bytes, mediaType)), name };
      },
    };

    const settled = await settleWithGrace(handler(context), controller.signal, env.graceMs);
    handlerStillRunning = settled.kind === 'abandoned';
    const outcome = outcomeOf(settled, controller.signal);
    await env.reporter.flush();
    return { outcome, handlerStillRunning };
  } finally {
    clearTimeout(timer);
    env.stop.removeEventListener('abort', forwardStop);
    if (!handlerStillRunning) await rm(workDir, { recursive: true, force: true });
  }
}

type Settled = { kind: 'resolved'; value: unknown } | { kind: 'rejected'; error: unknown } | { kind: 'abandoned' };

/** Waits for the handler; once the signal aborts, waits at most graceMs more. */
function settleWithGrace(run: Promise<unknown>, signal: AbortSignal, graceMs: number): Promise<Settled> {
  return new Promise((resolve) => {
    let graceTimer: NodeJS.Timeout | undefined;
    const startGrace = () => {
      graceTimer = setTimeout(() => resolve({ kind: 'abandoned' }), graceMs);
    };
    if (signal.aborted) startGrace();
    else signal.addEventListener('abort', startGrace, { once: true });
    run.then(
      (value) => resolve({ kind: 'resolved', value }),
      (error) => resolve({ kind: 'rejected', error }),
    ).finally(() => {
      clearTimeout(graceTimer);
      signal.removeEventListener('abort', startGrace);
    });
  });
}

function outcomeOf(settled: Settled, signal: AbortSignal): AttemptOutcome {
  const reason = signal.aborted ? signal.reason : undefined;
  if (reason instanceof StopReason && reason.kind === 'lease-lost') return { kind: 'released', reason: reason.message };
  if (settled.kind === 'resolved') {
    try {
      return { kind: 'completed', result: JSON.parse(JSON.stringify(settled.value ?? null)) as JsonValue };
    } catch (error) {
      return { kind: 'crashed', error: { kind: 'crash', message: `the handler's result is not JSON: ${(error as Error).message}` } };
    }
  }
  if (settled.kind === 'rejected' && settled.error instanceof JobInputError) {
    return { kind: 'failed', error: { kind: 'input', message: settled.error.message } };
  }
  if (reason instanceof StopReason) {
    switch (reason.kind) {
      case 'cancelled':
        return { kind: 'cancelled', reason: reason.message };
      case 'timeout':
        return { kind: 'failed', error: { kind: 'timeout', message: reason.message } };
      case 'shutdown':
        return { kind: 'released', reason: reason.message };
    }
  }
  const error = settled.kind === 'rejected' ? settled.error : new Error('the handler neither finished nor stopped');
  if (process.env.MIFO_QUIET !== '1') process.stderr.write(`[mifo worker] job handler crashed: ${(error as Error)?.stack ?? String(error)}\n`);
  return { kind: 'crashed', error: { kind: 'crash', message: error instanceof Error ? error.message : String(error) } };
}

function progressData(update: ProgressUpdate): Record<string, JsonValue> {
  if (!Number.isFinite(update.step) || !Number.isFinite(update.total)) throw new Error('progress needs finite step and total numbers');
  const data: Record<string, JsonValue> = { step: update.step, total: update.total };
  if (update.phase !== undefined) data.phase = update.phase;
  if (update.message !== undefined) data.message = update.message;
  if (update.etaMs !== undefined) data.etaMs = update.etaMs;
  if (update.metrics) data.metrics = { ...update.metrics };
  if (update.images) data.images = update.images.map((image: ImageRef) => ({ ...image }));
  return data;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120_000) return `${Math.round(ms / 100) / 10} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 6000) / 10} min`;
  return `${Math.round(ms / 360_000) / 10} h`;
}
