// Token grounding (TokenCompose's L_token) on hand-made maps: word positions, per-map targets, the loss and the
// controller that collects it over the UNet's cross-attention layers.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { AttentionLayerInfo } from '../../../trainer/models/attention_processor.ts';
import { tf } from '../../../trainer/runtime/backend.ts';
import { groundingTargets, objectWordPositions, tokenGroundingLoss, TokenGroundingController } from '../../../trainer/train/grounding.ts';
import { setupRuntime } from '../../helpers.ts';

before(setupRuntime);

const close = (actual: number, expected: number, what: string) => assert.ok(Math.abs(actual - expected) < 1e-6, `${what}: ${actual}, expected ${expected}`);

describe('objectWordPositions', () => {
  test("finds each object's words in caption order, the k-th equal phrase at the k-th occurrence", () => {
    // <bos> a photo of a [7 8] and a [7 8] and a [9] on snow <eos>
    const ids = [0, 1, 2, 3, 1, 7, 8, 4, 1, 7, 8, 4, 1, 9, 5, 6, 99];
    assert.deepEqual(objectWordPositions(ids, [[7, 8], [7, 8], [9]]), [[5, 6], [9, 10], [13]]);
    // a word shared by two phrases ("red") does not confuse the search
    assert.deepEqual(objectWordPositions([0, 7, 8, 4, 7, 9, 99], [[7, 8], [7, 9]]), [[1, 2], [4, 5]]);
  });

  test('an object whose words were cut off is null; an object with no words is an error', () => {
    assert.deepEqual(objectWordPositions([0, 7, 8, 4, 7, 99], [[7, 8], [7, 9]]), [[1, 2], null]);
    assert.throws(() => objectWordPositions([0, 1], [[]]), /at least one word/);
  });
});

