// The studio's end-to-end suite (e2e/) in Debian's Chromium (apt-get install chromium; Playwright never downloads a
// browser here). The web server is the real `npm start` (build when sources changed, next start, one worker) on its
// own port with a throwaway data dir. Until the embedded default model (models/default) lands, it runs on the tiny
// test pipeline ../shared/fixtures/tiny-sd; MIFO_E2E_MODEL picks another model folder.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { defineConfig } from '@playwright/test';

const port = Number(process.env.MIFO_E2E_PORT ?? 3217);
const baseURL = `http://127.0.0.1:${port}`;
// Workers re-read this file; the environment carries the one data dir the main process made.
process.env.MIFO_E2E_DATA_DIR ??= mkdtempSync(join(tmpdir(), 'mifo-e2e-'));
const fixtures = resolve(process.env.MIFO_FIXTURES ?? join(import.meta.dirname, '..', 'shared', 'fixtures'));
const model = resolve(process.env.MIFO_E2E_MODEL ?? join(fixtures, 'tiny-sd'));
const chromium = process.env.MIFO_CHROMIUM ?? '/usr/bin/chromium';
if (!existsSync(chromium)) throw new Error(`no Chromium at ${chromium}: apt-get install -y chromium (or set MIFO_CHROMIUM)`);
if (!existsSync(join(model, 'model_index.json'))) throw new Error(`no model at ${model}: set MIFO_FIXTURES or MIFO_E2E_MODEL`);

export default defineConfig({
  testDir: 'e2e',
  outputDir: 'test-results/e2e',
  globalTeardown: './e2e/teardown.ts',
  timeout: 6 * 60_000,
  expect: { timeout: 20_000 },
  workers: 1,
  fullyParallel: false,
  forbidOnly: true,
  reporter: [['list']],
  use: {
    baseURL,
    viewport: { width: 1366, height: 860 },
    acceptDownloads: true,
    screenshot: 'only-on-failure',
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: chromium,
      // Chromium looks up Google hosts on its own; only loopback may resolve.
      args: ['--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1'],
    },
  },
  webServer: {
    command: 'node scripts/start.js',
    url: baseURL,
    timeout: 5 * 60_000,
    reuseExistingServer: false,
    stdout: 'ignore',
    stderr: 'pipe',
    env: {
      PORT: String(port),
      HOST: '127.0.0.1',
      MIFO_DATA_DIR: process.env.MIFO_E2E_DATA_DIR,
      MIFO_MODEL: model,
      MIFO_WORKERS: '1',
      MIFO_QUIET: '1',
      NEXT_TELEMETRY_DISABLED: '1',
    },
  },
});
