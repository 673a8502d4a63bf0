// Job rows and job events in SQLite: the system of record the web server reads for both queue kinds. With the
// embedded queue, worker processes on the same machine claim, renew and finish jobs here directly; with Redis, the
// server's event pump applies the events that workers publish.
import { randomUUID } from 'node:crypto';
import type { Db } from '../storage/database.ts';
import {
  TERMINAL_STATUSES,
  type JobDefinition,
  type JobError,
  type JobEvent,
  type JobEventKind,
  type JobRecord,
  type JobResource,
  type JobStatus,
  type JsonValue,
  type ProgressUpdate,
} from './contract.ts';

interface JobRow {
  id: string;
  type: string;
  resource: JobResource;
  status: JobStatus;
  project_id: string | null;
  input: string;
  result: string | null;
  error: string | null;
  progress: string | null;
  priority: number;
  attempts: number;
  max_attempts: number;
  timeout_ms: number;
  run_after: number;
  worker_id: string | null;
  lease_token: string | null;
  lease_expires_at: number | null;
  cancel_requested_at: number | null;
  created_at: number;
  updated_at: number;
  started_at: number | null;
  finished_at: number | null;
}

interface EventRow {
  id: number;
  job_id: string;
  at: number;
  kind: JobEventKind;
  data: string;
}

export interface ClaimedJob {
  id: string;
  type: string;
  input: JsonValue;
  attempt: number;
  maxAttempts: number;
  timeoutMs: number;
  leaseToken: string;
}

/** How one attempt ended, as reported by the runner. */
export type AttemptOutcome =
  | { kind: 'completed'; result: JsonValue }
  | { kind: 'failed'; error: JobError }
  | { kind: 'cancelled'; reason: string }
  /** the handler threw unexpectedly: retried with backoff while attempts remain */
  | { kind: 'crashed'; error: JobError }
  /** the worker let go (shutdown, lease lost): the job goes back to the queue without using up an attempt */
  | { kind: 'released'; reason: string };

export interface ListJobsFilter {
  projectId?: string;
  type?: string;
  statuses?: JobStatus[];
  /** only jobs created before this job (cursor for the next page) */
  before?: string;
  limit?: number;
}

