// Names and message shapes shared by the web server and the workers of the Redis (BullMQ) queue.
//   <prefix>:gpu:* and <prefix>:cpu:*  BullMQ queues (jobs needing the accelerator / CPU jobs)
//   <prefix>:events                    stream of job events written by workers, read by the web server's pump
//   <prefix>:cancel:<job>              set when a job is cancelled (workers check it when they pick a job up)
//   <prefix>:cancel                    pub/sub channel telling workers to abort a running job now
import { Redis } from 'ioredis';
import type { JobError, JobResource, JsonValue } from './contract.ts';

export const EVENT_STREAM_MAX_LENGTH = 100_000;
export const CANCEL_KEY_TTL_S = 7 * 24 * 3600;

export interface RedisQueueNames {
  prefix: string;
  queue(resource: JobResource): string;
  eventStream: string;
  cancelChannel: string;
  cancelKey(jobId: string): string;
}

export function redisNames(prefix: string): RedisQueueNames {
  return {
    prefix,
    queue: (resource) => resource,
    eventStream: `${prefix}:events`,
    cancelChannel: `${prefix}:cancel`,
    cancelKey: (jobId) => `${prefix}:cancel:${jobId}`,
  };
}

/** What a BullMQ job carries: workers never read SQLite, so the input travels with the job. */
export interface RedisJobData {
  id: string;
  type: string;
  input: JsonValue;
  timeoutMs: number;
  maxAttempts: number;
  /** graceful releases (worker shutdowns), which do not use up attempts */
  releases?: number;
}

/** A BullMQ job's return value: how the job ended when it did not crash. */
export type RedisJobOutcome = { kind: 'completed'; result: JsonValue } | { kind: 'failed'; error: JobError } | { kind: 'cancelled'; reason: string };

/** BullMQ runs higher priorities first when the number is lower (1 = highest); ours are -1000..1000, higher first. */
export function bullmqPriority(priority: number): number {
  return 1001 - Math.max(-1000, Math.min(1000, Math.round(priority)));
}

export function bullmqConnection(url: string): { url: string; maxRetriesPerRequest: null } {
  return { url, maxRetriesPerRequest: null };
}

export function openRedis(url: string, name: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, connectionName: name });
}