describe('groundingTargets', () => {
  const full = (data: number[]) => ({ width: 4, height: 4, data: Float32Array.from(data) });
  // the object covers the top-left 2x2 quadrant of a 4x4 image
  const quadrant = full([1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

  test("each named word's column holds its object's area-resized mask, with weight 1; other columns are empty", () => {
    const targets = groundingTargets([{ objects: [{ positions: [1, 2], mask: quadrant }] }, null], 4, 2);
    assert.equal(targets.side, 2);
    assert.deepEqual(Array.from(targets.tokenWeights), [0, 1, 1, 0, 0, 0, 0, 0]);
    const column = (b: number, k: number) => [0, 1, 2, 3].map((q) => targets.tokenMasks[(b * 4 + q) * 4 + k]);
    assert.deepEqual(column(0, 1), [1, 0, 0, 0]);
    assert.deepEqual(column(0, 2), [1, 0, 0, 0]);
    assert.deepEqual(column(0, 0), [0, 0, 0, 0]);
    assert.deepEqual(column(1, 1), [0, 0, 0, 0]);
    // at one cell the quadrant is a quarter of the map
    assert.deepEqual(Array.from(groundingTargets([{ objects: [{ positions: [0], mask: quadrant }] }], 1, 1).tokenMasks), [0.25]);
  });

  test('objects without positions are skipped; a position beyond the keys is an error', () => {
    const targets = groundingTargets([{ objects: [{ positions: null, mask: quadrant }] }], 3, 2);
    assert.ok(targets.tokenWeights.every((w) => w === 0));
    assert.throws(() => groundingTargets([{ objects: [{ positions: [3], mask: quadrant }] }], 3, 2), /position 3 is outside the 3 keys/);
  });
});

describe('tokenGroundingLoss', () => {
  // one sample, two heads, 4 queries, 2 keys; word 0 names an object over queries 0-1
  const masks = () => tf.tensor3d([1, 0, 1, 0, 0, 0, 0, 0], [1, 4, 2]);

  test('is 0 when every head attends inside the mask, (1 - area)² for an even map, and ignores unweighted words', () => {
    const inside = tf.tensor4d([0.5, 0.9, 0.5, 0.9, 0, 0.05, 0, 0.05, 0.5, 0.9, 0.5, 0.9, 0, 0.05, 0, 0.05], [1, 2, 4, 2]);
    close(tokenGroundingLoss(inside, masks(), tf.tensor2d([1, 0], [1, 2])).dataSync()[0]!, 0, 'inside');
    const even = tf.fill([1, 2, 4, 2], 0.5) as tf.Tensor4D;
    close(tokenGroundingLoss(even, masks(), tf.tensor2d([1, 0], [1, 2])).dataSync()[0]!, 0.25, 'even');
  });

  test('averages over heads before measuring, and over the weighted words', () => {
    // head 0 puts word 0 wholly inside, head 1 wholly outside: the head mean is half inside
    const split = tf.tensor4d([0.4, 0.6, 0.4, 0.6, 0, 1, 0, 1, 0, 1, 0, 1, 0.4, 0.6, 0.4, 0.6], [1, 2, 4, 2]);
    close(tokenGroundingLoss(split, masks(), tf.tensor2d([1, 0], [1, 2])).dataSync()[0]!, 0.25, 'head mean');
    // word 1 (mask: queries 2-3 too, in a second sample) is wholly outside its mask: (0.25 + 1) / 2
    const twoSamples = tf.concat([split, tf.tensor4d([1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1], [1, 2, 4, 2])]) as tf.Tensor4D;
    const twoMasks = tf.concat([masks(), tf.tensor3d([0, 0, 0, 0, 1, 0, 1, 0], [1, 4, 2])]) as tf.Tensor3D;
    close(tokenGroundingLoss(twoSamples, twoMasks, tf.tensor2d([1, 0, 1, 0], [2, 2])).dataSync()[0]!, 0.625, 'two samples');
  });

  test('its gradient (through a softmax over the keys) draws the word into the queries of its mask and out of the others', () => {
    const logits = tf.variable(tf.zeros([1, 1, 4, 2]));
    const grad = tf.grad((x: tf.Tensor) => tokenGroundingLoss(tf.softmax(x) as tf.Tensor4D, tf.tensor3d([1, 0, 1, 0, 0, 0, 0, 0], [1, 4, 2]), tf.tensor2d([1, 0], [1, 2])))(logits);
    const g = grad.dataSync();
    assert.ok(g[0]! < 0 && g[2]! < 0 && g[4]! > 0 && g[6]! > 0, `gradient ${Array.from(g)}`);
  });
});

describe('TokenGroundingController', () => {
  const layer = (kind: 'self' | 'cross', level: number, order: number): AttentionLayerInfo => ({
    id: `layer-${order}`,
    kind,
    place: 'down',
    block: level,
    attention: 0,
    transformer: 0,
    level,
    heads: 1,
    headDim: 4,
    order,
    crossOrder: kind === 'cross' ? order : -1,
  });

  test('captures the cross-attention layers of its levels and averages their terms', () => {
    const targets = new Map([[2, { tokenMasks: tf.tensor3d([1, 1, 0, 0], [1, 4, 1]), tokenWeights: tf.tensor2d([1], [1, 1]) }]]);
    const controller = new TokenGroundingController(new Set([0]), targets);
    assert.equal(controller.capture(layer('cross', 0, 1)), true);
    assert.equal(controller.capture(layer('self', 0, 0)), false);
    assert.equal(controller.capture(layer('cross', 1, 3)), false);
    const call = { layer: layer('cross', 0, 1), batch: 1, height: 2, width: 2, keys: 1 };
    controller.onProbs(call, tf.tensor4d([0.5, 0.5, 0, 0], [1, 1, 4, 1]));
    controller.onProbs(call, tf.tensor4d([0.25, 0.25, 0.25, 0.25], [1, 1, 4, 1]));
    close(controller.mean().dataSync()[0]!, (0 + 0.25) / 2, 'mean over layers');
    assert.throws(() => controller.mean(), /no cross-attention layer at levels 0 was run/);
  });

  test('a map size without targets is an error', () => {
    const controller = new TokenGroundingController(new Set([0]), new Map());
    const probs = tf.tensor4d([1, 0, 0, 0], [1, 1, 4, 1]);
    assert.throws(() => controller.onProbs({ layer: layer('cross', 0, 1), batch: 1, height: 2, width: 2, keys: 1 }, probs), /no grounding targets for a 2x2 map/);
    assert.ok(probs.isDisposed);
  });
});
