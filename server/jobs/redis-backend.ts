// The web server's side of the Redis queue: hands jobs to BullMQ, tells workers about cancellations, pumps the
// workers' event stream into SQLite (a consumer group, so events published while the web server was down are
// delivered when it comes back, each stored once), and reconciles SQLite with BullMQ for anything the stream missed
// (a worker killed between finishing a job and publishing its last event, a job queued while Redis was down).
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { JobRecord, JobResource, JsonValue } from './contract.ts';
import {
  bullmqConnection,
  bullmqPriority,
  CANCEL_KEY_TTL_S,
  openRedis,
  redisNames,
  type RedisJobData,
  type RedisJobOutcome,
  type RedisQueueNames,
} from './redis-shared.ts';
import type { EventWatcher, QueueBackend } from './service.ts';
import type { JobStore } from './store.ts';
import type { JobEventKind } from './contract.ts';

const CONSUMER_GROUP = 'web';
const CONSUMER = 'web';
const KEEP_FINISHED_S = 7 * 24 * 3600;

export interface RedisBackendOptions {
  url: string;
  prefix: string;
  retryBaseMs: number;
  /** how often SQLite is checked against BullMQ, and how long a job must be quiet before it is */
  reconcileMs: number;
  log: (message: string) => void;
}

export class RedisBackend implements QueueBackend {
  readonly kind = 'redis' as const;
  private readonly names: RedisQueueNames;
  private readonly queues: Record<JobResource, Queue>;
  private readonly commands: Redis;
  private readonly reader: Redis;
  private pumping: Promise<void> | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private reconciling = false;
  private closed = false;
  private caughtUp = false;

  constructor(
    private readonly store: JobStore,
    private readonly watcher: EventWatcher,
    private readonly options: RedisBackendOptions,
  ) {
    this.names = redisNames(options.prefix);
    const connection = bullmqConnection(options.url);
    this.queues = {
      gpu: new Queue(this.names.queue('gpu'), { connection, prefix: options.prefix }),
      cpu: new Queue(this.names.queue('cpu'), { connection, prefix: options.prefix }),
    };
    for (const queue of Object.values(this.queues)) queue.on('error', (error) => options.log(`redis queue: ${error.message}`));
    this.commands = openRedis(options.url, 'mifo-web');
    this.reader = openRedis(options.url, 'mifo-web-events');
    for (const client of [this.commands, this.reader]) client.on('error', (error) => options.log(`redis: ${error.message}`));
  }

  /** Creates the consumer group, starts the event pump and the reconciler. */
  async start(): Promise<void> {
    try {
      await this.commands.xgroup('CREATE', this.names.eventStream, CONSUMER_GROUP, '0', 'MKSTREAM');
    } catch (error) {
      if (!String((error as Error).message).includes('BUSYGROUP')) throw error;
    }
    this.pumping = this.pump();
    this.reconcileTimer = setInterval(() => void this.reconcile(), this.options.reconcileMs);
  }

  async enqueue(record: JobRecord): Promise<void> {
    const data: RedisJobData = { id: record.id, type: record.type, input: record.input, timeoutMs: record.timeoutMs, maxAttempts: record.maxAttempts };
    try {
      const queue = this.queues[record.resource];
      // A retried job reuses its id; BullMQ ignores an add for an id it still holds, so drop the finished one first.
      const existing = await queue.getJob(record.id);
      if (existing && (await existing.isCompleted() || await existing.isFailed())) await existing.remove();
      await this.commands.del(this.names.cancelKey(record.id));
      await queue.add(record.type, data, {
        jobId: record.id,
        attempts: record.maxAttempts,
        backoff: { type: 'exponential', delay: this.options.retryBaseMs },
        priority: bullmqPriority(record.priority),
        removeOnComplete: { age: KEEP_FINISHED_S },
        removeOnFail: { age: KEEP_FINISHED_S },
      });
    } catch (error) {
      this.options.log(`could not hand job ${record.id} to Redis (it stays queued and is retried): ${(error as Error).message}`);
    }
  }

