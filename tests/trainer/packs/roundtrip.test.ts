// Export -> import -> compose gives the same image for a seed as composing with the concept folder that was exported,
// on tiny-sd with a concept learned by the fast preset (cut down); a renamed token composes the same image too.
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { tf } from '../../../trainer/runtime/backend.ts';
import { loadConcepts, type ConceptSource } from '../../../trainer/concepts/load.ts';
import { readManifest } from '../../../trainer/concepts/format.ts';
import { StableDiffusionPipeline } from '../../../trainer/pipelines/stable_diffusion.ts';
import { compose } from '../../../trainer/synth/compose.ts';
import { profileBaseModel } from '../../../trainer/packs/base.ts';
import { buildPack } from '../../../trainer/packs/export.ts';
import { importPack } from '../../../trainer/packs/import.ts';
import { setupRuntime } from '../../helpers.ts';
import { learnConcept, TINY_SD } from './support.ts';

const root = mkdtempSync(join(tmpdir(), 'mifo-pack-roundtrip-'));
after(() => rmSync(root, { recursive: true, force: true }));
let conceptDir: string;

before(async () => {
  await setupRuntime();
  conceptDir = await learnConcept(join(root, 'learned'));
});

const BOXES = [[0.05, 0.25, 0.45, 0.85], [0.55, 0.25, 0.95, 0.85]];
const CONTROL = { guidanceSteps: 2, iterationsPerStep: 2, refineStart: 2, refineEvery: 1, kmeansInits: 2 };

/** The composed image (NHWC floats) of `prompt` on a fresh tiny-sd with the concept loaded. */
async function composeWith(source: string | ConceptSource, prompt: string): Promise<Float32Array> {
  const pipe = StableDiffusionPipeline.fromPretrained(TINY_SD);
  try {
    loadConcepts(pipe, [source]);
    const result = await compose(pipe, { prompt, boxes: BOXES, seed: 7, steps: 3, control: CONTROL });
    const pixels = Float32Array.from(result.images.dataSync() as Float32Array);
    tf.dispose([result.images, result.latents]);
    return pixels;
  } finally {
    pipe.dispose();
  }
}

function maxDifference(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
}

test('export -> import -> compose gives the image composed with the exported concept', async () => {
  const base = await profileBaseModel(TINY_SD);
  const { bytes } = await buildPack(conceptDir, { name: 'two squares' });
  const imported = importPack(bytes, { base, outDir: join(root, 'imported') });
  assert.deepEqual(imported.tokens, ['<asset0>', '<asset1>']);
  assert.deepEqual(imported.warnings, []);

  const original = readManifest(conceptDir);
  const copy = readManifest(imported.dir);
  assert.deepEqual(copy.weights, original.weights);
  assert.deepEqual(copy.baseModel, original.baseModel);
  assert.deepEqual(copy.tokens.map((t) => [t.token, t.name]), original.tokens.map((t) => [t.token, t.name]));
  assert.deepEqual(readFileSync(join(imported.dir, 'image.png')), readFileSync(join(conceptDir, 'image.png')));
  assert.deepEqual(readFileSync(join(imported.dir, copy.tokens[1]!.mask)), readFileSync(join(conceptDir, original.tokens[1]!.mask)));

  const prompt = 'a photo of <asset0> and <asset1>';
  const before = await composeWith(conceptDir, prompt);
  const after = await composeWith(imported.dir, prompt);
  assert.equal(maxDifference(before, after), 0, 'the same image, bit for bit');

  // Without its LoRA the concept composes another image, so the comparison above would see lost weights.
  const withoutLora = await composeWith({ dir: conceptDir, loraScale: 0 }, prompt);
  assert.ok(maxDifference(before, withoutLora) > 1e-3, `the LoRA changes the image by ${maxDifference(before, withoutLora)}`);
});

test('a pack imported beside its own concept gets renamed tokens, which compose the same image', async () => {
  const base = await profileBaseModel(TINY_SD);
  const { bytes } = await buildPack(conceptDir);
  const imported = importPack(bytes, { base, outDir: join(root, 'renamed'), takenTokens: ['<asset0>', '<asset1>', '<asset1-2>'] });
  assert.deepEqual(imported.renamed, { '<asset0>': '<asset0-2>', '<asset1>': '<asset1-3>' });
  assert.deepEqual(readManifest(imported.dir).tokens.map((t) => t.token), ['<asset0-2>', '<asset1-3>']);
  const original = await composeWith(conceptDir, 'a photo of <asset0> and <asset1>');
  const renamed = await composeWith(imported.dir, 'a photo of <asset0-2> and <asset1-3>');
  assert.equal(maxDifference(original, renamed), 0);
});

test('a token that the base tokenizer already has (added_tokens.json) is renamed too', async () => {
  const model = join(root, 'tiny-sd-with-token');
  mkdirSync(model);
  for (const entry of readdirSync(TINY_SD)) if (entry !== 'tokenizer') symlinkSync(join(TINY_SD, entry), join(model, entry));
  cpSync(join(TINY_SD, 'tokenizer'), join(model, 'tokenizer'), { recursive: true });
  writeFileSync(join(model, 'tokenizer', 'added_tokens.json'), JSON.stringify({ '<asset1>': 1000 }));
  const base = await profileBaseModel(model);
  assert.deepEqual([...base.vocabularyTokens], ['<asset1>']);
  const { bytes } = await buildPack(conceptDir);
  const imported = importPack(bytes, { base, outDir: join(root, 'vocabulary') });
  assert.deepEqual(imported.renamed, { '<asset1>': '<asset1-2>' });
});
