// The `compose` job on ../shared/fixtures/tiny-sd through a worker process: images, live x̂0 previews, the
// comparison without box control from the same seed, one generation row per image with the parameters that
// reproduce it; input that cannot work fails once.
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import type { JobEvent } from '../../server/jobs/contract.ts';
import { COMPOSE_ABLATIONS, COMPOSE_PRESETS, type ComposeJobResult } from '../../server/jobs/types/compose.ts';
import { ABLATIONS, PRESETS } from '../../trainer/synth/options.ts';
import { JobHarness } from './support/harness.ts';

const tinySd = join(resolve(process.env.MIFO_FIXTURES ?? join(import.meta.dirname, '..', '..', '..', 'shared', 'fixtures')), 'tiny-sd');

test('the compose job offers exactly the synthesis presets and ablations', () => {
  assert.deepEqual([...COMPOSE_PRESETS].sort(), Object.keys(PRESETS).sort());
  assert.deepEqual([...COMPOSE_ABLATIONS].sort(), Object.keys(ABLATIONS).sort());
});

describe('compose job', { skip: existsSync(join(tinySd, 'model_index.json')) ? false : `no tiny-sd fixture at ${tinySd} (set MIFO_FIXTURES)` }, () => {
  let harness: JobHarness;

  before(async () => {
    harness = await JobHarness.open({ queue: 'embedded', env: { MIFO_LEASE_MS: '8000' } });
    await harness.startWorker({ modules: [] });
  });

  after(() => harness.close());

  test('composes with box control and without it from the same seed, with previews, and records each image', async () => {
    const project = harness.services.projects.create({ name: 'compose' });
    const input = {
      model: tinySd,
      prompt: 'a photo of a cat and a dog',
      boxes: [
        [0.05, 0.2, 0.45, 0.9],
        [0.55, 0.2, 0.95, 0.9],
      ],
      seed: 5,
      steps: 4,
      guidanceScale: 5,
      guidanceRescale: 0.5,
      previewEvery: 2,
      compareWithoutControl: true,
      control: { guidanceSteps: 2, iterationsPerStep: 2, refineStart: 2, refineEvery: 2, kmeansInits: 2 },
    };
    const job = await harness.services.jobs.submit({ type: 'compose', input, projectId: project.id });
    const finished = await harness.finished(job.id, 120_000);
    assert.equal(finished.status, 'completed', JSON.stringify(finished.error));
    const result = finished.result as ComposeJobResult;
    assert.deepEqual(result.variants.map((v) => [v.variant, v.preset, v.images.length]), [
      ['box control', 'mifo', 1],
      ['no box control', 'off', 1],
    ]);
    assert.deepEqual(result.variants[0]!.subjects, ['cat', 'dog']);
    for (const variant of result.variants) {
      const meta = await sharp(await harness.services.artifacts.read(variant.images[0]!)).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height], ['png', result.width, result.height]);
      const record = await harness.services.artifacts.readJson<{ prompt: string; seed: number; preset: string; images: string[] }>(variant.record);
      assert.deepEqual([record.prompt, record.seed, record.preset, record.images], [input.prompt, 5, variant.preset, variant.images]);
    }
    assert.notEqual(result.variants[0]!.images[0], result.variants[1]!.images[0], 'box control changes the image');
    assert.equal((result.control as { guidanceSteps: number }).guidanceSteps, 2);
    assert.deepEqual([result.guidanceScale, result.guidanceRescale], [5, 0.5], 'the settings the box-control run used');

    const events: JobEvent[] = [];
    for await (const event of harness.services.jobs.follow({ jobId: job.id }, 0)) events.push(event);
    const progress = events.filter((e) => e.kind === 'progress').map((e) => e.data as { step: number; total: number; images?: { name: string }[] });
    assert.equal(progress.at(-1)!.step, 8);
    assert.ok(progress.every((p) => p.total === 8));
    assert.ok(progress.filter((p) => p.images?.some((image) => image.name === 'preview:0')).length >= 2, 'x̂0 previews of both runs');

    const generations = harness.services.projects.detail(project.id).generations;
    assert.equal(generations.length, 2);
    const controlled = generations.find((g) => g.params.variant === 'box control')!;
    assert.equal(controlled.imageSha256, result.variants[0]!.images[0]);
    assert.equal(controlled.composeJobId, job.id);
    assert.deepEqual(
      { seed: controlled.params.seed, steps: controlled.params.steps, boxes: controlled.params.boxes, preset: controlled.params.preset, index: controlled.params.index, batch: controlled.params.batch, guidanceScale: controlled.params.guidanceScale, guidanceRescale: controlled.params.guidanceRescale },
      { seed: 5, steps: 4, boxes: input.boxes, preset: 'mifo', index: 0, batch: 1, guidanceScale: 5, guidanceRescale: 0.5 },
    );
    assert.equal((controlled.params.control as { guidanceSteps: number }).guidanceSteps, 2);
    assert.equal(generations.find((g) => g.params.variant === 'no box control')!.params.preset, 'off');
  });

  test('guidance left out is the model’s: its generation_config.json, as recorded with each image', async () => {
    const scratch = mkdtempSync(join(tmpdir(), 'mifo-compose-defaults-'));
    try {
      const model = join(scratch, 'model');
      cpSync(tinySd, model, { recursive: true });
      writeFileSync(join(model, 'generation_config.json'), JSON.stringify({ guidance_scale: 3, guidance_rescale: 0.25 }));
      const project = harness.services.projects.create({ name: 'compose defaults' });
      const input = { model, prompt: 'a photo of a cat', boxes: [[0.1, 0.1, 0.9, 0.9]], seed: 2, steps: 2, preset: 'off' };
      const job = await harness.services.jobs.submit({ type: 'compose', input, projectId: project.id });
      const finished = await harness.finished(job.id, 60_000);
      assert.equal(finished.status, 'completed', JSON.stringify(finished.error));
      const result = finished.result as ComposeJobResult;
      assert.deepEqual([result.guidanceScale, result.guidanceRescale], [3, 0.25]);
      const record = await harness.services.artifacts.readJson<{ guidanceScale: number; guidanceRescale: number }>(result.variants[0]!.record);
      assert.deepEqual([record.guidanceScale, record.guidanceRescale], [3, 0.25]);
      const [generation] = harness.services.projects.detail(project.id).generations;
      assert.deepEqual([generation!.params.guidanceScale, generation!.params.guidanceRescale], [3, 0.25]);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });

  test('a box that covers no pixel of the attention grid fails once, as bad input', async () => {
    const job = await harness.services.jobs.submit({
      type: 'compose',
      input: { model: tinySd, prompt: 'a photo of a cat', boxes: [[0, 0, 0.01, 0.01]], seed: 1, steps: 2 },
    });
    const finished = await harness.finished(job.id, 60_000);
    assert.equal(finished.status, 'failed');
    assert.equal(finished.error?.kind, 'input');
    assert.match(finished.error!.message, /covers no pixel/);
    assert.equal(finished.attempts, 1);
  });

  test('submissions with malformed boxes or subjects are refused before they are queued', async () => {
    await assert.rejects(harness.services.jobs.submit({ type: 'compose', input: { prompt: 'x', boxes: [[0.5, 0, 0.2, 1]], seed: 1 } }), /x0 < x1/);
    await assert.rejects(harness.services.jobs.submit({ type: 'compose', input: { prompt: 'x', boxes: [[0, 0, 1, 1]], subjects: ['a', 'b'], seed: 1 } }), /one subject per box/);
  });
});
