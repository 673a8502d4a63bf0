// What the web server does with jobs: validate and submit, cancel, retry, read, and follow events. Job rows and
// events are read from SQLite for both queue kinds; the backend only moves work to the workers (and, for Redis,
// brings their events back into SQLite).
import type { JobEvent, JobRecord, SubmitRequest } from './contract.ts';
import type { JobRegistry } from './registry.ts';
import { isTerminal, type JobStore, type ListJobsFilter } from './store.ts';

export interface QueueBackend {
  readonly kind: 'embedded' | 'redis';
  /**
   * Hands a queued job to the workers. Idempotent (the same job is never queued twice) and does not throw: a job it
   * could not hand over stays queued in SQLite and is handed over later.
   */
  enqueue(record: JobRecord): Promise<void>;
  /** tells workers that a job was cancelled (queued: drop it; running: abort it) */
  cancel(record: JobRecord): Promise<void>;
  close(): Promise<void>;
}

/** Wakes event followers when new events may be stored: on local writes at once, on other processes' writes by polling. */
export class EventWatcher {
  private readonly waiters = new Set<() => void>();
  private timer: NodeJS.Timeout | undefined;
  private lastSeen: number;

  constructor(
    private readonly store: JobStore,
    private readonly pollMs: number,
  ) {
    this.lastSeen = store.latestEventId();
  }

  notify(): void {
    for (const wake of [...this.waiters]) wake();
  }

  /** Resolves on the next change, after timeoutMs, or when signal aborts. */
  wait(signal: AbortSignal | undefined, timeoutMs: number): Promise<void> {
    if (signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timeout);
        signal?.removeEventListener('abort', wake);
        this.waiters.delete(wake);
        if (this.waiters.size === 0) this.stopPolling();
        resolve();
      };
      const timeout = setTimeout(wake, timeoutMs);
      signal?.addEventListener('abort', wake, { once: true });
      this.waiters.add(wake);
      this.startPolling();
    });
  }

  close(): void {
    this.notify();
    this.stopPolling();
  }

  private startPolling(): void {
    this.timer ??= setInterval(() => {
      const latest = this.store.latestEventId();
      if (latest !== this.lastSeen) {
        this.lastSeen = latest;
        this.notify();
      }
    }, this.pollMs);
  }

  private stopPolling(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

export class JobNotFoundError extends Error {
  constructor(readonly jobId: string) {
    super(`job ${jobId} does not exist`);
    this.name = 'JobNotFoundError';
  }
}

const PAGE = 200;

export class JobService {
  constructor(
    readonly store: JobStore,
    readonly registry: JobRegistry,
    readonly backend: QueueBackend,
    readonly watcher: EventWatcher,
  ) {}

  /** Validates against the job type's definition (JobInputError on bad input), stores the job, hands it to workers. */
  async submit(request: SubmitRequest): Promise<JobRecord> {
    const { definition, input, timeoutMs } = this.registry.validateSubmission(request);
    const record = this.store.insert({ definition, input, timeoutMs, projectId: request.projectId ?? null, priority: request.priority ?? 0 });
    this.watcher.notify();
    await this.backend.enqueue(record);
    return record;
  }

  async cancel(id: string): Promise<JobRecord> {
    const outcome = this.store.requestCancel(id);
    if (!outcome) throw new JobNotFoundError(id);
    this.watcher.notify();
    if (outcome.state !== 'finished') await this.backend.cancel(outcome.record);
    return this.store.require(id);
  }

  async retry(id: string): Promise<JobRecord> {
    if (!this.store.get(id)) throw new JobNotFoundError(id);
    const record = this.store.requeue(id)!;
    this.watcher.notify();
    await this.backend.enqueue(record);
    return record;
  }

  get(id: string): JobRecord | null {
    return this.store.get(id);
  }

  list(filter: ListJobsFilter = {}): JobRecord[] {
    return this.store.list(filter);
  }

  /**
   * Yields a job's (or a project's) events after afterId, live. A job's stream ends after its terminal event; a
   * project's runs until the signal aborts.
   */
  async *follow(scope: { jobId: string } | { projectId: string }, afterId: number, signal?: AbortSignal): AsyncGenerator<JobEvent> {
    let cursor = afterId;
    while (!signal?.aborted) {
      let finished = false;
      if ('jobId' in scope) {
        const job = this.store.get(scope.jobId);
        if (!job) throw new JobNotFoundError(scope.jobId);
        // Read the status before the events: if it was terminal then, its terminal event is in this batch or an earlier one.
        finished = isTerminal(job.status);
      }
      const events = this.store.events(scope, cursor, PAGE);
      for (const event of events) {
        cursor = event.id;
        yield event;
      }
      if (events.length === PAGE) continue;
      if (finished) return;
      await this.watcher.wait(signal, 10_000);
    }
  }

  /** Resolves with the job once it is terminal (for scripts and tests). */
  async waitUntilFinished(id: string, timeoutMs: number): Promise<JobRecord> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const job = this.store.get(id);
      if (!job) throw new JobNotFoundError(id);
      if (isTerminal(job.status)) return job;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`job ${id} did not finish within ${timeoutMs} ms (status ${job.status})`);
      await this.watcher.wait(undefined, Math.min(left, 1000));
    }
  }

  async close(): Promise<void> {
    this.watcher.close();
    await this.backend.close();
  }
}
