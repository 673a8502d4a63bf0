// Starts the worker of the configured queue kind in this process.
import { hostname } from 'node:os';
import type { ServerConfig } from '../config.ts';
import { ArtifactStore } from '../storage/artifacts.ts';
import { EmbeddedWorker, type JobWorker, type WorkerSlots } from './embedded-worker.ts';
import type { JobRegistry } from './registry.ts';
import { RedisWorker } from './redis-worker.ts';

export interface StartWorkerOptions {
  config: ServerConfig;
  /** definitions with handlers attached */
  registry: JobRegistry;
  slots: WorkerSlots;
  workerId?: string;
  /** a handler ignored an abort past the grace period; the default exits the process so it stops for good */
  onStuckHandler?: (jobId: string) => void;
  log?: (message: string) => void;
}

export async function startJobWorker(options: StartWorkerOptions): Promise<JobWorker> {
  const { config, registry, slots } = options;
  if (slots.cpu < 0 || !Number.isInteger(slots.cpu) || (slots.gpu === 0 && slots.cpu === 0)) throw new Error('a worker needs a GPU slot or at least one CPU slot');
  if (registry.handledTypes().length === 0) throw new Error('this worker has no job handlers registered');
  const workerId = options.workerId ?? `${hostname()}-${process.pid}`;
  const log = options.log ?? ((message: string) => console.log(`[worker ${workerId}] ${message}`));
  const onStuckHandler =
    options.onStuckHandler ??
    ((jobId: string) => {
      log(`the handler of job ${jobId} did not stop within ${config.graceMs} ms of being aborted; exiting so it stops`);
      process.exit(70);
    });
  const artifacts = await ArtifactStore.open(config.dataDir);
  const settings = { workerId, dataDir: config.dataDir, registry, artifacts, slots, leaseMs: config.leaseMs, pollMs: config.pollMs, graceMs: config.graceMs, retryBaseMs: config.retryBaseMs, onStuckHandler, log };
  if (config.queue.kind === 'redis') {
    const worker = new RedisWorker(config.queue.url, config.queue.prefix, settings);
    await worker.start();
    return worker;
  }
  const worker = new EmbeddedWorker(config.databasePath, settings);
  worker.start();
  return worker;
}
