import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { LearnEvent } from '../../../trainer/learn/events.ts';
import { learn } from '../../../trainer/learn/learn.ts';
import { combineOverrides, type DeepPartial, type LearnOptions, type PresetName } from '../../../trainer/learn/options.ts';
import { readManifest } from '../../../trainer/concepts/format.ts';
import { ATTENTION_LAYERS_FILE } from '../../../trainer/pipelines/attention_layers_config.ts';
import { setupRuntime } from '../../helpers.ts';
import { fixtureModel, TINY_RUN, TWO_OBJECTS } from './support.ts';

before(setupRuntime);
const root = mkdtempSync(join(tmpdir(), 'mifo-variants-'));
after(() => rmSync(root, { recursive: true, force: true }));
const cacheDir = join(root, 'class-cache');
const smallPrior = { classPrompt: 'a photo of a chair', numImages: 2, generationSteps: 2, cacheDir };

async function events(name: string, preset: PresetName, options: DeepPartial<LearnOptions>, model = fixtureModel('tiny-sd2')): Promise<LearnEvent[]> {
  const out: LearnEvent[] = [];
  const run = learn({ model, image: TWO_OBJECTS.image, masks: TWO_OBJECTS.masks, outDir: join(root, name), preset, options: combineOverrides(TINY_RUN, options) });
  for await (const event of run as AsyncIterable<LearnEvent>) out.push(event);
  return out;
}

const steps = (list: LearnEvent[]) => list.filter((e) => e.type === 'step');

describe('learning variants', () => {
  test('prior preservation generates the class images once, caches them and adds the prior term', async () => {
    const first = await events('prior', 'fast', { phase2: { prior: true }, prior: smallPrior });
    assert.deepEqual(first.filter((e) => e.type === 'prepare').map((e) => e.done), [1, 2]);
    const [folder] = readdirSync(cacheDir);
    const files = readdirSync(join(cacheDir, folder!)).sort();
    assert.deepEqual(files, ['class-0.png', 'class-1.png']);
    const written = files.map((f) => statSync(join(cacheDir, folder!, f)).mtimeMs);
    assert.ok(steps(first).filter((s) => s.phase === 2).every((s) => s.terms.prior > 0));
    assert.ok(steps(first).filter((s) => s.phase === 1).every((s) => s.terms.prior === 0));

    await events('prior-again', 'fast', { phase2: { prior: true }, prior: smallPrior });
    assert.deepEqual(files.map((f) => statSync(join(cacheDir, folder!, f)).mtimeMs), written, 'the cached class images were regenerated');
  });

  test('Break-a-Scene: its term at every timestep in both phases, prior in both, full phase 2 with free vocabulary', async () => {
    const list = await events('bas', 'bas', { prior: smallPrior, phase1: { steps: 3 }, phase2: { steps: 2 } });
    const all = steps(list);
    assert.ok(all.every((s) => s.attentionTerm === 'bas' && s.terms.attention > 0 && s.terms.prior > 0));
    const manifest = readManifest(join(root, 'bas'));
    assert.equal(manifest.weights.type, 'full');
    assert.equal((manifest.options as LearnOptions).tokenInit, 'bas');
  });

  test('a model folder’s attention_layers.json chooses the layers of both phases', async () => {
    const model = join(root, 'model-with-layers');
    cpSync(fixtureModel('tiny-sd2'), model, { recursive: true });
    const learning = {
      phase1: { kind: 'cross', places: ['down', 'up'], resolution: { coarsest: 1 } },
      phase2: { kind: 'cross', places: ['up'], resolution: { coarsest: 2 } },
    };
    writeFileSync(join(model, ATTENTION_LAYERS_FILE), JSON.stringify({ learning }));
    await events('model-layers', 'fast', {}, model);
    const options = readManifest(join(root, 'model-layers')).options as LearnOptions;
    assert.deepEqual([options.phase1.attention.layers, options.phase2.attention.layers], [learning.phase1, learning.phase2]);
  });

  test('separate sampling shows one instance per step; TI-m writes tokens only', async () => {
    const list = await events('separate', 'fast', { sampling: 'separate', phase2: { enabled: false }, phase1: { steps: 6, attention: { mode: 'none' } } });
    const all = steps(list);
    assert.ok(all.every((s) => (s.prompt.match(/<asset/g) ?? []).length === 1 && s.attentionTerm === null && s.terms.attention === 0));
    assert.equal(readManifest(join(root, 'separate')).weights.type, 'none');
  });
});