export function isTerminal(status: JobStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

export function retryDelayMs(attempt: number, baseMs: number): number {
  return Math.min(10 * 60_000, baseMs * 2 ** Math.max(0, attempt - 1));
}

export class JobStore {
  /** definitionOf: where recordResult hooks come from (the job registry); retryBaseMs: first crash backoff. */
  constructor(
    readonly db: Db,
    private readonly options: { retryBaseMs?: number; definitionOf?: (type: string) => JobDefinition | undefined } = {},
  ) {}

  insert(options: { definition: JobDefinition; input: unknown; timeoutMs: number; projectId?: string | null; priority?: number }): JobRecord {
    const now = Date.now();
    const id = randomUUID();
    this.db.transaction(() => {
      this.db
        .prepare(
          `INSERT INTO jobs (id, type, resource, status, project_id, input, priority, max_attempts, timeout_ms, run_after, created_at, updated_at)
           VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(id, options.definition.type, options.definition.resource, options.projectId ?? null, JSON.stringify(options.input), options.priority ?? 0, options.definition.maxAttempts, options.timeoutMs, now, now, now);
      this.insertEvent(id, 'queued', { type: options.definition.type }, now);
    })();
    return this.require(id);
  }

  get(id: string): JobRecord | null {
    const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
    return row ? toRecord(row) : null;
  }

  require(id: string): JobRecord {
    const record = this.get(id);
    if (!record) throw new Error(`job ${id} does not exist`);
    return record;
  }

  list(filter: ListJobsFilter = {}): JobRecord[] {
    const clauses: string[] = [];
    const params: unknown[] = [];
    if (filter.projectId) {
      clauses.push('project_id = ?');
      params.push(filter.projectId);
    }
    if (filter.type) {
      clauses.push('type = ?');
      params.push(filter.type);
    }
    if (filter.statuses?.length) {
      clauses.push(`status IN (${filter.statuses.map(() => '?').join(', ')})`);
      params.push(...filter.statuses);
    }
    if (filter.before) {
      const cursor = this.db.prepare('SELECT created_at, id FROM jobs WHERE id = ?').get(filter.before) as { created_at: number; id: string } | undefined;
      if (cursor) {
        clauses.push('(created_at < ? OR (created_at = ? AND id < ?))');
        params.push(cursor.created_at, cursor.created_at, cursor.id);
      }
    }
    const where = clauses.length ? `WHERE ${clauses.join(' AND ')}` : '';
    const limit = Math.min(Math.max(filter.limit ?? 50, 1), 500);
    const rows = this.db.prepare(`SELECT * FROM jobs ${where} ORDER BY created_at DESC, id DESC LIMIT ${limit}`).all(...params) as JobRow[];
    return rows.map(toRecord);
  }

  /** Non-terminal jobs, oldest first (for reconciliation). */
  active(limit = 500): JobRecord[] {
    const rows = this.db.prepare(`SELECT * FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_at LIMIT ?`).all(limit) as JobRow[];
    return rows.map(toRecord);
  }

  events(scope: { jobId: string } | { projectId: string }, afterId: number, limit = 200): JobEvent[] {
    const rows =
      'jobId' in scope
        ? (this.db.prepare('SELECT * FROM job_events WHERE job_id = ? AND id > ? ORDER BY id LIMIT ?').all(scope.jobId, afterId, limit) as EventRow[])
        : (this.db
            .prepare('SELECT e.* FROM job_events e JOIN jobs j ON j.id = e.job_id WHERE j.project_id = ? AND e.id > ? ORDER BY e.id LIMIT ?')
            .all(scope.projectId, afterId, limit) as EventRow[]);
    return rows.map(toEvent);
  }

  latestEventId(): number {
    const row = this.db.prepare('SELECT MAX(id) AS id FROM job_events').get() as { id: number | null };
    return row.id ?? 0;
  }

  /**
   * Records an event and the status change it implies. Dropped (returns null) when the job is unknown or already
   * finished (late events from a worker that lost its job), when leaseToken no longer matches (an embedded worker
   * that lost its lease), or when sourceId was already stored (a redelivered stream entry).
   */
  applyEvent(jobId: string, kind: JobEventKind, data: Record<string, JsonValue>, options: { leaseToken?: string; sourceId?: string; at?: number } = {}): JobEvent | null {
    return this.db.transaction((): JobEvent | null => {
      const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(jobId) as JobRow | undefined;
      if (!row || isTerminal(row.status)) return null;
      if (options.leaseToken !== undefined && row.lease_token !== options.leaseToken) return null;
      const at = options.at ?? Date.now();
      const event = this.insertEvent(jobId, kind, data, at, options.sourceId);
      if (!event) return null;
      if (kind === 'completed') return this.settleCompleted(row, event, data.result ?? null, at);
      this.applyTransition(row, kind, data, at);
      return event;
    }).immediate();
  }

  /** Cancels a queued job at once; asks a running job's worker to stop. */
  requestCancel(id: string): { record: JobRecord; state: 'cancelled' | 'requested' | 'finished' } | null {
    return this.db.transaction(() => {
      const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
      if (!row) return null;
      if (isTerminal(row.status)) return { record: toRecord(row), state: 'finished' as const };
      const now = Date.now();
      if (row.status === 'queued') {
        this.db.prepare('UPDATE jobs SET cancel_requested_at = ? WHERE id = ?').run(now, id);
        this.finishRow(row, { kind: 'cancelled', reason: 'cancelled before it started' }, now);
        return { record: this.require(id), state: 'cancelled' as const };
      }
      if (row.cancel_requested_at === null) {
        this.insertEvent(id, 'cancel-requested', {}, now);
        this.db.prepare('UPDATE jobs SET cancel_requested_at = ?, updated_at = ? WHERE id = ?').run(now, now, id);
      }
      return { record: this.require(id), state: 'requested' as const };
    }).immediate();
  }

  /** Puts a failed or cancelled job back in the queue; it resumes from its checkpoint if it saved one. */
  requeue(id: string): JobRecord | null {
    return this.db.transaction(() => {
      const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
      if (!row) return null;
      if (row.status !== 'failed' && row.status !== 'cancelled') {
        throw new Error(`job ${id} is ${row.status}; only failed or cancelled jobs can be retried`);
      }
      const now = Date.now();
      this.db
        .prepare(
          `UPDATE jobs SET status = 'queued', attempts = 0, error = NULL, result = NULL, cancel_requested_at = NULL, lease_token = NULL,
             lease_expires_at = NULL, run_after = ?, finished_at = NULL, updated_at = ? WHERE id = ?`,
        )
        .run(now, now, id);
      this.insertEvent(id, 'queued', { type: row.type, retry: true }, now);
      return this.require(id);
    }).immediate();
  }

  /** Terminal transition decided outside a worker (Redis reconciliation); no-op when already finished. */
  finishFromOutside(id: string, outcome: Extract<AttemptOutcome, { kind: 'completed' | 'failed' | 'cancelled' }>): boolean {
    return this.db.transaction(() => {
      const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
      if (!row || isTerminal(row.status)) return false;
      this.finishRow(row, outcome, Date.now());
      return true;
    }).immediate();
  }

  // ---- embedded queue: leases ----

  /**
   * Takes the next runnable job for this worker: a queued one, or a running one whose worker stopped renewing its
   * lease (that worker is presumed dead; the job resumes here from its checkpoint).
   */
  claim(options: { workerId: string; resources: JobResource[]; types: string[]; leaseMs: number }): ClaimedJob | null {
    if (options.resources.length === 0 || options.types.length === 0) return null;
    return this.db.transaction((): ClaimedJob | null => {
      const now = Date.now();
      const candidates = this.db
        .prepare(
          `SELECT * FROM jobs
           WHERE resource IN (${options.resources.map(() => '?').join(', ')}) AND type IN (${options.types.map(() => '?').join(', ')})
             AND ((status = 'queued' AND run_after <= ?) OR (status = 'running' AND lease_expires_at < ?))
           ORDER BY priority DESC, created_at, id LIMIT 16`,
        )
        .all(...options.resources, ...options.types, now, now) as JobRow[];
      for (const row of candidates) {
        if (row.status === 'running') {
          this.insertEvent(row.id, 'stalled', { attempt: row.attempts, workerId: row.worker_id }, now);
          if (row.attempts >= row.max_attempts) {
            this.finishRow(row, { kind: 'failed', error: { kind: 'stalled', message: `the worker running this job stopped responding on each of ${row.attempts} attempts (last: ${row.worker_id})` } }, now);
            continue;
          }
        }
        if (row.cancel_requested_at !== null) {
          this.finishRow(row, { kind: 'cancelled', reason: 'cancelled while its worker was gone' }, now);
          continue;
        }
        const leaseToken = randomUUID();
        this.db
          .prepare(
            `UPDATE jobs SET status = 'running', attempts = attempts + 1, worker_id = ?, lease_token = ?, lease_expires_at = ?,
               started_at = COALESCE(started_at, ?), updated_at = ? WHERE id = ?`,
          )
          .run(options.workerId, leaseToken, now + options.leaseMs, now, now, row.id);
        return {
          id: row.id,
          type: row.type,
          input: JSON.parse(row.input) as JsonValue,
          attempt: row.attempts + 1,
          maxAttempts: row.max_attempts,
          timeoutMs: row.timeout_ms,
          leaseToken,
        };
      }
      return null;
    }).immediate();
  }

  /** Extends a lease. held=false means another worker took the job over: stop working on it. */
  renewLease(id: string, leaseToken: string, leaseMs: number): { held: boolean; cancelRequested: boolean } {
    const row = this.db
      .prepare(`UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND lease_token = ? AND status = 'running' RETURNING cancel_requested_at`)
      .get(Date.now() + leaseMs, id, leaseToken) as { cancel_requested_at: number | null } | undefined;
    return { held: row !== undefined, cancelRequested: row?.cancel_requested_at != null };
  }

  /** Of these running jobs, the ones someone asked to cancel. */
  cancelRequested(ids: string[]): string[] {
    if (ids.length === 0) return [];
    const rows = this.db.prepare(`SELECT id FROM jobs WHERE id IN (${ids.map(() => '?').join(', ')}) AND cancel_requested_at IS NOT NULL`).all(...ids) as { id: string }[];
    return rows.map((row) => row.id);
  }

  /** Records how an attempt ended; false when the lease was lost meanwhile (the outcome is dropped). */
  finishAttempt(id: string, leaseToken: string, outcome: AttemptOutcome): boolean {
    return this.db.transaction(() => {
      const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
      if (!row || row.status !== 'running' || row.lease_token !== leaseToken) return false;
      this.finishRow(row, outcome, Date.now());
      return true;
    }).immediate();
  }

  // ---- internals ----

  private finishRow(row: JobRow, outcome: AttemptOutcome, now: number): void {
    switch (outcome.kind) {
      case 'completed':
        this.settleCompleted(row, this.insertEvent(row.id, 'completed', { result: outcome.result }, now)!, outcome.result, now);
        return;
      case 'failed':
        this.insertEvent(row.id, 'failed', { error: { ...outcome.error } }, now);
        this.markTerminal(row.id, 'failed', { error: outcome.error }, now);
        return;
      case 'cancelled':
        this.insertEvent(row.id, 'cancelled', { reason: outcome.reason }, now);
        this.markTerminal(row.id, 'cancelled', {}, now);
        return;
      case 'crashed': {
        if (row.attempts >= row.max_attempts) {
          const message = `${outcome.error.message} (gave up after ${row.attempts} attempts)`;
          this.finishRow(row, { kind: 'failed', error: { kind: outcome.error.kind, message } }, now);
          return;
        }
        const delayMs = retryDelayMs(row.attempts, this.options.retryBaseMs ?? 2000);
        this.insertEvent(row.id, 'retrying', { attempt: row.attempts, error: { ...outcome.error }, delayMs }, now);
        this.db.prepare(`UPDATE jobs SET status = 'queued', run_after = ?, lease_token = NULL, lease_expires_at = NULL, updated_at = ? WHERE id = ?`).run(now + delayMs, now, row.id);
        return;
      }
      case 'released':
        this.insertEvent(row.id, 'released', { reason: outcome.reason }, now);
        this.db
          .prepare(`UPDATE jobs SET status = 'queued', attempts = MAX(attempts - 1, 0), run_after = ?, lease_token = NULL, lease_expires_at = NULL, updated_at = ? WHERE id = ?`)
          .run(now, now, row.id);
        return;
    }
  }

  /** Completes a job whose 'completed' event was just stored, running its type's recordResult; fails it if that throws. */
  private settleCompleted(row: JobRow, event: JobEvent, result: JsonValue, at: number): JobEvent {
    const recordResult = this.options.definitionOf?.(row.type)?.recordResult;
    if (recordResult) {
      try {
        // A nested transaction is a savepoint: a hook that throws leaves none of its writes behind.
        this.db.transaction(() => recordResult(this.db, toRecord(row), result))();
      } catch (error) {
        const failure: JobError = { kind: 'crash', message: `the job finished but recording its result failed: ${(error as Error).message}` };
        const data = { error: { ...failure } };
        this.db.prepare(`UPDATE job_events SET kind = 'failed', data = ? WHERE id = ?`).run(JSON.stringify(data), event.id);
        this.markTerminal(row.id, 'failed', { error: failure }, at);
        return { ...event, kind: 'failed', data };
      }
    }
    this.markTerminal(row.id, 'completed', { result }, at);
    return event;
  }

  private markTerminal(id: string, status: 'completed' | 'failed' | 'cancelled', fields: { result?: JsonValue; error?: JobError | JsonValue }, at: number): void {
    this.db
      .prepare(
        `UPDATE jobs SET status = ?, result = COALESCE(?, result), error = COALESCE(?, error), lease_token = NULL, lease_expires_at = NULL,
           finished_at = ?, updated_at = ? WHERE id = ?`,
      )
      .run(status, fields.result === undefined ? null : JSON.stringify(fields.result), fields.error === undefined ? null : JSON.stringify(fields.error), at, at, id);
  }

  private insertEvent(jobId: string, kind: JobEventKind, data: Record<string, JsonValue>, at: number, sourceId?: string): JobEvent | null {
    const info = this.db
      .prepare('INSERT OR IGNORE INTO job_events (job_id, at, kind, data, source_id) VALUES (?, ?, ?, ?, ?)')
      .run(jobId, at, kind, JSON.stringify(data), sourceId ?? null);
    if (info.changes === 0) return null;
    return { id: Number(info.lastInsertRowid), jobId, at, kind, data };
  }

  /** Status changes implied by an event that arrived from a worker (Redis) or the runner (embedded). */
  private applyTransition(row: JobRow, kind: JobEventKind, data: Record<string, JsonValue>, at: number): void {
    if (kind === 'failed' || kind === 'cancelled') {
      this.markTerminal(row.id, kind, kind === 'failed' ? { error: data.error ?? null } : {}, at);
      return;
    }
    switch (kind) {
      case 'started':
        this.db
          .prepare(`UPDATE jobs SET status = 'running', attempts = ?, worker_id = ?, started_at = COALESCE(started_at, ?), updated_at = ? WHERE id = ?`)
          .run(Number(data.attempt ?? row.attempts), String(data.workerId ?? ''), at, at, row.id);
        return;
      case 'progress':
        this.db.prepare('UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ?').run(JSON.stringify(data), at, row.id);
        return;
      case 'stalled':
      case 'retrying':
      case 'released':
        this.db.prepare(`UPDATE jobs SET status = 'queued', updated_at = ? WHERE id = ?`).run(at, row.id);
        return;
      case 'cancel-requested':
        this.db.prepare('UPDATE jobs SET cancel_requested_at = COALESCE(cancel_requested_at, ?), updated_at = ? WHERE id = ?').run(at, at, row.id);
        return;
      default:
        this.db.prepare('UPDATE jobs SET updated_at = ? WHERE id = ?').run(at, row.id);
    }
  }
}

function parseJson<T>(text: string | null): T | null {
  return text === null ? null : (JSON.parse(text) as T);
}

function toRecord(row: JobRow): JobRecord {
  return {
    id: row.id,
    type: row.type,
    resource: row.resource,
    status: row.status,
    projectId: row.project_id,
    input: JSON.parse(row.input) as JsonValue,
    result: parseJson<JsonValue>(row.result),
    error: parseJson<JobError>(row.error),
    progress: parseJson<ProgressUpdate>(row.progress),
    priority: row.priority,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    timeoutMs: row.timeout_ms,
    workerId: row.worker_id,
    cancelRequested: row.cancel_requested_at !== null,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  };
}

function toEvent(row: EventRow): JobEvent {
  return { id: row.id, jobId: row.job_id, at: row.at, kind: row.kind, data: JSON.parse(row.data) as Record<string, JsonValue> };
}
