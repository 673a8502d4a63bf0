// Native fused kernels against the composite tf reference (trainer/nn/functional.ts compositeOps): values and
// gradients of every input, on shapes that exercise tails, broadcasting and the multi-threaded paths.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { initRuntime, tf } from '../../../trainer/runtime/backend.ts';
import { fusedAttention, fusedGelu, fusedGroupNorm, fusedLayerNorm, fusedOpsActive, fusedSilu, fusedSoftmax } from '../../../trainer/runtime/fused.ts';
import { maskStrides } from '../../../trainer/runtime/fused_kernels.ts';
import { nativeStatus } from '../../../trainer/runtime/native.ts';
import { compositeOps, scaledDotProductAttention } from '../../../trainer/nn/functional.ts';
import { assertAllClose, randomValues } from './kernel_helpers.ts';

await initRuntime();
const skip = nativeStatus().active ? false : `native kernels off: ${nativeStatus().reason}`;

let seed = 100;
function random(shape: number[], scale = 1): tf.Tensor {
  return tf.mul(tf.tensor(randomValues(tf.util.sizeFromShape(shape), seed++), shape), scale);
}

/**
 * Checks f against reference on the given inputs: values, and the gradients of Σ f(inputs)·w (random w) with respect
 * to every input.
 */
function compare(what: string, fused: (...x: tf.Tensor[]) => tf.Tensor, reference: (...x: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], rtol = 2e-5) {
  tf.tidy(() => {
    const expected = reference(...inputs);
    const actual = fused(...inputs);
    assertAllClose(actual, expected, `${what} value`, rtol);
    const weights = random(expected.shape);
    const loss = (f: (...x: tf.Tensor[]) => tf.Tensor) => (...x: tf.Tensor[]) => tf.sum(tf.mul(f(...x), weights));
    const expectedGrads = tf.grads(loss(reference))(inputs);
    const actualGrads = tf.grads(loss(fused))(inputs);
    expectedGrads.forEach((g, i) => assertAllClose(actualGrads[i]!, g, `${what} gradient ${i}`, rtol));
  });
}

