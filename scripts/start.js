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
server.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  if (/Ready|started server/i.test(String(chunk))) console.log(`\nMIFO Studio is running at http://${host}:${port}/`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.kill(signal));
server.on('exit', (code) => process.exit(code ?? 0));
