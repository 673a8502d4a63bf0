// Where the server keeps its data and which queue it uses, read once from the environment.
import { resolve } from 'node:path';

export type QueueConfig = { kind: 'embedded' } | { kind: 'redis'; url: string; prefix: string };

export interface ServerConfig {
  /** MIFO_DATA_DIR: artifacts, checkpoints and (by default) the SQLite database. Shared by every worker machine. */
  dataDir: string;
  /** MIFO_DB_PATH: the SQLite file. Only the web node (and embedded workers on its machine) open it. */
  databasePath: string;
  queue: QueueConfig;
  /** MIFO_LEASE_MS: how long a worker may go silent before its job is taken over by another worker. */
  leaseMs: number;
  /** MIFO_POLL_MS: how often embedded workers look for work and the server looks for new events. */
  pollMs: number;
  /** MIFO_RETRY_BASE_MS: first backoff after a crash; doubles on each further attempt. */
  retryBaseMs: number;
  /** MIFO_ABORT_GRACE_MS: how long a handler may take to stop after cancellation or timeout before its worker exits. */
  graceMs: number;
  /** MIFO_MAX_UPLOAD_BYTES / MIFO_MAX_UPLOAD_PIXELS: limits for uploaded photos and masks. */
  maxUploadBytes: number;
  maxUploadPixels: number;
}

export function readServerConfig(env: Record<string, string | undefined> = process.env): ServerConfig {
  // Run-time paths chosen by the operator: the bundler must not try to trace what they point at.
  const dataDir = resolve(/*turbopackIgnore: true*/ env.MIFO_DATA_DIR?.trim() || 'data');
  return {
    dataDir,
    databasePath: resolve(/*turbopackIgnore: true*/ env.MIFO_DB_PATH?.trim() || resolve(dataDir, 'mifo.sqlite')),
    queue: parseQueue(env.MIFO_QUEUE, env.MIFO_QUEUE_PREFIX),
    leaseMs: positiveInteger(env, 'MIFO_LEASE_MS', 30_000, 500),
    pollMs: positiveInteger(env, 'MIFO_POLL_MS', 200, 10),
    retryBaseMs: positiveInteger(env, 'MIFO_RETRY_BASE_MS', 2000, 1),
    graceMs: positiveInteger(env, 'MIFO_ABORT_GRACE_MS', 30_000, 1),
    maxUploadBytes: positiveInteger(env, 'MIFO_MAX_UPLOAD_BYTES', 25 * 1024 * 1024),
    maxUploadPixels: positiveInteger(env, 'MIFO_MAX_UPLOAD_PIXELS', 40_000_000),
  };
}

function parseQueue(value: string | undefined, prefix: string | undefined): QueueConfig {
  const text = value?.trim();
  if (!text || text === 'embedded') return { kind: 'embedded' };
  if (/^rediss?:\/\//.test(text)) {
    const resolvedPrefix = prefix?.trim() || 'mifo';
    if (!/^[A-Za-z0-9_-]+$/.test(resolvedPrefix)) {
      throw new Error(`MIFO_QUEUE_PREFIX=${resolvedPrefix} may only hold letters, digits, '_' and '-'`);
    }
    return { kind: 'redis', url: text, prefix: resolvedPrefix };
  }
  throw new Error(`MIFO_QUEUE=${text} is neither 'embedded' nor a redis://host:port URL`);
}

export function positiveInteger(env: Record<string, string | undefined>, name: string, fallback: number, minimum = 1): number {
  const text = env[name]?.trim();
  if (!text) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < minimum) {
    throw new Error(`${name}=${text} must be an integer >= ${minimum}`);
  }
  return value;
}
