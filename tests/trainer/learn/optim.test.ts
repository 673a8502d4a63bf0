import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { tf } from '../../../trainer/runtime/backend.ts';
import { AdamW, clipGradNorm, lrFactor } from '../../../trainer/learn/optim.ts';
import { setupRuntime } from '../../helpers.ts';

before(setupRuntime);

const close = (actual: ArrayLike<number>, expected: number[], tolerance: number) =>
  expected.forEach((e, i) => assert.ok(Math.abs(actual[i]! - e) < tolerance, `element ${i}: ${actual[i]} vs ${e}`));

describe('AdamW (torch.optim.AdamW update rule)', () => {
  // Expected values computed by hand with PyTorch's formulas (decoupled decay, bias-corrected moments).
  test('two steps match the hand-computed parameters', () => {
    const param = tf.variable(tf.tensor1d([1, -2]));
    const optimizer = new AdamW([param], { betas: [0.9, 0.99], weightDecay: 0.01, eps: 1e-8 });
    optimizer.step([tf.tensor1d([0.5, -1.5])], 0.1);
    close(param.dataSync(), [0.899000002, -1.8980000006666666], 1e-6);
    optimizer.step([tf.tensor1d([0.2, 0.3])], 0.1);
    close(param.dataSync(), [0.8080958524264916, -1.8448922854243834], 1e-6);
  });

  test('state round trip continues identically', () => {
    const run = (restore: boolean) => {
      const param = tf.variable(tf.tensor1d([0.3, 0.7, -0.1]));
      let optimizer = new AdamW([param], { betas: [0.9, 0.999], weightDecay: 0.01, eps: 1e-8 });
      optimizer.step([tf.tensor1d([0.1, -0.2, 0.3])], 0.01);
      if (restore) {
        const state = optimizer.getState();
        const saved = Float32Array.from(param.dataSync());
        optimizer = new AdamW([param], { betas: [0.9, 0.999], weightDecay: 0.01, eps: 1e-8 });
        param.assign(tf.tensor1d(saved));
        optimizer.setState(state);
      }
      optimizer.step([tf.tensor1d([-0.4, 0.5, 0.6])], 0.01);
      return Array.from(param.dataSync());
    };
    assert.deepEqual(run(true), run(false));
  });
});

describe('learning-rate schedule and clipping', () => {
  test('cosine: linear warm-up from 0, one cosine decay to 0 (diffusers cosine_with_restarts, 1 cycle)', () => {
    const options = { schedule: 'cosine' as const, warmupSteps: 10 };
    assert.equal(lrFactor(options, 0, 600), 0);
    assert.equal(lrFactor(options, 5, 600), 0.5);
    assert.equal(lrFactor(options, 10, 600), 1);
    assert.ok(Math.abs(lrFactor(options, 305, 600) - 0.5) < 1e-12);
    assert.equal(lrFactor(options, 600, 600), 0);
    assert.equal(lrFactor({ schedule: 'constant', warmupSteps: 10 }, 0, 600), 1);
  });

  test('the joint norm is clipped to maxNorm; smaller gradients pass unchanged', () => {
    const { norm, clipped } = clipGradNorm([tf.tensor1d([3]), tf.tensor1d([4])], 1);
    assert.ok(Math.abs(norm - 5) < 1e-6);
    close([...clipped[0]!.dataSync(), ...clipped[1]!.dataSync()], [0.6, 0.8], 1e-6);
    const small = clipGradNorm([tf.tensor1d([0.3, 0.4])], 1);
    close(small.clipped[0]!.dataSync(), [0.3, 0.4], 1e-7);
  });
});
