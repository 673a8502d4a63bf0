// A worker process of the Redis queue (any machine that sees the shared data dir). BullMQ hands out jobs and holds
// a lock on each while it runs; a worker that dies stops renewing the lock and BullMQ's stalled check gives the job
// to another worker, which resumes it from its checkpoint. Events go to a Redis stream that the web server stores.
// The worker never opens the SQLite database.
import { DelayedError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { removeCheckpoint } from './checkpoints.ts';
import type { JobError, JobEventKind, JobResource, JsonValue } from './contract.ts';
import type { JobWorker, WorkerSettings } from './embedded-worker.ts';
import { bullmqConnection, EVENT_STREAM_MAX_LENGTH, openRedis, redisNames, type RedisJobData, type RedisJobOutcome, type RedisQueueNames } from './redis-shared.ts';
import { runAttempt, StopReason, type AttemptReporter } from './runner.ts';
import { retryDelayMs } from './store.ts';

export class RedisWorker implements JobWorker {
  private readonly names: RedisQueueNames;
  private readonly commands: Redis;
  private readonly subscriber: Redis;
  private readonly workers: Worker[] = [];
  private readonly running = new Map<string, AbortController>();

  constructor(
    url: string,
    prefix: string,
    private readonly settings: WorkerSettings,
  ) {
    this.names = redisNames(prefix);
    this.commands = openRedis(url, `mifo-worker-${settings.workerId}`);
    this.subscriber = openRedis(url, `mifo-worker-${settings.workerId}-cancel`);
    for (const client of [this.commands, this.subscriber]) client.on('error', (error) => settings.log(`redis: ${error.message}`));
    const connection = bullmqConnection(url);
    for (const resource of ['gpu', 'cpu'] as const) {
      const concurrency = settings.slots[resource];
      if (concurrency <= 0) continue;
      const worker = new Worker(this.names.queue(resource), (job, token, signal) => this.process(job, token, signal), {
        connection,
        prefix,
        concurrency,
        name: settings.workerId,
        autorun: false,
        lockDuration: settings.leaseMs,
        stalledInterval: Math.max(250, Math.floor(settings.leaseMs / 2)),
        // Attempts (crash retries and takeovers alike) are limited per job type by process(), not by this count.
        maxStalledCount: 1000,
      });
      this.watch(worker, resource);
      this.workers.push(worker);
    }
  }

  get workerId(): string {
    return this.settings.workerId;
  }

  async start(): Promise<void> {
    await this.subscriber.subscribe(this.names.cancelChannel);
    this.subscriber.on('message', (_channel: string, jobId: string) => {
      this.running.get(jobId)?.abort(new StopReason('cancelled', 'cancelled by request'));
    });
    for (const worker of this.workers) {
      void worker.run();
      await worker.waitUntilReady();
    }
  }

  async stop(): Promise<void> {
    for (const controller of this.running.values()) controller.abort(new StopReason('shutdown', `worker ${this.workerId} is shutting down`));
    await Promise.all(this.workers.map((worker) => worker.close()));
    this.subscriber.disconnect();
    await this.commands.quit().catch(() => undefined);
  }

  private watch(worker: Worker, resource: JobResource): void {
    worker.on('error', (error) => this.settings.log(`bullmq ${resource} worker: ${error.message}`));
    worker.on('lockRenewalFailed', (jobIds) => {
      for (const id of jobIds) this.running.get(id)?.abort(new StopReason('lease-lost', `worker ${this.workerId} lost its lock on job ${id}`));
    });
    worker.on('stalled', (jobId) => void this.publish(jobId, 'stalled', { workerId: null }));
    // Terminal events are published only after BullMQ accepted the outcome under this worker's lock, so a worker that
    // lost its job to another never reports it finished.
    worker.on('completed', (job: Job<RedisJobData>, outcome: RedisJobOutcome) => {
      if (!outcome) return;
      const data: Record<string, JsonValue> =
        outcome.kind === 'completed' ? { result: outcome.result } : outcome.kind === 'failed' ? { error: { ...outcome.error } } : { reason: outcome.reason };
      void this.publish(job.data.id, outcome.kind, data).then(async () => {
        if (outcome.kind === 'completed') await removeCheckpoint(this.settings.dataDir, job.data.id);
      });
    });
    worker.on('failed', (job: Job<RedisJobData> | undefined, error: Error) => {
      if (!job || error instanceof DelayedError || error.name === 'DelayedError') return;
      const final = job.finishedOn !== undefined && job.finishedOn !== null;
      if (final) {
        const failure: JobError = { kind: 'crash', message: `${error.message} (gave up after ${job.attemptsStarted} attempts)` };
        void this.publish(job.data.id, 'failed', { error: { ...failure } });
      } else {
        const delayMs = retryDelayMs(job.attemptsMade, this.settings.retryBaseMs);
        void this.publish(job.data.id, 'retrying', { attempt: job.attemptsStarted, error: { kind: 'crash', message: error.message }, delayMs });
      }
    });
  }

  private async process(job: Job<RedisJobData>, token: string | undefined, bullSignal: AbortSignal | undefined): Promise<RedisJobOutcome> {
    const data = job.data;
    const attempt = job.attemptsStarted - (data.releases ?? 0);
    if (await this.commands.exists(this.names.cancelKey(data.id))) return { kind: 'cancelled', reason: 'cancelled by request' };
    if (attempt > data.maxAttempts) {
      return { kind: 'failed', error: { kind: 'stalled', message: `the worker running this job stopped responding on each of ${data.maxAttempts} attempts` } };
    }
    const stop = new AbortController();
    this.running.set(data.id, stop);
    const forwardBullCancel = () => stop.abort(new StopReason('cancelled', 'cancelled by request'));
    bullSignal?.addEventListener('abort', forwardBullCancel, { once: true });
    this.settings.log(`job ${data.id} (${data.type}) attempt ${attempt}/${data.maxAttempts} started`);
    try {
      const { outcome, handlerStillRunning } = await runAttempt(
        { jobId: data.id, type: data.type, input: data.input, attempt, maxAttempts: data.maxAttempts, timeoutMs: data.timeoutMs },
        {
          registry: this.settings.registry,
          artifacts: this.settings.artifacts,
          dataDir: this.settings.dataDir,
          workerId: this.workerId,
          reporter: this.reporterFor(data.id),
          stop: stop.signal,
          graceMs: this.settings.graceMs,
        },
      );
      this.settings.log(`job ${data.id} attempt ${attempt} ended: ${outcome.kind}`);
      if (handlerStillRunning) setImmediate(() => this.settings.onStuckHandler(data.id));
      if (outcome.kind === 'crashed') throw new Error(outcome.error.message);
      if (outcome.kind === 'released') {
        if (token && stop.signal.reason instanceof StopReason && stop.signal.reason.kind === 'shutdown') {
          await this.publish(data.id, 'released', { reason: outcome.reason });
          await job.updateData({ ...data, releases: (data.releases ?? 0) + 1 });
          await job.moveToDelayed(Date.now(), token);
          throw new DelayedError();
        }
        throw new Error(outcome.reason);
      }
      return outcome;
    } finally {
      bullSignal?.removeEventListener('abort', forwardBullCancel);
      this.running.delete(data.id);
    }
  }

  private reporterFor(jobId: string): AttemptReporter {
    let chain: Promise<void> = Promise.resolve();
    let failure: Error | null = null;
    return {
      emit: (kind, data) => {
        chain = chain.then(() => this.publish(jobId, kind, data)).catch((error: Error) => {
          failure ??= error;
        });
      },
      flush: async () => {
        await chain;
        if (failure) throw failure;
      },
    };
  }

  private async publish(jobId: string, kind: JobEventKind, data: Record<string, JsonValue>): Promise<void> {
    await this.commands.xadd(this.names.eventStream, 'MAXLEN', '~', EVENT_STREAM_MAX_LENGTH, '*', 'job', jobId, 'kind', kind, 'data', JSON.stringify(data), 'at', Date.now());
  }
}
