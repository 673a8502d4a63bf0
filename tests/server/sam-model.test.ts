// Click-to-segment end to end on a rendered scene with exact masks: the sam-encode job on a worker process stores the
// embedding and links it to the project; the web server's SamService then segments each object from one click or
// a box. Also the mask reader every upload goes through.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import type { JobRecord } from '../../server/jobs/contract.ts';
import { samEncodeJob, type SamEncodeJobResult } from '../../server/jobs/types/sam-encode.ts';
import { parseEmbedding, serializeEmbedding } from '../../server/sam/model.ts';
import { MaskError, maskToPng, readMaskImage } from '../../server/sam/masks.ts';
import { SamService } from '../../server/sam/service.ts';
import { renderScene } from '../../trainer/world/render.ts';
import { sampleScene } from '../../trainer/world/sampler.ts';
import { JobHarness } from './support/harness.ts';

const SIZE = 256;
/** seed 7 holds a hexagon, a diamond and a triangle apart from each other */
const rendered = renderScene(sampleScene(7, { minObjects: 3, maxObjects: 3 }), SIZE);

function iou(a: Uint8Array, b: Uint8Array): number {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] && b[i]) inter++;
    if (a[i] || b[i]) union++;
  }
  return union === 0 ? 0 : inter / union;
}

/** The mask pixel farthest inside (largest square of mask pixels around it): where a person would click. */
function innermostPoint(mask: Uint8Array): { x: number; y: number } {
  let best = { x: 0, y: 0, depth: -1 };
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      if (!mask[y * SIZE + x]) continue;
      let depth = 0;
      grow: for (let d = 1; d < SIZE; d++) {
        for (let k = -d; k <= d; k++) {
          for (const [px, py] of [[x + k, y - d], [x + k, y + d], [x - d, y + k], [x + d, y + k]] as const) {
            if (px < 0 || py < 0 || px >= SIZE || py >= SIZE || !mask[py * SIZE + px]) break grow;
          }
        }
        depth = d;
      }
      if (depth > best.depth) best = { x, y, depth };
    }
  }
  return best;
}

describe('SAM click-to-segment', () => {
  let harness: JobHarness;
  let service: SamService;
  let embeddingSha256: string;
  let projectId: string;

  before(async () => {
    // The encoder holds the worker's event loop for a second or two: the lease must outlast it.
    harness = await JobHarness.open({ queue: 'embedded', env: { MIFO_LEASE_MS: '8000' } });
    await harness.startWorker({ modules: [] });
    const photo = await sharp(Buffer.from(rendered.image), { raw: { width: SIZE, height: SIZE, channels: 3 } }).png().toBuffer();
    const stored = await harness.services.artifacts.put(photo, 'image/png');
    const project = harness.services.projects.create({ name: 'shapes', photo: { sha256: stored.sha256, mediaType: 'image/png', width: SIZE, height: SIZE } });
    projectId = project.id;
    const job = await harness.services.jobs.submit({ type: 'sam-encode', input: { image: stored.sha256 }, projectId });
    const finished = await harness.finished(job.id, 60_000);
    assert.equal(finished.status, 'completed', JSON.stringify(finished.error));
    embeddingSha256 = (finished.result as SamEncodeJobResult).embedding;
    service = new SamService(harness.services.artifacts);
  });

  after(() => harness.close());

  test('the sam-encode job stores a 256×64×64 embedding of the photo and links it to the project', async () => {
    assert.equal(harness.services.projects.require(projectId).samEmbeddingSha256, embeddingSha256);
    const embedding = parseEmbedding(await harness.services.artifacts.read(embeddingSha256));
    assert.equal(embedding.data.length, 256 * 64 * 64);
    assert.deepEqual([embedding.width, embedding.height], [SIZE, SIZE]);
    assert.ok(embedding.data.some((v) => v !== 0));
    assert.deepEqual(parseEmbedding(serializeEmbedding(embedding)).data, embedding.data);
  });

  test('one click inside each object segments that object', async () => {
    for (const [i, truth] of rendered.masks.entries()) {
      const point = innermostPoint(truth);
      const mask = await service.segment(embeddingSha256, { points: [{ ...point, positive: true }] });
      assert.deepEqual([mask.width, mask.height], [SIZE, SIZE]);
      assert.ok(iou(mask.mask, truth) > 0.9, `object ${i}: IoU ${iou(mask.mask, truth).toFixed(3)} from a click at ${point.x},${point.y}`);
    }
  });

  test('a box prompt segments the object in it', async () => {
    for (const [i, truth] of rendered.masks.entries()) {
      const [x0, y0, x1, y1] = rendered.boxes[i]!.map((v) => v * SIZE) as [number, number, number, number];
      const mask = await service.segment(embeddingSha256, { points: [], box: [x0 - 3, y0 - 3, x1 + 3, y1 + 3] });
      assert.ok(iou(mask.mask, truth) > 0.9, `object ${i}: IoU ${iou(mask.mask, truth).toFixed(3)}`);
    }
  });

  test('a negative click on a second object inside a box around two removes that object', async () => {
    const [a, b] = [0, 1].map((i) => rendered.boxes[i]!.map((v) => v * SIZE));
    const union: [number, number, number, number] = [Math.min(a![0]!, b![0]!), Math.min(a![1]!, b![1]!), Math.max(a![2]!, b![2]!), Math.max(a![3]!, b![3]!)];
    const inside = innermostPoint(rendered.masks[0]!);
    const outside = innermostPoint(rendered.masks[1]!);
    const mask = await service.segment(embeddingSha256, { points: [{ ...inside, positive: true }, { ...outside, positive: false }], box: union });
    assert.equal(mask.mask[outside.y * SIZE + outside.x], 0);
    assert.ok(iou(mask.mask, rendered.masks[0]!) > 0.85, `IoU ${iou(mask.mask, rendered.masks[0]!).toFixed(3)}`);
  });

  test('the embedding is kept only while the project still has the encoded photo', () => {
    const other = harness.services.projects.create({ name: 'other', photo: { sha256: 'b'.repeat(64), mediaType: 'image/png', width: 8, height: 8 } });
    const job = { projectId: other.id, input: { image: 'a'.repeat(64) } } as unknown as JobRecord;
    samEncodeJob.recordResult!(harness.services.db, job, { embedding: 'c'.repeat(64), width: 8, height: 8 });
    assert.equal(harness.services.projects.require(other.id).samEmbeddingSha256, null);
    samEncodeJob.recordResult!(harness.services.db, { ...job, input: { image: 'b'.repeat(64) } }, { embedding: 'c'.repeat(64), width: 8, height: 8 });
    assert.equal(harness.services.projects.require(other.id).samEmbeddingSha256, 'c'.repeat(64));
  });

  test('a photo that is not an image fails the job once, as bad input', async () => {
    const text = await harness.services.artifacts.put(new TextEncoder().encode('not an image'), 'text/plain');
    const job = await harness.services.jobs.submit({ type: 'sam-encode', input: { image: text.sha256 } });
    const finished = await harness.finished(job.id, 30_000);
    assert.equal(finished.status, 'failed');
    assert.equal(finished.error?.kind, 'input');
    assert.equal(finished.attempts, 1);
  });
});

