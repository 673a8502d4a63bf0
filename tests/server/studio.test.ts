// The studio's server side through the tRPC caller: new projects from an upload (EXIF orientation, square crop,
// limits), samples and the first-start sample project, the masks router (uploads, SAM JSON import, readiness of
// click-to-segment), and the learn and compose submissions built from a project's instances and learned tokens.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TRPCError } from '@trpc/server';
import sharp from 'sharp';
import { LEARN_PRESET_INFO } from '../../app/lib/learnPresets.ts';
import { appRouter } from '../../server/api/root.ts';
import { createCallerFactory } from '../../server/api/trpc.ts';
import type { ComposeJobInput } from '../../server/jobs/types/compose.ts';
import type { LearnJobInput } from '../../server/jobs/types/learn.ts';
import { encodeRle } from '../../server/sam/rle.ts';
import { readModelInfo } from '../../server/studio/model-info.ts';
import { ensureSampleProject, readSamples } from '../../server/studio/projects.ts';
import { presetOptions } from '../../trainer/learn/options.ts';
import { JobHarness } from './support/harness.ts';

const createCaller = createCallerFactory(appRouter);
const tinySd = join(resolve(process.env.MIFO_FIXTURES ?? join(import.meta.dirname, '..', '..', '..', 'shared', 'fixtures')), 'tiny-sd');

function form(fields: Record<string, string | Blob>, files: Record<string, string> = {}): FormData {
  const data = new FormData();
  for (const [key, value] of Object.entries(fields)) {
    if (typeof value === 'string') data.set(key, value);
    else data.set(key, value, files[key] ?? 'file');
  }
  return data;
}

function blob(bytes: Uint8Array, type: string): Blob {
  return new Blob([new Uint8Array(bytes)], { type });
}

async function rejectsWith(promise: Promise<unknown>, code: TRPCError['code'], message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof TRPCError, String(error));
    assert.equal(error.code, code, error.message);
    assert.match(error.message, message);
    return true;
  });
}

async function rgbAt(png: Uint8Array, x: number, y: number): Promise<[number, number, number]> {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  const o = (y * info.width + x) * info.channels;
  return [data[o]!, data[o + 1]!, data[o + 2]!];
}

test('the learn presets the studio shows have the trainer presets’ step counts', () => {
  for (const info of LEARN_PRESET_INFO) {
    const options = presetOptions(info.id);
    assert.deepEqual(info.steps, [options.phase1.steps, options.phase2.steps], info.id);
  }
});

test('the model resolution comes from the diffusers configs', { skip: existsSync(join(tinySd, 'model_index.json')) ? false : 'no tiny-sd fixture' }, () => {
  const info = readModelInfo(tinySd);
  assert.equal(info.available, true);
  // unet sample_size 16 × VAE scale factor 2 (two VAE blocks)
  assert.equal(info.available && info.resolution, 32);
  // a plain diffusers folder: diffusers' sampling defaults, DDIM standing in for its scheduler
  assert.deepEqual(info.available && info.generation, { sampler: 'ddim', steps: 50, guidance: 7.5, guidanceRescale: 0 });
  assert.deepEqual(readModelInfo(join(tinySd, 'unet')), { available: false, problem: `${join(tinySd, 'unet')} is not a diffusers model folder (no model_index.json)` });
});

