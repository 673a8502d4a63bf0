import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { tf } from '../../../trainer/runtime/backend.ts';
import { binarize, flipHorizontal, resizeArea, resizeBilinear, resizeNearest, unionMask, type Mask } from '../../../trainer/learn/masks.ts';
import { setupRuntime } from '../../helpers.ts';

before(setupRuntime);

const grid = (width: number, height: number, f: (x: number, y: number) => number): Mask => ({
  width,
  height,
  data: Float32Array.from({ length: width * height }, (_, i) => f(i % width, Math.floor(i / width))),
});

describe('mask resampling (F.interpolate semantics)', () => {
  const ramp = grid(4, 4, (x, y) => y * 4 + x);

  test('nearest takes source index floor(dst · in/out)', () => {
    assert.deepEqual(Array.from(resizeNearest(ramp, 2, 2).data), [0, 2, 8, 10]);
    assert.deepEqual(Array.from(resizeNearest(grid(3, 1, (x) => x), 2, 1).data), [0, 1]);
  });

  test('bilinear, align_corners=False: halving averages 2x2 blocks', () => {
    assert.deepEqual(Array.from(resizeBilinear(ramp, 2, 2).data), [2.5, 4.5, 10.5, 12.5]);
  });

  test('bilinear upsampling clamps at the edges', () => {
    // dst 0 -> src -0.25 (clamped to 0), dst 1 -> 0.25, dst 2 -> 0.75, dst 3 -> 1.25 (clamped neighbour)
    assert.deepEqual(Array.from(resizeBilinear(grid(2, 1, (x) => x * 4), 4, 1).data), [0, 1, 3, 4]);
  });

  test('bilinear matches tf.image.resizeBilinear with half-pixel centres on an odd size', () => {
    const source = grid(7, 5, (x, y) => Math.sin(x * 1.3 + y * 0.7));
    const ours = resizeBilinear(source, 4, 3);
    const reference = tf.image.resizeBilinear(tf.tensor3d(source.data, [5, 7, 1]), [3, 4], false, true).dataSync();
    ours.data.forEach((v, i) => assert.ok(Math.abs(v - reference[i]!) < 1e-6, `pixel ${i}: ${v} vs ${reference[i]}`));
  });

  test('area averages the source pixels each cell spans, overlapping them when the factor is not whole', () => {
    assert.deepEqual(Array.from(resizeArea(ramp, 2, 2).data), [2.5, 4.5, 10.5, 12.5]);
    assert.deepEqual(Array.from(resizeArea(ramp, 1, 1).data), [7.5]);
    // 3 -> 2: cell 0 spans source [0, 2), cell 1 spans [1, 3) (adaptive average pooling)
    assert.deepEqual(Array.from(resizeArea(grid(3, 1, (x) => [0, 3, 9][x]!), 2, 1).data), [1.5, 6]);
    assert.throws(() => resizeArea(ramp, 0, 2), /mask size must be positive integers/);
  });

  test('flip, union and binarize', () => {
    assert.deepEqual(Array.from(flipHorizontal(grid(3, 2, (x, y) => x + 10 * y)).data), [2, 1, 0, 12, 11, 10]);
    const a = grid(2, 1, (x) => (x === 0 ? 0.2 : 0.9));
    const b = grid(2, 1, (x) => (x === 0 ? 0.7 : 0.1));
    assert.deepEqual(Array.from(unionMask([a, b]).data), [Math.fround(0.7), Math.fround(0.9)]);
    assert.deepEqual(Array.from(binarize(a).data), [0, 1]);
    assert.throws(() => unionMask([]), /no masks/);
    assert.throws(() => unionMask([a, grid(3, 1, () => 1)]), /same size/);
  });
});
