// The web server's long-lived objects (database, artifact store, job service), opened once per process.
import type { ServerConfig } from './config.ts';
import { readServerConfig } from './config.ts';
import { createJobRegistry } from './jobs/catalog.ts';
import { EmbeddedBackend } from './jobs/embedded-backend.ts';
import type { JobRegistry } from './jobs/registry.ts';
import { RedisBackend } from './jobs/redis-backend.ts';
import { EventWatcher, JobService, type QueueBackend } from './jobs/service.ts';
import { JobStore } from './jobs/store.ts';
import { ArtifactStore } from './storage/artifacts.ts';
import { openDatabase, type Db } from './storage/database.ts';
import { ProjectStore } from './storage/projects.ts';

export interface ServerServices {
  config: ServerConfig;
  db: Db;
  artifacts: ArtifactStore;
  projects: ProjectStore;
  jobs: JobService;
  close(): Promise<void>;
}

export interface OpenServicesOptions {
  config: ServerConfig;
  registry: JobRegistry;
  log?: (message: string) => void;
}

export async function openServerServices({ config, registry, log = (message) => console.error(`[mifo server] ${message}`) }: OpenServicesOptions): Promise<ServerServices> {
  const artifacts = await ArtifactStore.open(config.dataDir);
  const db = openDatabase(config.databasePath);
  const store = new JobStore(db, { retryBaseMs: config.retryBaseMs, definitionOf: (type) => registry.definition(type) });
  const watcher = new EventWatcher(store, config.pollMs);
  let backend: QueueBackend;
  if (config.queue.kind === 'redis') {
    const redis = new RedisBackend(store, watcher, { url: config.queue.url, prefix: config.queue.prefix, retryBaseMs: config.retryBaseMs, reconcileMs: Math.max(1000, Math.min(config.leaseMs, 5000)), log });
    await redis.start();
    backend = redis;
  } else {
    backend = new EmbeddedBackend();
  }
  const jobs = new JobService(store, registry, backend, watcher);
  return {
    config,
    db,
    artifacts,
    projects: new ProjectStore(db),
    jobs,
    async close() {
      await jobs.close();
      db.close();
    },
  };
}

// One instance per process, kept on globalThis so that module reloads in `next dev` do not open a second one.
const SINGLETON = Symbol.for('mifo.serverServices');

export function getServerServices(): Promise<ServerServices> {
  const holder = globalThis as { [SINGLETON]?: Promise<ServerServices> };
  holder[SINGLETON] ??= openServerServices({ config: readServerConfig(), registry: createJobRegistry() }).catch((error: unknown) => {
    delete holder[SINGLETON];
    throw error;
  });
  return holder[SINGLETON];
}
