import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mergeOptions, parseOptionAssignment, presetOptions, resolveOptions } from '../../../trainer/learn/options.ts';

describe('learning options and presets', () => {
  test('reference = the spec’s defaults (§1.3, §1.4)', () => {
    const o = presetOptions('reference');
    assert.equal(o.phase1.steps, 600);
    assert.deepEqual(o.phase1.optimizer, { learningRate: 5e-3, betas: [0.9, 0.99], weightDecay: 1e-2, eps: 1e-8, maxGradNorm: 1, schedule: 'cosine', warmupSteps: 10 });
    const a = o.phase1.attention;
    assert.deepEqual([a.mode, a.rewardSteps, a.timestepThreshold, a.rewardWeight, a.penaltyWeight, a.rewardAlpha], ['reward-penalty', 200, 500, 1e-2, 2e-2, 0.5]);
    assert.deepEqual(a.layers, { kind: 'cross', places: ['up'], resolution: { coarsest: 2 } });
    assert.equal(o.sampling, 'joint');
    assert.equal(o.flipProbability, 0.5);
    assert.equal(o.tokenInit, 'mean');
    assert.deepEqual([o.phase2.steps, o.phase2.mode, o.phase2.optimizer.learningRate, o.phase2.optimizer.schedule], [400, 'full', 2e-6, 'constant']);
    assert.deepEqual([o.phase2.attention.mode, o.phase2.attention.penaltyWeight, o.phase2.attention.timestepThreshold], ['penalty', 2e-2, 500]);
    assert.deepEqual(o.phase2.attention.layers, { kind: 'cross', places: ['down', 'up'], resolution: { coarsest: 1 } });
    assert.equal(o.phase2.prior, true);
    assert.deepEqual([o.prior.classPrompt, o.prior.numImages, o.prior.weight], ['a photo of a chair', 100, 1]);
    assert.equal(o.phase2.pinVocabulary, true);
  });

  test('paper: 800 + 400 steps with the LoRA phase 2; fast is short; bas follows Break-a-Scene', () => {
    const paper = presetOptions('paper');
    assert.deepEqual([paper.phase1.steps, paper.phase1.attention.rewardSteps, paper.phase2.steps, paper.phase2.mode], [800, 200, 400, 'lora']);
    const fast = presetOptions('fast');
    assert.ok(fast.phase1.steps + fast.phase2.steps <= 150);
    assert.equal(fast.phase1.attention.mode, 'reward-penalty');
    const bas = presetOptions('bas');
    assert.deepEqual([bas.phase1.steps, bas.phase2.steps, bas.phase1.optimizer.learningRate, bas.phase1.optimizer.betas[1]], [400, 400, 5e-4, 0.999]);
    assert.deepEqual([bas.phase1.attention.mode, bas.phase2.attention.mode, bas.tokenInit, bas.phase2.pinVocabulary], ['bas', 'bas', 'bas', false]);
    assert.deepEqual([bas.phase1.prior, bas.phase2.prior, bas.prior.classPrompt], [true, true, 'a photo at the beach']);
  });

  test('a model’s own layers replace the spec’s sets in every preset; an explicit option still wins', () => {
    const model = {
      phase1: { kind: 'cross' as const, places: ['up' as const], resolution: { strides: [4, 8] } },
      phase2: { kind: 'cross' as const, places: ['down' as const, 'up' as const], resolution: { strides: [4] } },
    };
    for (const preset of ['reference', 'paper', 'fast'] as const) {
      const o = resolveOptions(preset, {}, model);
      assert.deepEqual([o.phase1.attention.layers, o.phase2.attention.layers], [model.phase1, model.phase2], preset);
      assert.deepEqual({ ...o, phase1: { ...o.phase1, attention: {} }, phase2: { ...o.phase2, attention: {} } }, { ...presetOptions(preset), phase1: { ...presetOptions(preset).phase1, attention: {} }, phase2: { ...presetOptions(preset).phase2, attention: {} } });
    }
    const bas = resolveOptions('bas', {}, model);
    assert.deepEqual([bas.phase1.attention.layers, bas.phase2.attention.layers], [model.phase2, model.phase2]);
    const chosen = resolveOptions('fast', { phase1: { attention: { layers: { resolution: { coarsest: 2 } } } } }, model);
    assert.deepEqual(chosen.phase1.attention.layers, { kind: 'cross', places: ['up'], resolution: { coarsest: 2 } });
    assert.throws(() => resolveOptions('fast', { phase1: { attention: { layers: { places: [] } } } }), /phase1.attention.layers places must list some of down, mid, up/);
  });

  test('overrides merge deeply; unknown keys and invalid values are refused by name', () => {
    const o = resolveOptions('fast', { phase1: { optimizer: { learningRate: 1e-3 } } });
    assert.equal(o.phase1.optimizer.learningRate, 1e-3);
    assert.equal(o.phase1.optimizer.weightDecay, 1e-2);
    assert.throws(() => resolveOptions('fast', { phase1: { optimiser: {} } } as never), /unknown learning option 'phase1.optimiser'/);
    assert.throws(() => resolveOptions('fast', { phase1: { steps: 0 } }), /phase1.steps/);
    assert.throws(() => resolveOptions('fast', { phase1: { attention: { mode: 'sometimes' as never } } }), /phase1.attention.mode/);
    assert.throws(() => resolveOptions('fast', { phase1: { enabled: false }, phase2: { enabled: false } }), /at least one phase/);
    assert.throws(() => resolveOptions('fast', { resolution: 40_000 }), /resolution must be a positive integer up to 4096/);
    assert.throws(() => resolveOptions('fast', { phase2: { prior: true }, prior: { cacheDir: 7 as never } }), /prior.cacheDir must be a folder path/);
    // a resolution selection is replaced whole
    const strides = resolveOptions('fast', { phase1: { attention: { layers: { resolution: { strides: [16] } } } } });
    assert.deepEqual(strides.phase1.attention.layers.resolution, { strides: [16] });
  });

  test('KEY=VALUE assignments', () => {
    assert.deepEqual(parseOptionAssignment('phase1.optimizer.learningRate=1e-3'), { phase1: { optimizer: { learningRate: 1e-3 } } });
    assert.deepEqual(parseOptionAssignment('prior.classPrompt=a photo of a mug'), { prior: { classPrompt: 'a photo of a mug' } });
    assert.deepEqual(parseOptionAssignment('metricTimesteps=[10,20]'), { metricTimesteps: [10, 20] });
    assert.throws(() => parseOptionAssignment('seed'), /KEY=VALUE/);
    assert.equal(mergeOptions(presetOptions('fast'), parseOptionAssignment('phase2.mode="full"')).phase2.mode, 'full');
  });
});
