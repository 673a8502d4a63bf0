import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { guidedPrediction } from '../../../trainer/pipelines/guidance.ts';
import { tf } from '../../../trainer/runtime/backend.ts';
import { setupRuntime } from '../../helpers.ts';

before(setupRuntime);

// two samples of 2x2x1 predictions
const uncond = () => tf.tensor4d([0, 0, 0, 0, 1, 1, 1, 1], [2, 2, 2, 1]);
const text = () => tf.tensor4d([1, -1, 1, -1, 1, 1, 3, 3], [2, 2, 2, 1]);

function values(tensor: tf.Tensor): number[] {
  return Array.from(tensor.dataSync());
}

test('classifier-free guidance: uncond + scale·(text − uncond); scale 1 is the text prediction', () => {
  assert.deepEqual(values(guidedPrediction(uncond(), text(), 3)), [3, -3, 3, -3, 1, 1, 7, 7]);
  assert.deepEqual(values(guidedPrediction(uncond(), text(), 1)), values(text()));
});

test('guidance rescale pulls each sample’s spread towards the text prediction’s by the fraction φ', () => {
  // sample 0: guided [3,-3,3,-3] (std 3), text std 1 → fully rescaled [1,-1,1,-1]; φ = 0.5 gives the midpoint [2,-2,2,-2]
  // sample 1: guided [1,1,7,7] (std 3), text [1,1,3,3] (std 1) → [1/3,1/3,7/3,7/3], midpoint [2/3,2/3,14/3,14/3]
  const half = values(guidedPrediction(uncond(), text(), 3, 0.5));
  const expected = [2, -2, 2, -2, 2 / 3, 2 / 3, 14 / 3, 14 / 3];
  half.forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) < 1e-5, `value ${i}: ${v}, expected ${expected[i]}`));
  const full = values(guidedPrediction(uncond(), text(), 3, 1));
  [1, -1, 1, -1, 1 / 3, 1 / 3, 7 / 3, 7 / 3].forEach((e, i) => assert.ok(Math.abs(full[i]! - e) < 1e-5));
  assert.deepEqual(values(guidedPrediction(uncond(), text(), 3, 0)), [3, -3, 3, -3, 1, 1, 7, 7]);
  assert.throws(() => guidedPrediction(uncond(), text(), 3, 1.5), /guidance rescale must be in \[0, 1\]/);
});
