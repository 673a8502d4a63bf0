// Test harness for the job system: a throwaway data dir, the server's services in this process, real worker
// processes (`scripts/worker.ts`) beside it, and a real redis-server on a free loopback port for the Redis queue.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readServerConfig, type ServerConfig } from '../../../server/config.ts';
import { createJobRegistry } from '../../../server/jobs/catalog.ts';
import type { JobRecord } from '../../../server/jobs/contract.ts';
import type { JobRegistry } from '../../../server/jobs/registry.ts';
import { openServerServices, type ServerServices } from '../../../server/services.ts';
import { register as registerStepJobs } from './step-job.ts';

const repoRoot = resolve(import.meta.dirname, '../../..');

export const STEP_JOB_MODULE = 'tests/server/support/step-job.ts';

/** Short leases and polls so takeovers happen in about two seconds. */
export const FAST_JOB_ENV: Record<string, string> = {
  MIFO_LEASE_MS: '1500',
  MIFO_POLL_MS: '50',
  MIFO_RETRY_BASE_MS: '200',
  MIFO_ABORT_GRACE_MS: '3000',
  MIFO_QUIET: '1',
};

export function redisServerInstalled(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export interface RedisServer {
  url: string;
  stop(): Promise<void>;
}

/** Starts redis-server on a free loopback port without persistence; resolves once it answers PING. */
export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'mifo-redis-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 10_000;
  while (!(await ping(port))) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not answer on port ${port}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => socket.write('PING\r\n'));
    socket.once('data', (data) => {
      socket.destroy();
      resolve(String(data).startsWith('+PONG'));
    });
    socket.once('error', () => resolve(false));
  });
}

export class WorkerProcess {
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly ready: Promise<void>;
  output = '';

  constructor(private readonly child: ChildProcess) {
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    this.ready = new Promise((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        this.output += String(chunk);
        if (this.output.includes('] ready:')) resolve();
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', (chunk: Buffer) => (this.output += String(chunk)));
      void this.exited.then(({ code, signal }) => reject(new Error(`worker exited (${code ?? signal}) before it was ready:\n${this.output}`)));
    });
    // Settled by whichever happens first; a later exit is not an error of `ready`.
    this.ready.catch(() => undefined);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }
}

export interface HarnessOptions {
  queue: 'embedded' | 'redis';
  redisUrl?: string;
  env?: Record<string, string>;
}

/** A data dir, the server side of the job system in this process, and worker processes on demand. */
export class JobHarness {
  readonly workers: WorkerProcess[] = [];

  private constructor(
    readonly dataDir: string,
    readonly env: Record<string, string>,
    readonly config: ServerConfig,
    readonly registry: JobRegistry,
    readonly services: ServerServices,
  ) {}

  static async open(options: HarnessOptions): Promise<JobHarness> {
    const dataDir = mkdtempSync(join(tmpdir(), `mifo-jobs-${options.queue}-`));
    const env: Record<string, string> = {
      ...FAST_JOB_ENV,
      ...options.env,
      MIFO_DATA_DIR: dataDir,
      MIFO_QUEUE: options.queue === 'redis' ? options.redisUrl! : 'embedded',
      MIFO_QUEUE_PREFIX: `t${process.pid}x${Math.random().toString(36).slice(2, 8)}`,
    };
    const config = readServerConfig(env);
    const registry = createJobRegistry();
    registerStepJobs(registry);
    const services = await openServerServices({ config, registry, log: () => {} });
    return new JobHarness(dataDir, env, config, registry, services);
  }

  /** Starts `scripts/worker.ts` as its own process (its pid is the worker, so kill -9 hits it). */
  async startWorker(options: { role?: 'all' | 'gpu' | 'cpu'; concurrency?: number; modules?: string[]; env?: Record<string, string> } = {}): Promise<WorkerProcess> {
    const modules = options.modules ?? [STEP_JOB_MODULE];
    const args = ['--import', 'tsx', 'scripts/worker.ts', '--role', options.role ?? 'all', '--concurrency', String(options.concurrency ?? 2), ...modules.flatMap((m) => ['--module', m])];
    const child = spawn(process.execPath, args, { cwd: repoRoot, env: { ...process.env, ...this.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const worker = new WorkerProcess(child);
    this.workers.push(worker);
    await worker.ready;
    return worker;
  }

  async waitFor<T>(what: string, check: () => T | undefined | null | false, timeoutMs = 20_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = check();
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${this.workerLogs()}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  async finished(id: string, timeoutMs = 30_000): Promise<JobRecord> {
    try {
      return await this.services.jobs.waitUntilFinished(id, timeoutMs);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${this.workerLogs()}`);
    }
  }

  workerLogs(): string {
    return this.workers.map((worker, i) => `--- worker ${i} (pid ${worker.pid}) ---\n${worker.output}`).join('\n');
  }

  async close(): Promise<void> {
    for (const worker of this.workers) worker.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(this.workers.map((worker) => worker.exited)), new Promise((resolve) => (timer = setTimeout(resolve, 8000)))]);
    clearTimeout(timer);
    for (const worker of this.workers) worker.kill('SIGKILL');
    await this.services.close();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