describe('studio routers', () => {
  let harness: JobHarness;
  let caller: ReturnType<typeof createCaller>;

  before(async () => {
    harness = await JobHarness.open({ queue: 'embedded', env: { MIFO_MAX_UPLOAD_PIXELS: '1000000' } });
    caller = createCaller({ requestId: 'test', services: async () => harness.services });
  });

  after(() => harness.close());

  test('a new project keeps the upright square the user chose, with a thumbnail, and starts SAM encoding', async () => {
    // Upright 200×300: red top half, blue bottom half. Stored sideways with EXIF orientation 6.
    const upright = await sharp({ create: { width: 200, height: 300, channels: 3, background: '#d01010' } })
      .composite([{ input: await sharp({ create: { width: 200, height: 150, channels: 3, background: '#1010d0' } }).png().toBuffer(), top: 150, left: 0 }])
      .png()
      .toBuffer();
    const sideways = await sharp(upright).rotate(-90).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
    assert.deepEqual([(await sharp(sideways).metadata()).width, (await sharp(sideways).metadata()).height], [300, 200]);

    const project = await caller.studio.createProject(form({ name: 'Sideways', photo: blob(sideways, 'image/jpeg'), crop: JSON.stringify({ x: 0, y: 50, size: 200 }) }));
    assert.deepEqual([project.photo!.width, project.photo!.height, project.photo!.mediaType], [200, 200, 'image/png']);
    const stored = await harness.services.artifacts.read(project.photo!.sha256);
    const [top, bottom] = [await rgbAt(stored, 100, 20), await rgbAt(stored, 100, 180)];
    assert.ok(top[0] > 180 && top[2] < 60, `top of the crop is red, got ${top}`);
    assert.ok(bottom[2] > 180 && bottom[0] < 60, `bottom of the crop is blue, got ${bottom}`);
    assert.ok(project.thumbnailSha256 && harness.services.artifacts.has(project.thumbnailSha256));
    assert.deepEqual((project.settings.original as { crop: unknown; width: number; height: number }).crop, { x: 0, y: 50, size: 200 });
    assert.deepEqual([(project.settings.original as { width: number }).width, (project.settings.original as { height: number }).height], [200, 300]);
    const jobs = harness.services.jobs.list({ projectId: project.id, type: 'sam-encode' });
    assert.equal(jobs.length, 1);
    assert.deepEqual(jobs[0]!.input, { image: project.photo!.sha256 });

    // Without a crop: the largest centred square.
    const centred = await caller.studio.createProject(form({ name: 'Centred', photo: blob(sideways, 'image/jpeg') }));
    const middle = await rgbAt(await harness.services.artifacts.read(centred.photo!.sha256), 100, 10);
    assert.ok(middle[0] > 180, 'the centred square starts in the red half');
  });

  test('uploads that cannot work are refused with what to do', async () => {
    const png = await sharp({ create: { width: 60, height: 40, channels: 3, background: '#808080' } }).png().toBuffer();
    await rejectsWith(caller.studio.createProject(form({ name: 'x', photo: blob(new TextEncoder().encode('hello'), 'text/plain') })), 'BAD_REQUEST', /must be a JPEG, PNG or WebP image/);
    await rejectsWith(caller.studio.createProject(form({ name: 'x', photo: blob(png, 'image/png'), crop: JSON.stringify({ x: 30, y: 0, size: 40 }) })), 'BAD_REQUEST', /does not fit in the 60×40 photo/);
    await rejectsWith(caller.studio.createProject(form({ name: 'x', photo: blob(png, 'image/png'), crop: '{"x": 0.5, "y": 0, "size": 10}' })), 'BAD_REQUEST', /whole pixels/);
    await rejectsWith(caller.studio.createProject(form({ name: '  ', photo: blob(png, 'image/png') })), 'BAD_REQUEST', /give the project a name/);
    const large = await sharp({ create: { width: 1200, height: 1000, channels: 3, background: '#808080' } }).jpeg().toBuffer();
    await rejectsWith(caller.studio.createProject(form({ name: 'x', photo: blob(large, 'image/jpeg') })), 'BAD_REQUEST', /1200×1000 \(1\.2 MP\); the limit is 1 MP/);
  });

  test('samples open with or without their masks; the sample project is seeded once per data dir', async () => {
    const samples = readSamples();
    assert.ok(samples.length >= 2);
    const withMasks = await caller.studio.openSample({ sampleId: samples[0]!.id, withMasks: true });
    const detail = await caller.projects.get({ id: withMasks.id });
    assert.deepEqual(detail.instances.map((i) => i.name), samples[0]!.instances.map((i) => i.name));
    assert.ok(detail.instances.every((i) => i.maskSha256));
    const bare = await caller.studio.openSample({ sampleId: samples[1]!.id, withMasks: false });
    assert.equal((await caller.projects.get({ id: bare.id })).instances.length, 0);
    await rejectsWith(caller.studio.openSample({ sampleId: 'nope', withMasks: true }), 'NOT_FOUND', /sample nope/);

    const fresh = await JobHarness.open({ queue: 'embedded' });
    try {
      await ensureSampleProject(fresh.services);
      const seeded = fresh.services.projects.list();
      assert.deepEqual(seeded.map((p) => p.name), [`Sample: ${samples[0]!.title}`]);
      fresh.services.projects.delete(seeded[0]!.id);
      await ensureSampleProject(fresh.services);
      assert.equal(fresh.services.projects.list().length, 0, 'a deleted sample project does not come back');
    } finally {
      await fresh.close();
    }
  });

  test('masks: uploads are normalised to the photo, SAM JSON gives candidates, segmenting waits for the embedding', async () => {
    const project = harness.services.projects.create({ name: 'masks', photo: { sha256: (await harness.services.artifacts.put(await sharp({ create: { width: 64, height: 64, channels: 3, background: '#808080' } }).png().toBuffer(), 'image/png')).sha256, mediaType: 'image/png', width: 64, height: 64 } });
    const rgba = Buffer.alloc(32 * 32 * 4);
    for (let y = 8; y < 24; y++) for (let x = 4; x < 12; x++) rgba.set([0, 0, 0, 255], (y * 32 + x) * 4);
    const mask = await sharp(rgba, { raw: { width: 32, height: 32, channels: 4 } }).png().toBuffer();
    const uploaded = await caller.masks.upload(form({ projectId: project.id, file: blob(mask, 'image/png') }, { file: 'mask.png' }));
    assert.equal(uploaded.area, 16 * 32);
    const stored = await sharp(await harness.services.artifacts.read(uploaded.sha256)).metadata();
    assert.deepEqual([stored.width, stored.height, stored.channels], [64, 64, 1]);
    const empty = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#000' } }).png().toBuffer();
    await rejectsWith(caller.masks.upload(form({ projectId: project.id, file: blob(empty, 'image/png') }, { file: 'empty.png' })), 'BAD_REQUEST', /empty.png is empty/);
    const wide = await sharp({ create: { width: 64, height: 32, channels: 3, background: '#fff' } }).png().toBuffer();
    await rejectsWith(caller.masks.upload(form({ projectId: project.id, file: blob(wide, 'image/png') }, { file: 'wide.png' })), 'BAD_REQUEST', /wide.png is 64×32 but the photo is 64×64/);

    const small = new Uint8Array(32 * 32);
    small.fill(1, 0, 32 * 4);
    const large = new Uint8Array(32 * 32);
    large.fill(1, 32 * 10, 32 * 26);
    const json = JSON.stringify([
      { segmentation: encodeRle(small, 32, 32), predicted_iou: 0.9 },
      { segmentation: encodeRle(large, 32, 32, false), predicted_iou: 0.8 },
    ]);
    const imported = await caller.masks.importSamJson(form({ projectId: project.id, file: blob(new TextEncoder().encode(json), 'application/json') }, { file: 'amg.json' }));
    assert.equal(imported.total, 2);
    assert.deepEqual(imported.candidates.map((c) => c.index), [1, 0], 'largest first');
    assert.deepEqual(imported.candidates.map((c) => c.coverage), [0.5, 0.125]);
    assert.equal((await sharp(await harness.services.artifacts.read(imported.candidates[0]!.sha256)).metadata()).width, 64);
    await rejectsWith(
      caller.masks.importSamJson(form({ projectId: project.id, file: blob(new TextEncoder().encode('[{"segmentation": [[1,2,3,4]]}]'), 'application/json') }, { file: 'poly.json' })),
      'BAD_REQUEST',
      /mask 0: .*polygons/,
    );

    await rejectsWith(caller.masks.segment({ projectId: project.id, points: [{ x: 3, y: 3, positive: true }] }), 'CONFLICT', /still preparing this photo/);
    const first = await caller.masks.prepare({ projectId: project.id });
    const second = await caller.masks.prepare({ projectId: project.id });
    assert.equal(first.ready, false);
    assert.equal(second.jobId, first.jobId, 'one sam-encode job per photo');
  });

  test('learning needs every instance masked and sends names, instance ids and previews', async () => {
    const photo = await harness.services.artifacts.put(await sharp({ create: { width: 32, height: 32, channels: 3, background: '#808080' } }).png().toBuffer(), 'image/png');
    const project = harness.services.projects.create({ name: 'learn', photo: { sha256: photo.sha256, mediaType: 'image/png', width: 32, height: 32 } });
    await rejectsWith(caller.studio.learn({ projectId: project.id, preset: 'fast' }), 'CONFLICT', /add at least one instance/);
    const mask = await harness.services.artifacts.put(await sharp({ create: { width: 32, height: 32, channels: 3, background: '#fff' } }).png().toBuffer(), 'image/png');
    const cup = harness.services.projects.addInstance(project.id, { name: 'cup', maskSha256: mask.sha256 });
    const plate = harness.services.projects.addInstance(project.id, { name: 'plate' });
    await rejectsWith(caller.studio.learn({ projectId: project.id, preset: 'fast' }), 'CONFLICT', /'plate' has no mask yet/);
    harness.services.projects.updateInstance(plate.id, { maskSha256: mask.sha256 });
    const job = await caller.studio.learn({ projectId: project.id, preset: 'fast' });
    const input = job.input as unknown as LearnJobInput;
    assert.deepEqual(input.names, ['cup', 'plate']);
    assert.deepEqual(input.instanceIds, [cup.id, plate.id]);
    assert.equal(input.preset, 'fast');
    assert.equal(input.initializeFromNames, true, 'the studio starts tokens from their names unless told otherwise');
    assert.ok((input.options as { previewEvery: number }).previewEvery > 0);
    await rejectsWith(caller.studio.learn({ projectId: project.id, preset: 'fast' }), 'CONFLICT', /already learning/);
  });

  test('compose uses the instances’ names as tokens, imported pack tokens as they are, and checks the prompt', async () => {
    const project = harness.services.projects.create({ name: 'compose' });
    await rejectsWith(
      caller.studio.compose({ projectId: project.id, prompt: 'a photo of <cup>', boxes: [[0, 0, 0.5, 0.5]], seed: 1, batch: 1, steps: 10, guidanceScale: 7.5, preset: 'mifo' }),
      'BAD_REQUEST',
      /<cup> is not a learned token of this project \(nothing is learned yet/,
    );
    const cup = harness.services.projects.addInstance(project.id, { name: 'cup', color: '#e6194b' });
    const folder = 'f'.repeat(64);
    const packFolder = 'e'.repeat(64);
    harness.services.projects.addConcept({ projectId: project.id, instanceId: cup.id, token: '<asset0>', learnJobId: 'learn-1', baseModel: 'tiny', preset: 'fast', folderSha256: folder, metadata: { name: 'cup', index: 0 } });
    harness.services.projects.addConcept({ projectId: project.id, instanceId: null, token: '<asset1>', learnJobId: 'learn-1', baseModel: 'tiny', preset: 'fast', folderSha256: folder, metadata: { name: 'saucer', index: 1 } });
    harness.services.projects.addConcept({ projectId: project.id, instanceId: null, token: '<cup>', learnJobId: 'import-1', baseModel: 'tiny', preset: null, folderSha256: packFolder, metadata: { name: 'cup', index: 0, source: 'pack', pack: { id: 'p', sha256: 'd'.repeat(64), name: 'Mugs' } } });

    const tokens = await caller.studio.tokens({ projectId: project.id });
    assert.deepEqual(
      tokens.map((t) => [t.token, t.folderToken, t.source, t.color]),
      [
        ['<cup>', '<asset0>', 'learned', '#e6194b'],
        ['<saucer>', '<asset1>', 'learned', null],
        ['<cup-2>', '<cup>', 'pack', null],
      ],
    );
    assert.equal(tokens[2]!.pack, 'Mugs');

    // Renaming the instance renames its token.
    harness.services.projects.updateInstance(cup.id, { name: 'mug' });
    assert.equal((await caller.studio.tokens({ projectId: project.id }))[0]!.token, '<mug>');

    const base = { projectId: project.id, seed: 3, batch: 1, steps: 10, guidanceScale: 7.5, preset: 'mifo' as const };
    const job = await caller.studio.compose({ ...base, prompt: 'a photo of <mug> and <cup> on a table', boxes: [[0.1, 0.1, 0.4, 0.9], [0.6, 0.1, 0.9, 0.9]], compareWithoutControl: true });
    const input = job.input as unknown as ComposeJobInput;
    // With the instance renamed, the pack's <cup> no longer clashes and keeps its own name.
    assert.deepEqual(input.concepts, [
      { folder, rename: { '<asset0>': '<mug>', '<asset1>': '<saucer>' } },
      { folder: packFolder, rename: {} },
    ]);
    assert.equal(input.compareWithoutControl, true);
    assert.equal(job.projectId, project.id);

    const onlyLearned = await caller.studio.compose({ ...base, prompt: 'a photo of <saucer>', boxes: [[0.1, 0.1, 0.9, 0.9]] });
    assert.deepEqual((onlyLearned.input as unknown as ComposeJobInput).concepts.map((c) => c.folder), [folder], 'only the folders the prompt uses are loaded');

    await rejectsWith(caller.studio.compose({ ...base, prompt: 'a photo of <mug> and <saucer>', boxes: [[0.1, 0.1, 0.9, 0.9]] }), 'BAD_REQUEST', /2 learned tokens but there is 1 box/);
    await rejectsWith(caller.studio.compose({ ...base, prompt: 'a photo of <teapot>', boxes: [[0.1, 0.1, 0.9, 0.9]] }), 'BAD_REQUEST', /<teapot> is not a learned token of this project \(learned tokens: <mug>, <saucer>, <cup>\)/);
    await rejectsWith(caller.studio.compose({ ...base, prompt: 'a photo of <mug>', boxes: [[0.5, 0.1, 0.4, 0.9]] }), 'BAD_REQUEST', /x0 < x1/);
  });
});
