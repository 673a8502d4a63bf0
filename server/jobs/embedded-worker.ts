// A worker process of the embedded queue: claims jobs from the SQLite database on this machine, holds a lease on
// each while it runs (renewed in the background; a worker that dies stops renewing and another takes the job over),
// polls for cancellation, and writes events and outcomes straight into the database.
import type { ArtifactStore } from '../storage/artifacts.ts';
import { openDatabase, type Db } from '../storage/database.ts';
import { removeCheckpoint } from './checkpoints.ts';
import type { JobEventKind, JobResource, JsonValue } from './contract.ts';
import type { JobRegistry } from './registry.ts';
import { runAttempt, StopReason, type AttemptReporter } from './runner.ts';
import { JobStore, type ClaimedJob } from './store.ts';

export interface WorkerSlots {
  /** jobs needing the accelerator this worker runs at once: 0 or 1 */
  gpu: 0 | 1;
  /** CPU jobs it runs at once */
  cpu: number;
}

export interface WorkerSettings {
  workerId: string;
  dataDir: string;
  registry: JobRegistry;
  artifacts: ArtifactStore;
  slots: WorkerSlots;
  leaseMs: number;
  pollMs: number;
  graceMs: number;
  retryBaseMs: number;
  /** called when a handler ignored an abort past the grace period: the process should exit so it stops for good */
  onStuckHandler: (jobId: string) => void;
  log: (message: string) => void;
}

export interface JobWorker {
  readonly workerId: string;
  /** stops taking jobs, aborts running ones (they go back to the queue and resume from their checkpoints) */
  stop(): Promise<void>;
}

interface RunningJob {
  claim: ClaimedJob;
  resource: JobResource;
  stop: AbortController;
}

export class EmbeddedWorker implements JobWorker {
  private readonly db: Db;
  private readonly store: JobStore;
  private readonly running = new Map<string, RunningJob>();
  private readonly finished = new Set<Promise<void>>();
  private pollTimer: NodeJS.Timeout | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  private stopping = false;

  constructor(
    databasePath: string,
    private readonly settings: WorkerSettings,
  ) {
    this.db = openDatabase(databasePath);
    this.store = new JobStore(this.db, { retryBaseMs: settings.retryBaseMs, definitionOf: (type) => settings.registry.definition(type) });
  }

  get workerId(): string {
    return this.settings.workerId;
  }

  start(): void {
    this.pollTimer = setInterval(() => this.tick(), this.settings.pollMs);
    this.leaseTimer = setInterval(() => this.renewLeases(), Math.max(100, Math.floor(this.settings.leaseMs / 3)));
    this.tick();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.pollTimer);
    for (const job of this.running.values()) job.stop.abort(new StopReason('shutdown', `worker ${this.workerId} is shutting down`));
    // Keep renewing leases while handlers wind down, so no other worker takes a job that is still being released.
    await Promise.allSettled([...this.finished]);
    clearInterval(this.leaseTimer);
    this.db.close();
  }

  private tick(): void {
    if (this.stopping) return;
    try {
      for (const id of this.store.cancelRequested([...this.running.keys()])) {
        this.running.get(id)?.stop.abort(new StopReason('cancelled', 'cancelled by request'));
      }
      for (const resource of ['gpu', 'cpu'] as const) {
        while (this.freeSlots(resource) > 0) {
          const claim = this.store.claim({ workerId: this.workerId, resources: [resource], types: this.settings.registry.handledTypes(), leaseMs: this.settings.leaseMs });
          if (!claim) break;
          this.launch(claim, resource);
        }
      }
    } catch (error) {
      this.settings.log(`poll failed: ${(error as Error).message}`);
    }
  }

  private freeSlots(resource: JobResource): number {
    const busy = [...this.running.values()].filter((job) => job.resource === resource).length;
    return this.settings.slots[resource] - busy;
  }

  private renewLeases(): void {
    for (const [id, job] of this.running) {
      try {
        const lease = this.store.renewLease(id, job.claim.leaseToken, this.settings.leaseMs);
        if (!lease.held) job.stop.abort(new StopReason('lease-lost', `worker ${this.workerId} lost its lease on job ${id} to another worker`));
        else if (lease.cancelRequested) job.stop.abort(new StopReason('cancelled', 'cancelled by request'));
      } catch (error) {
        this.settings.log(`lease renewal for ${id} failed: ${(error as Error).message}`);
      }
    }
  }

  private launch(claim: ClaimedJob, resource: JobResource): void {
    const job: RunningJob = { claim, resource, stop: new AbortController() };
    this.running.set(claim.id, job);
    const done = this.execute(job).finally(() => {
      this.running.delete(claim.id);
      this.finished.delete(done);
    });
    this.finished.add(done);
  }

  private async execute(job: RunningJob): Promise<void> {
    const { claim } = job;
    this.settings.log(`job ${claim.id} (${claim.type}) attempt ${claim.attempt}/${claim.maxAttempts} started`);
    const result = await runAttempt(
      { jobId: claim.id, type: claim.type, input: claim.input, attempt: claim.attempt, maxAttempts: claim.maxAttempts, timeoutMs: claim.timeoutMs },
      {
        registry: this.settings.registry,
        artifacts: this.settings.artifacts,
        dataDir: this.settings.dataDir,
        workerId: this.workerId,
        reporter: this.reporterFor(claim),
        stop: job.stop.signal,
        graceMs: this.settings.graceMs,
      },
    ).catch((error: Error) => ({ outcome: { kind: 'crashed' as const, error: { kind: 'crash' as const, message: error.message } }, handlerStillRunning: false }));
    const recorded = this.store.finishAttempt(claim.id, claim.leaseToken, result.outcome);
    this.settings.log(`job ${claim.id} attempt ${claim.attempt} ended: ${result.outcome.kind}${recorded ? '' : ' (not recorded: lease lost)'}`);
    if (recorded && result.outcome.kind === 'completed') await removeCheckpoint(this.settings.dataDir, claim.id);
    if (result.handlerStillRunning) this.settings.onStuckHandler(claim.id);
  }

  private reporterFor(claim: ClaimedJob): AttemptReporter {
    let failure: Error | null = null;
    return {
      emit: (kind: JobEventKind, data: Record<string, JsonValue>) => {
        try {
          this.store.applyEvent(claim.id, kind, data, { leaseToken: claim.leaseToken });
        } catch (error) {
          failure ??= error as Error;
        }
      },
      flush: async () => {
        if (failure) throw failure;
      },
    };
  }
}