describe('fused kernels match the composite reference', { skip }, () => {
  test('fused ops are active on the wasm backend', () => {
    assert.ok(fusedOpsActive(tf.zeros([1])));
    assert.equal(fusedOpsActive(tf.zeros([1], 'int32')), false);
    assert.equal(fusedOpsActive(tf.zeros([2, 0])), false);
  });

  for (const shape of [[7], [3, 5, 33], [40001]]) {
    test(`silu and gelu ${JSON.stringify(shape)}`, () => {
      const x = random(shape, 4);
      compare('silu', fusedSilu, compositeOps.silu, [x]);
      compare('gelu', fusedGelu, compositeOps.gelu, [x]);
    });
  }

  test('silu and gelu at extreme inputs', () => {
    const x = tf.tensor([-1e4, -120, -88, -20, -5.5, 0, 1e-30, 5.5, 20, 88, 120, 1e4]);
    assertAllClose(fusedSilu(x), compositeOps.silu(x), 'silu');
    assertAllClose(fusedGelu(x), compositeOps.gelu(x), 'gelu');
  });

  for (const shape of [[4, 7], [2, 3, 77], [64, 1030]]) {
    test(`softmax ${JSON.stringify(shape)} with large logits`, () => {
      compare('softmax', fusedSoftmax, compositeOps.softmax, [random(shape, 30)]);
    });
  }

  for (const [shape, groups] of [[[2, 5, 6, 8], 4], [[1, 16, 16, 64], 32], [[3, 9, 7, 12], 1]] as const) {
    test(`groupNorm ${JSON.stringify(shape)} in ${groups} groups`, () => {
      const channels = shape[3];
      const x = tf.add(random([...shape], 3), 1.5);
      const gamma = tf.add(random([channels]), 1);
      const beta = random([channels]);
      compare(
        'groupNorm',
        (a, g, b) => fusedGroupNorm(a as tf.Tensor4D, groups, g!, b!, 1e-5),
        (a, g, b) => compositeOps.groupNorm(a as tf.Tensor4D, groups, g!, b!, 1e-5),
        [x, gamma, beta],
      );
    });
  }

  for (const shape of [[3, 7, 16], [2, 300, 64], [5, 320]]) {
    test(`layerNorm ${JSON.stringify(shape)}`, () => {
      const channels = shape[shape.length - 1]!;
      const x = tf.add(random(shape, 2), 0.5);
      const gamma = tf.add(random([channels]), 1);
      const beta = random([channels]);
      compare('layerNorm', (a, g, b) => fusedLayerNorm(a!, g!, b!, 1e-5), (a, g, b) => compositeOps.layerNorm(a!, g!, b!, 1e-5), [x, gamma, beta]);
    });
  }

  const attentionShapes = [
    { batch: 2, heads: 2, queries: 5, keys: 7, dim: 4 },
    { batch: 1, heads: 3, queries: 33, keys: 77, dim: 8 },
    { batch: 2, heads: 8, queries: 64, keys: 64, dim: 16 },
  ];
  for (const s of attentionShapes) {
    const name = `${s.batch}x${s.heads}x${s.queries}x${s.keys}x${s.dim}`;
    const q = () => random([s.batch, s.heads, s.queries, s.dim]) as tf.Tensor4D;
    const kv = () => random([s.batch, s.heads, s.keys, s.dim]) as tf.Tensor4D;
    const scale = s.dim ** -0.5;
    const output = (withFused: boolean, mask?: tf.Tensor) => (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
      (withFused ? fusedAttention : compositeOps.scaledDotProductAttention)(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D, { scale, logitMask: mask }).output;

    test(`attention ${name}`, () => {
      compare('attention', output(true), output(false), [q(), kv(), kv()]);
    });

    test(`attention ${name} with broadcast logit masks`, () => {
      const keyMask = tf.tidy(() => tf.mul(tf.cast(tf.greater(random([s.batch, 1, 1, s.keys]), 0.3), 'float32'), -1e9));
      const gridMask = tf.tidy(() => tf.mul(random([s.queries, s.keys]), 3));
      const fullMask = random([s.batch, s.heads, s.queries, s.keys], 2);
      for (const mask of [keyMask, gridMask, fullMask]) {
        compare(`attention mask [${mask.shape}]`, output(true, mask), output(false, mask), [q(), kv(), kv()]);
      }
    });

    test(`attention ${name}: probabilities and the gradients that flow through them`, () => {
      const mask = random([1, s.heads, 1, s.keys]);
      const both = (withFused: boolean) => (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, m: tf.Tensor) => {
        const f = withFused ? fusedAttention : compositeOps.scaledDotProductAttention;
        const { output: o, probs } = f(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D, { scale, logitMask: m, returnProbs: true });
        // one tensor carrying both outputs, so the loss sends gradients into each
        return tf.concat([tf.reshape(o, [-1]), tf.reshape(probs!, [-1])]);
      };
      compare('attention output+probs, incl. mask gradient', both(true), both(false), [q(), kv(), kv(), mask]);
    });
  }

  test('functional.scaledDotProductAttention dispatches to the fused kernel; probs [B,H,N,M] outlive the enclosing tidy', () => {
    const q = random([1, 2, 6, 4]) as tf.Tensor4D;
    const k = random([1, 2, 9, 4]) as tf.Tensor4D;
    let probs: tf.Tensor4D | undefined;
    const output = tf.tidy(() => {
      const result = scaledDotProductAttention(q, k, k, { scale: 0.5, returnProbs: true });
      probs = result.probs;
      return result.output;
    });
    assert.deepEqual(output.shape, [1, 2, 6, 4]);
    assert.ok(probs && !probs.isDisposed, 'the caller owns the probabilities');
    assert.deepEqual(probs.shape, [1, 2, 6, 9]);
    assertAllClose(tf.sum(probs, -1), tf.ones([1, 2, 6]), 'rows sum to 1');
    const reference = compositeOps.scaledDotProductAttention(q, k, k, { scale: 0.5, returnProbs: true });
    assertAllClose(probs, reference.probs!, 'probs');
    tf.dispose([output, probs, reference.output, reference.probs!, q, k]);
  });

  test('mask strides broadcast over every axis and reject shapes that do not broadcast', () => {
    assert.deepEqual(maskStrides([2, 1, 1, 7], [2, 3, 5, 7]), [7, 0, 0, 1]);
    assert.deepEqual(maskStrides([5, 7], [2, 3, 5, 7]), [0, 0, 7, 1]);
    assert.deepEqual(maskStrides([], [2, 3, 5, 7]), [0, 0, 0, 0]);
    assert.throws(() => maskStrides([4, 7], [2, 3, 5, 7]), /does not broadcast/);
  });
});
