import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { tf } from '../../../trainer/runtime/backend.ts';
import { attentionMass, crossKeySelector, inBoxReward, outOfBoxPenalty, regionSelector, termLoss, totalLoss } from '../../../trainer/synth/losses.ts';
import { boxRegions } from '../../../trainer/synth/regions.ts';
import { setupRuntime } from '../../helpers.ts';

before(setupRuntime);

// A 2x2 grid (queries q0 q1 / q2 q3), keys [SOT, tokenA, tokenB, EOS], two heads. Subject A's box is q0, subject
// B's box is q1, the background is {q2, q3}.
const probs = () =>
  tf.tensor4d(
    [
      [0.4, 0.3, 0.1, 0.2], [0.5, 0.1, 0.3, 0.1], [0.6, 0.2, 0.1, 0.1], [0.7, 0.1, 0.1, 0.1], // head 0
      [0.1, 0.5, 0.2, 0.2], [0.2, 0.2, 0.4, 0.2], [0.5, 0.1, 0.3, 0.1], [0.4, 0.3, 0.2, 0.1], // head 1
    ].flat(),
    [1, 2, 4, 4],
  );
const regions = boxRegions([[0, 0, 0.5, 0.5], [0.5, 0, 1, 0.5]], 2, 2);
const close = (actual: ArrayLike<number>, expected: number[], what: string) => {
  assert.equal(actual.length, expected.length, what);
  expected.forEach((e, i) => assert.ok(Math.abs(actual[i]! - e) < 1e-5, `${what}[${i}]: ${actual[i]} vs ${e}`));
};

test('regions of the hand-made layout', () => {
  assert.deepEqual([...regions.subjects[0]!], [1, 0, 0, 0]);
  assert.deepEqual([...regions.subjects[1]!], [0, 1, 0, 0]);
  assert.deepEqual([...regions.background], [0, 0, 1, 1]);
});

test('cross-attention masses: subject tokens plus EOS, summed over heads and pixels', () => {
  // A (keys 1, 3): F = h0 q0 (0.3+0.2) + h1 q0 (0.5+0.2) = 1.2; G = h0 q2,q3 (0.3+0.2) + h1 q2,q3 (0.2+0.4) = 1.1
  // B (keys 2, 3): F = h0 q1 (0.3+0.1) + h1 q1 (0.4+0.2) = 1.0; G = h0 (0.2+0.2) + h1 (0.4+0.3) = 1.1
  const mass = attentionMass(probs(), crossKeySelector([[1], [2]], 3, 4), regions);
  close(mass.inBox.dataSync(), [1.2, 1.0], 'F');
  close(mass.outOfBox.dataSync(), [1.1, 1.1], 'G');
});

test('self-attention masses: keys are the box pixels', () => {
  // A: F = Σ_h p[q0, k0] = 0.4 + 0.1; G = Σ_h p[q2|q3, k0] = 0.6 + 0.7 + 0.5 + 0.4
  // B: F = Σ_h p[q1, k1] = 0.1 + 0.2; G = Σ_h p[q2|q3, k1] = 0.2 + 0.1 + 0.1 + 0.3
  const mass = attentionMass(probs(), regionSelector(regions), regions);
  close(mass.inBox.dataSync(), [0.5, 0.3], 'F');
  close(mass.outOfBox.dataSync(), [2.2, 0.7], 'G');
});

test('masses of a batch keep samples apart', () => {
  const two = tf.concat([probs(), tf.reverse(probs(), 2)], 0) as tf.Tensor4D;
  const mass = attentionMass(two, crossKeySelector([[1], [2]], 3, 4), regions);
  // sample 1 has the query rows reversed: q3 q2 q1 q0, so A's box (q0) holds old q3 and B's box old q2
  // A: F = h0 (0.1+0.1) + h1 (0.3+0.1) = 0.6; G = h0 old q1,q0 (0.1+0.1)+(0.3+0.2) + h1 (0.2+0.2)+(0.5+0.2) = 1.8
  // B: F = h0 (0.1+0.1) + h1 (0.3+0.1) = 0.6; G = h0 old q1,q0 (0.3+0.1)+(0.1+0.2) + h1 (0.4+0.2)+(0.2+0.2) = 1.7
  close(mass.inBox.dataSync(), [1.2, 1.0, 0.6, 0.6], 'F');
  close(mass.outOfBox.dataSync(), [1.1, 1.1, 1.8, 1.7], 'G');
});

test('in-box reward, out-of-box penalty and the box-count factor', () => {
  const F = tf.tensor1d([1.2]);
  const G = tf.tensor1d([1.1]);
  close(inBoxReward(F, G).dataSync(), [0.22873346], '(1 - 1.2/2.3)^2');
  close(inBoxReward(F, G, 2).dataSync(), [0.41868512], '(1 - 1.2/(1.2 + 2*1.1))^2');
  close(outOfBoxPenalty(G).dataSync(), [0.74193734], 'ln(2.1)');
});

test('term loss averages F and G over layers before the reward and penalty; switches drop terms', () => {
  const layer = (f: number[], g: number[]) => ({ inBox: tf.tensor2d(f, [1, 2]), outOfBox: tf.tensor2d(g, [1, 2]) });
  const layers = [layer([1.2, 1.0], [1.1, 1.1]), layer([0.8, 1.4], [0.5, 0.3])];
  // means: A F=1.0 G=0.8 -> R=(0.8/1.8)^2=0.19753086, P=ln 1.8=0.58778666; B F=1.2 G=0.7 -> R=(0.7/1.9)^2=0.13573407, P=ln 1.7=0.53062825
  const options = { alpha: 0.25, inBox: true, outOfBox: true, backgroundFactor: 1 };
  close(termLoss(layers, options).dataSync(), [0.19753086 + 0.25 * 0.58778666, 0.13573407 + 0.25 * 0.53062825], 'R + αP');
  close(termLoss(layers, { ...options, outOfBox: false }).dataSync(), [0.19753086, 0.13573407], 'in-box only');
  close(termLoss(layers, { ...options, inBox: false }).dataSync(), [0.25 * 0.58778666, 0.25 * 0.53062825], 'out-of-box only');
  assert.throws(() => termLoss(layers, { ...options, inBox: false, outOfBox: false }), /in-box term, the out-of-box term/);
  assert.throws(() => termLoss([], options), /no loss layer/);
});

test('total loss weighs the summed CA and SA terms', () => {
  const cross = tf.tensor2d([0.1, 0.2, 0.3, 0.4], [2, 2]);
  const self = tf.tensor2d([1, 2, 3, 4], [2, 2]);
  close(totalLoss(cross, self, 1.5, 0.5).dataSync(), [1.5 * 1.0 + 0.5 * 10], 'λ_CA ΣL^CA + λ_SA ΣL^SA');
  close(totalLoss(null, self, 1.5, 0.5).dataSync(), [5], 'SA only');
  close(totalLoss(cross, null, 1.5, 0.5).dataSync(), [1.5], 'CA only');
});

test('bad shapes are refused', () => {
  assert.throws(() => attentionMass(probs(), crossKeySelector([[1], [2]], 3, 5), regions), /key selector has 5 rows for 4 keys/);
  assert.throws(() => attentionMass(probs(), crossKeySelector([[1], [2]], 3, 4), boxRegions([[0, 0, 1, 1], [0, 0, 1, 1]], 3, 3)), /4 queries but the regions are 3x3/);
  assert.throws(() => crossKeySelector([[7]], 3, 4), /outside the 4 keys/);
});