describe('mask images', () => {
  const target = { width: 40, height: 30 };
  const read = (bytes: Uint8Array, what = 'the mask', maxPixels = 10_000) => readMaskImage(bytes, target, what, maxPixels);

  test('white-on-black and opaque-on-transparent masks read the same, resized to the photo', async () => {
    const grey = Buffer.alloc(80 * 60);
    for (let y = 10; y < 40; y++) grey.fill(255, y * 80 + 20, y * 80 + 60);
    const greyPng = await sharp(grey, { raw: { width: 80, height: 60, channels: 1 } }).png().toBuffer();
    const rgba = Buffer.alloc(80 * 60 * 4);
    for (let p = 0; p < 80 * 60; p++) rgba.set(grey[p] ? [10, 200, 30, 255] : [255, 255, 255, 0], p * 4);
    const rgbaPng = await sharp(rgba, { raw: { width: 80, height: 60, channels: 4 } }).png().toBuffer();
    const fromGrey = await read(greyPng);
    const fromAlpha = await read(rgbaPng);
    assert.equal(fromGrey.area, 20 * 15);
    assert.deepEqual(fromAlpha.mask, fromGrey.mask);
    assert.equal(fromGrey.mask[5 * 40 + 10], 1);
    assert.equal(fromGrey.mask[4 * 40 + 10], 0);
    const again = await read(await maskToPng(fromGrey.mask, 40, 30));
    assert.deepEqual(again.mask, fromGrey.mask);
  });

  test('a mask of another shape or no image at all is refused with what to do', async () => {
    const square = await sharp({ create: { width: 30, height: 30, channels: 3, background: '#fff' } }).png().toBuffer();
    await assert.rejects(read(square, 'mask.png'), (error: unknown) => error instanceof MaskError && /mask.png is 30×30 but the photo is 40×30/.test(error.message));
    await assert.rejects(read(new TextEncoder().encode('hello')), /could not be read as an image/);
    // the size is read from the header: a huge mask is refused before its pixels are decoded
    const huge = await sharp({ create: { width: 400, height: 300, channels: 3, background: '#fff' } }).png().toBuffer();
    await assert.rejects(read(huge, 'big.png'), (error: unknown) => error instanceof MaskError && /big.png is 400×300 pixels; the limit is 10000/.test(error.message));
  });
});
