import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { main } from '../../../trainer/cli/main.ts';
import { CONCEPT_FORMAT, CONCEPT_VERSION, EMBEDDINGS_FILE, MANIFEST_FILE, writeEmbeddings } from '../../../trainer/concepts/format.ts';
import { readComponentConfig } from '../../../trainer/io/diffusers.ts';
import { Generator } from '../../../trainer/util/random.ts';
import { goldenVariants, setupRuntime } from '../../helpers.ts';

before(setupRuntime);
const dir = mkdtempSync(join(tmpdir(), 'mifo-compose-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// The reference's knobs, shortened so the run takes seconds.
const FAST = ['--steps', '3', '--guidance-steps', '2', '--iterations', '2', '--refine-start', '2', '--refine-every', '1', '--kmeans-inits', '2'];

for (const variant of goldenVariants()) {
  test(`mifo compose on ${variant.name} with two boxes writes the images and the JSON record`, async () => {
    const out = join(dir, `${variant.name}.png`);
    const code = await main([
      'compose', '--model', variant.pipelineDir, '--prompt', 'a photo of a cat and a dog on the beach',
      '--box', '0.05,0.30,0.45,0.90', '--box', '0.55,0.30,0.95,0.90', '--seed', '1', '--batch', '2', ...FAST, '--out', out,
    ]);
    assert.equal(code, 0);
    const record = JSON.parse(readFileSync(join(dir, `${variant.name}.json`), 'utf8'));
    assert.deepEqual(record.images, [join(dir, `${variant.name}-0.png`), join(dir, `${variant.name}-1.png`)]);
    for (const path of record.images) {
      const meta = await sharp(path).metadata();
      assert.equal(meta.width, record.width);
      assert.equal(meta.height, record.height);
    }
    assert.equal(record.model, variant.pipelineDir);
    assert.deepEqual(record.subjects.map((s: { text: string }) => s.text), ['cat', 'dog']);
    assert.deepEqual(record.boxes, [[0.05, 0.3, 0.45, 0.9], [0.55, 0.3, 0.95, 0.9]]);
    assert.equal(record.seed, 1);
    assert.equal(record.control.guidanceSteps, 2);
    assert.equal(record.losses.length, 2);
    assert.equal(record.masks.masks.length, 2);
    assert.equal(record.masks.masks[0].length, 2);
    assert.equal(record.masks.masks[0][0].length, record.masks.height * record.masks.width);
  });
}

/** A concept folder with two tokens (embeddings only), as the learning stage writes it. */
function writeTestConcept(conceptDir: string, modelDir: string, seed = 9): void {
  const hidden = readComponentConfig<{ hidden_size: number }>(join(modelDir, 'text_encoder')).hidden_size;
  const tokens = ['<asset0>', '<asset1>'];
  mkdirSync(conceptDir, { recursive: true });
  const rows = new Generator(seed).randn(tokens.length * hidden).map((v) => 0.02 * v);
  writeEmbeddings(join(conceptDir, EMBEDDINGS_FILE), tokens, rows, hidden);
  const manifest = {
    format: CONCEPT_FORMAT,
    version: CONCEPT_VERSION,
    createdAt: new Date(0).toISOString(),
    baseModel: { id: 'test', weightsHash: 'sha256:0', hiddenSize: hidden, baseVocabSize: 0 },
    image: 'image.png',
    resolution: 32,
    embeddings: EMBEDDINGS_FILE,
    tokens: tokens.map((token, i) => ({ token, name: null, initializer: null, mask: `masks/mask${i}.png`, attentionMap: `attention/${i}.png` })),
    weights: { type: 'none' },
    options: {},
    metrics: {},
  };
  writeFileSync(join(conceptDir, MANIFEST_FILE), JSON.stringify(manifest));
}

test('--concepts adds the learned tokens, and the boxes take them in prompt order', async () => {
  const variant = goldenVariants()[0]!;
  const conceptDir = join(dir, 'concept');
  writeTestConcept(conceptDir, variant.pipelineDir);
  const out = join(dir, 'concept.png');
  const code = await main([
    'compose', '--model', variant.pipelineDir, '--concepts', conceptDir, '--prompt', 'a photo of <asset1> and <asset0> on the beach',
    '--box', '0.05,0.30,0.45,0.90', '--box', '0.55,0.30,0.95,0.90', '--seed', '2', ...FAST, '--out', out,
  ]);
  assert.equal(code, 0);
  const record = JSON.parse(readFileSync(join(dir, 'concept.json'), 'utf8'));
  assert.deepEqual(record.concepts, [{ dir: conceptDir, tokens: ['<asset0>', '<asset1>'] }]);
  assert.deepEqual(record.subjects.map((s: { text: string; tokens: string[] }) => [s.text, s.tokens]), [['<asset1>', ['<asset1>']], ['<asset0>', ['<asset0>']]]);
  assert.ok(existsSync(out));
});

test('--subject chooses the words of each box; --preset off and previews', async () => {
  const variant = goldenVariants()[0]!;
  const out = join(dir, 'subjects.png');
  const code = await main([
    'compose', '--model', variant.pipelineDir, '--prompt', 'a cat sitting on a red chair', '--box', '0.5,0.2,0.9,0.8', '--box', '0.1,0.2,0.5,0.8',
    '--subject', 'red chair', '--subject', 'cat', '--preset', 'off', '--preview-every', '2', '--seed', '4', ...FAST, '--out', out,
  ]);
  assert.equal(code, 0);
  const record = JSON.parse(readFileSync(join(dir, 'subjects.json'), 'utf8'));
  assert.deepEqual(record.subjects.map((s: { text: string; leading: number }) => [s.text, s.leading]), [['red chair', 7], ['cat', 2]]);
  assert.equal(record.preset, 'off');
  assert.deepEqual(record.losses, []);
  assert.ok(existsSync(join(dir, 'subjects-step001.png')) && existsSync(join(dir, 'subjects-step002.png')));
});

test('bad options fail with a clear message and exit code 2', async () => {
  const variant = goldenVariants()[0]!;
  const errors: string[] = [];
  const original = console.error;
  console.error = (message: string) => errors.push(message);
  try {
    const base = ['compose', '--model', variant.pipelineDir, '--prompt', 'a cat and a dog', '--out', join(dir, 'bad.png')];
    assert.equal(await main([...base, '--box', '0.1,0.2,0.3']), 2);
    assert.match(errors.pop()!, /--box takes x0,y0,x1,y1/);
    assert.equal(await main([...base, '--box', '0,0,0.5,1', '--box', '0.5,0,1,1', '--subject', 'cat']), 2);
    assert.match(errors.pop()!, /2 --box but 1 --subject/);
    assert.equal(await main([...base, '--box', '0,0,0.5,1', '--preset', 'strong']), 2);
    assert.match(errors.pop()!, /--preset must be one of mifo, ba, off/);
    assert.equal(await main([...base, '--box', '0,0,0.5,1', '--box', '0.5,0,1,1', '--box', '0.2,0.2,0.4,0.4', '--steps', '1']), 1);
    assert.match(errors.pop()!, /3 boxes but only 2 noun phrase/);
    const unloaded = ['compose', '--model', variant.pipelineDir, '--prompt', 'a photo of <asset0> and a dog', '--box', '0,0,0.5,1', '--steps', '1', '--out', join(dir, 'bad.png')];
    assert.equal(await main(unloaded), 1);
    assert.match(errors.pop()!, /the prompt names <asset0>, which no loaded concept provides \(loaded: none\)/);
  } finally {
    console.error = original;
  }
});

test('mifo generate --concepts draws with the learned rows; a prompt naming an unloaded token fails', async () => {
  const variant = goldenVariants()[0]!;
  const conceptDirs = [join(dir, 'generate-a'), join(dir, 'generate-b')];
  conceptDirs.forEach((conceptDir, i) => writeTestConcept(conceptDir, variant.pipelineDir, 20 + i));
  const generate = (extra: string[], out: string) =>
    main(['generate', '--model', variant.pipelineDir, '--prompt', 'a photo of <asset0>', '--steps', '2', '--seed', '5', ...extra, '--out', out]);
  const outs = conceptDirs.map((_, i) => join(dir, `generate-${i}.png`));
  for (const [i, conceptDir] of conceptDirs.entries()) assert.equal(await generate(['--concepts', conceptDir], outs[i]!), 0);
  const [a, b] = await Promise.all(outs.map((path) => sharp(path).raw().toBuffer()));
  assert.ok(!a!.equals(b!), 'two concepts with different rows for <asset0> drew the same image');
  const errors: string[] = [];
  const original = console.error;
  console.error = (message: string) => errors.push(message);
  try {
    assert.equal(await generate([], join(dir, 'generate-none.png')), 1);
    assert.match(errors.pop()!, /the prompt names <asset0>, which no loaded concept provides/);
    assert.ok(!existsSync(join(dir, 'generate-none.png')));
  } finally {
    console.error = original;
  }
});
