// The job handler contract. A handler is an async function of a JobContext: it reads its validated input, reports
// progress through the context, saves resumable state with ctx.checkpoint, checks ctx.signal once per step, and
// returns a JSON result. It runs in a worker process, never in the web server, and may be started again on another
// machine after a crash, so everything it needs must come from its input, the artifact store and its checkpoint.
import type { z } from 'zod';
import type { ArtifactRef, ArtifactStore } from '../storage/artifacts.ts';
import type { Db } from '../storage/database.ts';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** 'gpu' jobs need the accelerator (one at a time per GPU worker); 'cpu' jobs run N at a time on CPU workers. */
export type JobResource = 'gpu' | 'cpu';
export type JobStatus = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';
export const TERMINAL_STATUSES: readonly JobStatus[] = ['completed', 'failed', 'cancelled'];

/**
 * input: the job's input is wrong (never retried); crash: the handler threw (retried with backoff, resuming from the
 * checkpoint); timeout: an attempt ran past its timeout; stalled: workers kept dying on it; lost: the queue lost it.
 */
export type JobErrorKind = 'input' | 'crash' | 'timeout' | 'stalled' | 'lost';

export interface JobError {
  kind: JobErrorKind;
  message: string;
}

/** Thrown by a handler (or by input validation) when the input cannot work: the job fails once, with this message. */
export class JobInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JobInputError';
  }
}

export interface ImageRef extends ArtifactRef {
  /** what the image shows, e.g. 'preview' or 'attention:<asset0>' */
  name: string;
}

export interface ProgressUpdate {
  step: number;
  total: number;
  phase?: string;
  message?: string;
  /** loss terms, learning rate, ... for charts */
  metrics?: Record<string, number>;
  etaMs?: number;
  /** previews and attention maps, stored with ctx.putImage and carried by reference */
  images?: ImageRef[];
}

export interface JobCheckpoint<S extends JsonValue = JsonValue> {
  state: S;
  /** name → path of a file saved with the checkpoint (read-only; copy before modifying) */
  files: Record<string, string>;
  savedAt: number;
  attempt: number;
}

export interface CheckpointStore {
  /** The latest checkpoint of this job, from any earlier attempt on any worker; null on a fresh start. */
  load<S extends JsonValue = JsonValue>(): Promise<JobCheckpoint<S> | null>;
  /** Replaces the checkpoint atomically: after a crash, load() returns either the previous one or this one. */
  save(state: JsonValue, files?: Record<string, Uint8Array | { path: string }>): Promise<void>;
}

export interface JobContext<I> {
  readonly jobId: string;
  readonly type: string;
  readonly input: I;
  /** 1 on the first start; a resumed job has a larger number and usually a checkpoint */
  readonly attempt: number;
  readonly maxAttempts: number;
  readonly workerId: string;
  /** Aborted on cancellation, timeout, worker shutdown or lease loss. Check it every step: `ctx.signal.throwIfAborted()`. */
  readonly signal: AbortSignal;
  readonly artifacts: ArtifactStore;
  readonly checkpoint: CheckpointStore;
  /** An empty scratch folder for this attempt, removed when it ends. */
  readonly workDir: string;
  progress(update: ProgressUpdate): void;
  log(message: string, level?: 'info' | 'warn'): void;
  /** Stores a small image (at most 4 MB) for a progress event; returns the reference to put in `images`. */
  putImage(bytes: Uint8Array, mediaType: 'image/png' | 'image/jpeg' | 'image/webp', name: string): Promise<ImageRef>;
}

export type JobHandler<I = any, R extends JsonValue = JsonValue> = (context: JobContext<I>) => Promise<R>;

export interface JobDefinition<I = any> {
  type: string;
  description: string;
  resource: JobResource;
  /** Validates and normalises the input, at submission and again on the worker. */
  input: z.ZodType<I>;
  /** Per attempt; a submission may ask for less or more (up to maxTimeoutMs). */
  timeoutMs: number;
  maxTimeoutMs: number;
  /** Starts allowed in all (crash retries and takeovers after a dead worker included). */
  maxAttempts: number;
  /**
   * Records a completed job's result in the metadata (a learn job's concept rows, say). Runs once, inside the
   * transaction that marks the job completed, in whichever process records that: an embedded worker or the web
   * server. It must only write rows. If it throws, the job fails with its message instead.
   */
  recordResult?: (db: Db, job: JobRecord, result: JsonValue) => void;
}

export type JobEventKind =
  | 'queued'
  | 'started'
  | 'progress'
  | 'log'
  | 'stalled'
  | 'retrying'
  | 'released'
  | 'cancel-requested'
  | 'completed'
  | 'failed'
  | 'cancelled';

export const TERMINAL_EVENT_KINDS: readonly JobEventKind[] = ['completed', 'failed', 'cancelled'];

export interface JobEvent {
  /** increasing across all jobs; the SSE event id */
  id: number;
  jobId: string;
  at: number;
  kind: JobEventKind;
  data: Record<string, JsonValue>;
}

export interface JobRecord {
  id: string;
  type: string;
  resource: JobResource;
  status: JobStatus;
  projectId: string | null;
  input: JsonValue;
  result: JsonValue | null;
  error: JobError | null;
  progress: ProgressUpdate | null;
  priority: number;
  attempts: number;
  maxAttempts: number;
  timeoutMs: number;
  workerId: string | null;
  cancelRequested: boolean;
  createdAt: number;
  updatedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
}

export interface SubmitRequest {
  type: string;
  input: unknown;
  projectId?: string | null;
  priority?: number;
  timeoutMs?: number;
}
