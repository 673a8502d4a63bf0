#!/usr/bin/env node
// Runs every test: unit and parity tests (node:test through tsx), then the Playwright e2e suite when present.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;

function findTests(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return findTests(path);
    return name.endsWith('.test.ts') ? [relative(root, path)] : [];
  });
}

const filters = process.argv.slice(2);
const files = findTests(join(root, 'tests'))
  .filter((f) => filters.length === 0 || filters.some((pattern) => f.includes(pattern)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
const env = { ...process.env, MIFO_QUIET: process.env.MIFO_QUIET ?? '1', NEXT_TELEMETRY_DISABLED: '1' };
const unit = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...files],
  { cwd: root, stdio: 'inherit', env },
);
if (unit.status !== 0) process.exit(unit.status ?? 1);

if (filters.length === 0 && existsSync(join(root, 'playwright.config.ts')) && process.env.MIFO_SKIP_E2E !== '1') {
  const e2e = spawnSync(process.execPath, [join(root, 'node_modules/@playwright/test/cli.js'), 'test'], { cwd: root, stdio: 'inherit', env });
  process.exit(e2e.status ?? 1);
}
