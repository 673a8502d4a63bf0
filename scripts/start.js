#!/usr/bin/env node
// `npm start`: builds the studio when its sources changed since the last build, then serves it on 127.0.0.1.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const port = process.env.PORT ?? '3000';
const host = process.env.HOST ?? '127.0.0.1';
const env = { ...process.env, NEXT_TELEMETRY_DISABLED: '1' };
const nextBin = join(root, 'node_modules/next/dist/bin/next');

function fingerprint() {
  const hash = createHash('sha256');
  const visit = (path) => {
    if (!existsSync(path)) return;
    const stat = statSync(path);
    if (stat.isDirectory()) {
      for (const name of readdirSync(path).sort()) visit(join(path, name));
    } else {
      hash.update(`${path}:${stat.size}:${stat.mtimeMs}\n`);
    }
  };
  for (const entry of ['app', 'server', 'trainer', 'public', 'next.config.js', 'package-lock.json', 'tsconfig.json']) visit(join(root, entry));
  return hash.digest('hex');
}

const stampPath = join(root, '.next', 'mifo-source-fingerprint');
const current = fingerprint();
const built = existsSync(stampPath) ? readFileSync(stampPath, 'utf8') : '';
if (built !== current || !existsSync(join(root, '.next', 'BUILD_ID'))) {
  console.log('Building the studio (first start or sources changed)…');
  const build = spawnSync(process.execPath, [nextBin, 'build'], { cwd: root, stdio: 'inherit', env });
  if (build.status !== 0) process.exit(build.status ?? 1);
  writeFileSync(stampPath, current);
}

// Started through node directly so that this process's child is the server itself (killing it frees the port).
const server = spawn(process.execPath, [nextBin, 'start', '-H', host, '-p', port], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], env });
// The first request seeds the sample project of a fresh data dir, so the URL printed leads to a studio ready to try.
async function announce() {
  const local = `http://${host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host}:${port}/`;
  try {
    const response = await fetch(local);
    if (!response.ok) console.error(`the studio answered ${response.status} on its first request; see the log above`);
  } catch (error) {
    console.error(`the studio did not answer its first request: ${error.message}`);
  }
  console.log(`\nMIFO Studio is running at http://${host}:${port}/`);
}
server.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  if (/Ready|started server/i.test(String(chunk))) void announce();
});

// The web server never computes: learning, composing, SAM encoding and pack export run in worker processes.
// MIFO_WORKERS of them run here (default 1; 0 on a web-only node whose workers run on other machines).
const workerCount = Number(process.env.MIFO_WORKERS ?? '1');
if (!Number.isInteger(workerCount) || workerCount < 0) {
  console.error(`MIFO_WORKERS=${process.env.MIFO_WORKERS} must be a whole number`);
  process.exit(1);
}
const workers = new Set();
let stopping = false;

function startWorker(restartDelayMs = 1000) {
  const worker = spawn(process.execPath, ['--import', 'tsx', join(root, 'scripts/worker.ts')], { cwd: root, stdio: 'inherit', env });
  const startedAt = Date.now();
  workers.add(worker);
  worker.on('exit', (code, signal) => {
    workers.delete(worker);
    if (stopping) return;
    // A worker that ran a while gets restarted at once; one that keeps dying backs off up to 30 s.
    const delay = Date.now() - startedAt > 60_000 ? 1000 : Math.min(restartDelayMs * 2, 30_000);
    console.error(`worker ${worker.pid} exited (${code ?? signal}); restarting in ${Math.round(delay / 1000)} s`);
    setTimeout(() => !stopping && startWorker(delay), delay);
  });
}
for (let i = 0; i < workerCount; i++) startWorker();

function stop(signal) {
  if (stopping) return;
  stopping = true;
  server.kill(signal);
  // SIGTERM lets workers hand their running jobs back to the queue; they resume from checkpoints on the next start.
  for (const worker of workers) worker.kill('SIGTERM');
}
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => stop(signal));
server.on('exit', (code) => {
  stop('SIGTERM');
  const exit = () => process.exit(code ?? 0);
  if (workers.size === 0) exit();
  else for (const worker of workers) worker.on('exit', () => workers.size === 0 && exit());
});
