// `npm run worker`: a job worker process. Runs next to the web server (npm start starts one) or on any machine that
// shares the data dir and reaches the Redis of MIFO_QUEUE. See docs/deploy.md.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { positiveInteger, readServerConfig } from '../server/config.ts';
import { createJobRegistry } from '../server/jobs/catalog.ts';
import { attachBuiltinHandlers } from '../server/jobs/handlers.ts';
import type { JobRegistry } from '../server/jobs/registry.ts';
import { startJobWorker } from '../server/jobs/worker-host.ts';

const USAGE = `usage: npm run worker -- [--role all|gpu|cpu] [--concurrency N] [--module FILE]...
  --role         all (default): one job needing the accelerator at a time plus N CPU jobs;
                 gpu: only accelerator jobs, one at a time; cpu: only CPU jobs, N at a time   (MIFO_WORKER_ROLE)
  --concurrency  N, CPU jobs run at once (default 2)                                          (MIFO_WORKER_CONCURRENCY)
  --module       a module whose register(registry) adds job types and handlers                (MIFO_WORKER_MODULES, comma-separated)
environment: MIFO_DATA_DIR, MIFO_QUEUE (embedded or redis://host:port), MIFO_LEASE_MS, see docs/deploy.md`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      role: { type: 'string' },
      concurrency: { type: 'string' },
      module: { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const role = values.role ?? process.env.MIFO_WORKER_ROLE ?? 'all';
  if (role !== 'all' && role !== 'gpu' && role !== 'cpu') throw new Error(`--role ${role} is not one of all, gpu, cpu\n${USAGE}`);
  const concurrency = positiveInteger({ MIFO_WORKER_CONCURRENCY: values.concurrency ?? process.env.MIFO_WORKER_CONCURRENCY }, 'MIFO_WORKER_CONCURRENCY', 2);
  const modules = values.module ?? (process.env.MIFO_WORKER_MODULES ?? '').split(',').filter((path) => path.trim() !== '');

  const config = readServerConfig();
  const registry = createJobRegistry();
  attachBuiltinHandlers(registry);
  for (const path of modules) await loadModule(registry, path.trim());

  const worker = await startJobWorker({ config, registry, slots: { gpu: role === 'cpu' ? 0 : 1, cpu: role === 'gpu' ? 0 : concurrency } });
  const queue = config.queue.kind === 'redis' ? config.queue.url : 'embedded';
  console.log(`[worker ${worker.workerId}] ready: queue ${queue}, data ${config.dataDir}, role ${role}, CPU concurrency ${role === 'gpu' ? 0 : concurrency}, job types ${registry.handledTypes().join(', ')}`);

  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) process.exit(1);
      stopping = true;
      console.log(`[worker ${worker.workerId}] ${signal}: releasing running jobs (they resume elsewhere from their checkpoints)`);
      worker.stop().then(
        () => process.exit(0),
        (error: Error) => {
          console.error(error);
          process.exit(1);
        },
      );
    });
  }
}

async function loadModule(registry: JobRegistry, path: string): Promise<void> {
  const loaded = (await import(pathToFileURL(resolve(path)).href)) as { register?: (registry: JobRegistry) => void | Promise<void> };
  if (typeof loaded.register !== 'function') throw new Error(`worker module ${path} does not export register(registry)`);
  await loaded.register(registry);
}

main().catch((error: Error) => {
  console.error(`worker failed to start: ${error.message}`);
  process.exit(1);
});