  async cancel(record: JobRecord): Promise<void> {
    await this.commands.set(this.names.cancelKey(record.id), '1', 'EX', CANCEL_KEY_TTL_S);
    await this.commands.publish(this.names.cancelChannel, record.id);
    const job = await this.queues[record.resource].getJob(record.id);
    if (job && ((await job.isWaiting()) || (await job.isDelayed()))) {
      // A job a worker holds is locked and cannot be removed; that worker aborts it through the channel or the key.
      await job.remove().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.reconcileTimer);
    this.reader.disconnect();
    await this.pumping?.catch(() => undefined);
    await Promise.all(Object.values(this.queues).map((queue) => queue.close()));
    await this.commands.quit().catch(() => undefined);
  }

  /** Reads the event stream: first this consumer's unacknowledged entries (from before a restart), then new ones. */
  private async pump(): Promise<void> {
    let startFrom = '0';
    while (!this.closed) {
      let reply: [string, [string, string[]][]][] | null;
      try {
        reply = (await this.reader.xreadgroup('GROUP', CONSUMER_GROUP, CONSUMER, 'COUNT', 200, 'BLOCK', 1000, 'STREAMS', this.names.eventStream, startFrom)) as typeof reply;
      } catch (error) {
        if (this.closed) return;
        this.options.log(`reading job events from Redis failed: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, 1000));
        continue;
      }
      const entries = reply?.[0]?.[1] ?? [];
      if (entries.length === 0) {
        if (startFrom === '0') startFrom = '>';
        else this.caughtUp = true;
        continue;
      }
      this.caughtUp = false;
      for (const [id, fields] of entries) this.applyEntry(id, fields);
      await this.commands.xack(this.names.eventStream, CONSUMER_GROUP, ...entries.map(([id]) => id));
      this.watcher.notify();
    }
  }

  private applyEntry(id: string, fields: string[]): void {
    const values: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length; i += 2) values[fields[i]!] = fields[i + 1]!;
    const { job, kind, data, at } = values;
    if (!job || !kind || !data) return;
    try {
      this.store.applyEvent(job, kind as JobEventKind, JSON.parse(data) as Record<string, JsonValue>, { sourceId: id, at: Number(at) || Date.now() });
    } catch (error) {
      this.options.log(`could not store event ${id} of job ${job}: ${(error as Error).message}`);
    }
  }

  /** Brings SQLite in line with BullMQ for jobs that have been quiet for a while. */
  private async reconcile(): Promise<void> {
    if (this.reconciling || this.closed || !this.caughtUp) return;
    this.reconciling = true;
    try {
      const quietBefore = Date.now() - this.options.reconcileMs;
      for (const record of this.store.active()) {
        if (record.updatedAt > quietBefore || this.closed) continue;
        await this.reconcileJob(record);
      }
      this.watcher.notify();
    } catch (error) {
      this.options.log(`reconciling jobs with Redis failed: ${(error as Error).message}`);
    } finally {
      this.reconciling = false;
    }
  }

  private async reconcileJob(record: JobRecord): Promise<void> {
    const job = await this.queues[record.resource].getJob(record.id);
    if (!job) {
      if (record.status === 'queued') await this.enqueue(record);
      else this.store.finishFromOutside(record.id, { kind: 'failed', error: { kind: 'lost', message: 'the Redis queue no longer knows this job (was Redis restarted without persistence?)' } });
      return;
    }
    const state = await job.getState();
    if (state === 'completed') {
      const outcome = job.returnvalue as RedisJobOutcome | null;
      if (outcome && (outcome.kind === 'completed' || outcome.kind === 'failed' || outcome.kind === 'cancelled')) this.store.finishFromOutside(record.id, outcome);
    } else if (state === 'failed') {
      this.store.finishFromOutside(record.id, { kind: 'failed', error: { kind: 'crash', message: job.failedReason || 'the job failed on its worker' } });
    }
  }
}
