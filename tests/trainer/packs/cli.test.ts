// `mifo pack export|import|inspect` on a concept learned on tiny-sd: files, exit codes and the messages users see.
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { main } from '../../../trainer/cli/main.ts';
import { readManifest } from '../../../trainer/concepts/format.ts';
import { setupRuntime } from '../../helpers.ts';
import { learnConcept, TINY_SD, TINY_SD2 } from './support.ts';

const root = mkdtempSync(join(tmpdir(), 'mifo-pack-cli-'));
after(() => rmSync(root, { recursive: true, force: true }));
let conceptDir: string;
const packFile = join(root, 'squares.safetensors');

/** Runs `mifo ...` and returns its exit code with everything it printed. */
async function mifo(...argv: string[]): Promise<{ code: number; output: string }> {
  const lines: string[] = [];
  const saved = { log: console.log, warn: console.warn, error: console.error };
  console.log = console.warn = console.error = (...parts: unknown[]) => lines.push(parts.join(' '));
  try {
    return { code: await main(argv), output: lines.join('\n') };
  } finally {
    Object.assign(console, saved);
  }
}

before(async () => {
  await setupRuntime();
  conceptDir = await learnConcept(join(root, 'learned'), { phase1: { steps: 1 }, phase2: { steps: 1 } });
});

describe('mifo pack', () => {
  test('export writes the pack and inspect describes it', async () => {
    const exported = await mifo('pack', 'export', '--concepts', conceptDir, '--out', packFile, '--name', 'Two squares', '--note', 'white and black', '--rename', '<asset1>=<dark>');
    assert.equal(exported.code, 0, exported.output);
    assert.match(exported.output, /<dark>\s+black square/);
    const inspected = await mifo('pack', 'inspect', packFile, '--json');
    assert.equal(inspected.code, 0, inspected.output);
    const summary = JSON.parse(inspected.output);
    assert.deepEqual([summary.name, summary.note, summary.baseModel.id, summary.lora.rank], ['Two squares', 'white and black', 'tiny-sd', 4]);
    assert.deepEqual(summary.instances.map((i: { token: string; name: string }) => [i.token, i.name]), [['<asset0>', 'white square'], ['<dark>', 'black square']]);
    const against = await mifo('pack', 'inspect', packFile, '--model', TINY_SD2);
    assert.equal(against.code, 0);
    assert.match(against.output, /does not fit tiny-sd2: .*'tiny-sd' \(sha256:[0-9a-f]{12}….*'tiny-sd2'/);
  });

  test('import writes a concept folder, renaming tokens the existing concepts use', async () => {
    const out = join(root, 'imported');
    const imported = await mifo('pack', 'import', packFile, '--model', TINY_SD, '--existing', conceptDir, '--out', out);
    assert.equal(imported.code, 0, imported.output);
    assert.match(imported.output, /<asset0> is already taken: imported as <asset0-2>/);
    assert.deepEqual(readManifest(out).tokens.map((t) => t.token), ['<asset0-2>', '<dark>']);
  });

  test('a pack for another base model, a damaged pack and an occupied folder are refused without writing', async () => {
    const out = join(root, 'refused');
    const other = await mifo('pack', 'import', packFile, '--model', TINY_SD2, '--out', out);
    assert.equal(other.code, 1);
    assert.match(other.output, /learned on base model 'tiny-sd' .* but this model is 'tiny-sd2'/);
    const damaged = join(root, 'damaged.safetensors');
    writeFileSync(damaged, readFileSync(packFile).subarray(0, 5000));
    const broken = await mifo('pack', 'import', damaged, '--model', TINY_SD, '--out', out);
    assert.equal(broken.code, 1);
    assert.match(broken.output, /not a valid safetensors file/);
    assert.ok(!existsSync(out));
    mkdirSync(out);
    writeFileSync(join(out, 'keep.txt'), 'mine');
    const occupied = await mifo('pack', 'import', packFile, '--model', TINY_SD, '--out', out);
    assert.equal(occupied.code, 1);
    assert.match(occupied.output, /already exists and is not empty/);
    assert.deepEqual(readdirSync(out), ['keep.txt']);
    assert.deepEqual(readdirSync(root).filter((name) => name.includes('.tmp-')), []);
  });

  test('--diffusers writes the diffusers layout; a full fine-tune cannot be packed', async () => {
    const out = join(root, 'diffusers');
    const exported = await mifo('pack', 'export', '--concepts', conceptDir, '--diffusers', out);
    assert.equal(exported.code, 0, exported.output);
    assert.deepEqual(readdirSync(out).sort(), ['embeddings', 'learned_embeds.safetensors', 'pytorch_lora_weights.safetensors']);
    const full = join(root, 'full');
    cpSync(conceptDir, full, { recursive: true });
    const manifest = readManifest(full);
    writeFileSync(join(full, 'manifest.json'), JSON.stringify({ ...manifest, weights: { type: 'full', unet: 'unet', textEncoder: 'text_encoder' } }));
    const refused = await mifo('pack', 'export', '--concepts', full, '--out', join(root, 'full.safetensors'));
    assert.equal(refused.code, 1);
    assert.match(refused.output, /full fine-tune .* phase2.mode "lora"/);
    assert.ok(!existsSync(join(root, 'full.safetensors')));
  });

  test('usage errors exit with 2', async () => {
    assert.equal((await mifo('pack')).code, 2);
    assert.equal((await mifo('pack', 'publish')).code, 2);
    assert.equal((await mifo('pack', 'export', '--concepts', conceptDir)).code, 2);
    assert.equal((await mifo('pack', 'export', '--concepts', conceptDir, '--out', join(root, 'x.bin'))).code, 2);
    assert.equal((await mifo('pack', 'export', '--concepts', conceptDir, '--out', join(root, 'x.safetensors'), '--rename', 'asset0')).code, 2);
    assert.equal((await mifo('pack', 'import')).code, 2);
    assert.equal((await mifo('pack', 'inspect', join(root, 'missing.safetensors'))).code, 2);
  });
});
