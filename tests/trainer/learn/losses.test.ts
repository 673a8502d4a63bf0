import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { tf } from '../../../trainer/runtime/backend.ts';
import {
  attentionPenaltyLoss,
  attentionRewardLoss,
  attentionTermAt,
  attentionTermLoss,
  basAttentionLoss,
  maskedReconstructionLoss,
  type AttentionSchedule,
} from '../../../trainer/learn/losses.ts';
import { setupRuntime } from '../../helpers.ts';

const value = (t: tf.Scalar) => t.dataSync()[0]!;
let map: tf.Tensor2D;
let binaryMask: tf.Tensor2D;
let softMask: tf.Tensor2D;
before(async () => {
  await setupRuntime();
  map = tf.tensor2d([[0.2, 0.1], [0, 0.4]]);
  binaryMask = tf.tensor2d([[1, 0], [0, 1]]);
  softMask = tf.tensor2d([[1, 0.5], [0, 1]]);
});

describe('learning losses on hand-made maps', () => {
  test('masked reconstruction: mean over the whole tensor, the mask broadcast over channels', () => {
    // one row, two pixels, two channels: the first pixel (values 1, 2) is inside the mask, the second (3, 4) outside
    const pred = tf.tensor4d([1, 2, 3, 4], [1, 1, 2, 2]);
    const target = tf.zeros([1, 1, 2, 2]) as tf.Tensor4D;
    const mask = tf.tensor4d([1, 0], [1, 1, 2, 1]);
    // (1² + 2²) / 4 elements, not divided by the masked area (which would give 2.5)
    assert.equal(value(maskedReconstructionLoss(pred, target, mask)), 1.25);
  });

  test('reward: mean of (α·M − A)²', () => {
    // (0.5−0.2)² + (0−0.1)² + 0 + (0.5−0.4)² = 0.11, over 4 pixels
    assert.ok(Math.abs(value(attentionRewardLoss(map, binaryMask, 0.5)) - 0.0275) < 1e-8);
  });

  test('penalty: mean of ((1 − M)⊙A)² with a soft mask', () => {
    // only the pixel with M = 0.5 and A = 0.1 contributes: (0.5·0.1)² / 4
    assert.ok(Math.abs(value(attentionPenaltyLoss(map, softMask)) - 0.000625) < 1e-9);
    assert.ok(Math.abs(value(attentionPenaltyLoss(map, binaryMask)) - 0.0025) < 1e-9);
  });

  test("Break-a-Scene: the map divided by its maximum against the mask", () => {
    // A/max = [0.5, 0.25, 0, 1]: (1−0.5)² + 0.25² = 0.3125, over 4 pixels
    assert.ok(Math.abs(value(basAttentionLoss(map, binaryMask)) - 0.078125) < 1e-8);
  });

  test('attentionTermLoss dispatches on the term kind', () => {
    assert.equal(value(attentionTermLoss('reward', map, binaryMask, 0.5)), value(attentionRewardLoss(map, binaryMask, 0.5)));
    assert.equal(value(attentionTermLoss('penalty', map, softMask, 0.5)), value(attentionPenaltyLoss(map, softMask)));
    assert.equal(value(attentionTermLoss('bas', map, binaryMask, 0.5)), value(basAttentionLoss(map, binaryMask)));
  });
});

describe('which attention term applies', () => {
  const schedule: AttentionSchedule = { mode: 'reward-penalty', rewardSteps: 200, timestepThreshold: 500, rewardWeight: 1e-2, penaltyWeight: 2e-2, rewardAlpha: 0.5 };

  test('reward for the first n_c steps, penalty from n_c on', () => {
    assert.deepEqual(attentionTermAt(schedule, 0, 10), { kind: 'reward', weight: 1e-2 });
    assert.deepEqual(attentionTermAt(schedule, 199, 10), { kind: 'reward', weight: 1e-2 });
    assert.deepEqual(attentionTermAt(schedule, 200, 10), { kind: 'penalty', weight: 2e-2 });
    assert.deepEqual(attentionTermAt(schedule, 599, 10), { kind: 'penalty', weight: 2e-2 });
  });

  test('only for timesteps below t_s', () => {
    assert.notEqual(attentionTermAt(schedule, 0, 499), null);
    assert.equal(attentionTermAt(schedule, 0, 500), null);
    assert.equal(attentionTermAt(schedule, 300, 999), null);
  });

  test('λ_p = 0 switches the reward off too (the reference code guards the whole block with it)', () => {
    assert.equal(attentionTermAt({ ...schedule, penaltyWeight: 0 }, 0, 10), null);
    assert.equal(attentionTermAt({ ...schedule, mode: 'reward', penaltyWeight: 0 }, 0, 10), null);
  });

  test('the single-term modes and Break-a-Scene', () => {
    assert.deepEqual(attentionTermAt({ ...schedule, mode: 'reward' }, 10_000, 10), { kind: 'reward', weight: 1e-2 });
    assert.deepEqual(attentionTermAt({ ...schedule, mode: 'penalty' }, 0, 10), { kind: 'penalty', weight: 2e-2 });
    assert.equal(attentionTermAt({ ...schedule, mode: 'none' }, 0, 10), null);
    // Break-a-Scene applies at every timestep, with λ_r
    assert.deepEqual(attentionTermAt({ ...schedule, mode: 'bas' }, 0, 999), { kind: 'bas', weight: 1e-2 });
  });
});
