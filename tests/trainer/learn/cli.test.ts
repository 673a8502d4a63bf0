import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { main } from '../../../trainer/cli/main.ts';
import { readManifest } from '../../../trainer/concepts/format.ts';
import { fixtureModel, TWO_OBJECTS } from './support.ts';

const root = mkdtempSync(join(tmpdir(), 'mifo-cli-learn-'));
after(() => rmSync(root, { recursive: true, force: true }));

const inputs = ['--model', fixtureModel('tiny-sd2'), '--image', TWO_OBJECTS.image, '--mask', TWO_OBJECTS.masks[0]!, '--mask', TWO_OBJECTS.masks[1]!];

describe('mifo learn', () => {
  test('writes a concept folder with the options given on the command line, and says whether each token grounded', async (t) => {
    const log = t.mock.method(console, 'log', () => {});
    const out = join(root, 'concept');
    const code = await main(['learn', ...inputs, '--preset', 'fast', '--steps1', '3', '--steps2', '2', '--name', 'white', '--name', 'black',
      '--attention', 'reward', '--set', 'metricTimesteps=[100]', '--set', 'phase2.loraRank=2', '--out', out]);
    assert.equal(code, 0);
    const manifest = readManifest(out);
    assert.deepEqual(manifest.tokens.map((t) => t.name), ['white', 'black']);
    assert.deepEqual(manifest.weights, { type: 'lora', file: 'pytorch_lora_weights.safetensors', rank: 2, alpha: 4, components: ['unet', 'text_encoder'] });
    const options = manifest.options as { phase1: { steps: number; attention: { mode: string } }; phase2: { steps: number } };
    assert.deepEqual([options.phase1.steps, options.phase2.steps, options.phase1.attention.mode], [3, 2, 'reward']);
    assert.ok(!existsSync(join(out, 'checkpoints')));
    const lines = log.mock.calls.map((call) => String(call.arguments[0]));
    assert.ok(lines.some((line) => /^grounded \(own share grew, above every other mask's\): <asset0> (yes|no), <asset1> (yes|no)$/.test(line)), lines.join('\n'));
  });

  test('--init-from-names starts each token from its name where the model knows the word', async () => {
    const out = join(root, 'from-names');
    const code = await main(['learn', ...inputs, '--preset', 'fast', '--steps1', '1', '--no-phase2', '--set', 'metricTimesteps=[100]',
      '--name', 'dog', '--name', 'zqxj', '--init-from-names', '--out', out]);
    assert.equal(code, 0);
    assert.deepEqual(readManifest(out).tokens.map((t) => t.initializer), ['dog', null]);
  });

  test('bad input is a usage error naming the option', async () => {
    assert.equal(await main(['learn', '--model', fixtureModel('tiny-sd2'), '--image', TWO_OBJECTS.image, '--out', join(root, 'x')]), 2);
    assert.equal(await main(['learn', ...inputs, '--attention', 'sometimes', '--out', join(root, 'x')]), 2);
    assert.equal(await main(['learn', ...inputs, '--sampling', 'together', '--out', join(root, 'x')]), 2);
    assert.equal(await main(['learn', ...inputs, '--phase2-mode', 'half', '--out', join(root, 'x')]), 2);
    assert.equal(await main(['learn', ...inputs, '--preset', 'slow', '--out', join(root, 'x')]), 2);
    assert.equal(await main(['learn', ...inputs, '--set', 'phase1.optimiser.learningRate=1', '--out', join(root, 'x')]), 2);
    assert.ok(!existsSync(join(root, 'x', 'manifest.json')));
  });
});
