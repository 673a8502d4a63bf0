// AdamW against a float64 transcription of torch.optim.AdamW's update, on both the native kernel and the tf-ops path.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AdamWState, adamwStep } from '../../../trainer/runtime/adamw.ts';
import { initRuntime, tf } from '../../../trainer/runtime/backend.ts';
import { nativeStatus } from '../../../trainer/runtime/native.ts';
import { assertAllClose, randomValues } from './kernel_helpers.ts';

await initRuntime();

const hyper = { learningRate: 0.01, beta1: 0.85, beta2: 0.99, epsilon: 1e-6, weightDecay: 0.1 };

/** torch.optim.AdamW for one tensor, in float64. */
function referenceSteps(initial: Float32Array, gradients: Float32Array[]): Float64Array {
  const p = Float64Array.from(initial);
  const m = new Float64Array(p.length);
  const v = new Float64Array(p.length);
  gradients.forEach((g, index) => {
    const step = index + 1;
    const correction1 = 1 - hyper.beta1 ** step;
    const correction2 = 1 - hyper.beta2 ** step;
    for (let i = 0; i < p.length; i++) {
      p[i]! *= 1 - hyper.learningRate * hyper.weightDecay;
      m[i] = hyper.beta1 * m[i]! + (1 - hyper.beta1) * g[i]!;
      v[i] = hyper.beta2 * v[i]! + (1 - hyper.beta2) * g[i]! * g[i]!;
      p[i]! -= (hyper.learningRate / correction1) * (m[i]! / (Math.sqrt(v[i]!) / Math.sqrt(correction2) + hyper.epsilon));
    }
  });
  return p;
}

const paths = [
  { name: 'native kernel', useNative: true, skip: nativeStatus().active ? false : `native kernels off: ${nativeStatus().reason}` },
  { name: 'tf ops', useNative: false, skip: false },
] as const;

describe('adamwStep', () => {
  for (const path of paths) {
    test(`${path.name}: three steps match torch's AdamW; parameters without gradients stay put`, { skip: path.skip }, () => {
      const sizes = [[5], [3, 7], [40001]];
      const initial = sizes.map((shape, i) => randomValues(tf.util.sizeFromShape(shape), 10 + i));
      const params = sizes.map((shape, i) => tf.variable(tf.tensor(initial[i]!, shape)));
      const frozen = tf.variable(tf.tensor([1, 2, 3]));
      const gradients = sizes.map((shape, i) => [0, 1, 2].map((step) => randomValues(tf.util.sizeFromShape(shape), 100 * i + step)));
      const state = new AdamWState();
      for (let step = 0; step < 3; step++) {
        const grads = tf.tidy(() => sizes.map((shape, i) => tf.keep(tf.tensor(gradients[i]![step]!, shape))));
        adamwStep([...params, frozen], [...grads, null], state, hyper, { useNative: path.useNative });
        tf.dispose(grads);
      }
      params.forEach((param, i) => {
        const expected = Float32Array.from(referenceSteps(initial[i]!, gradients[i]!));
        assertAllClose({ values: param.dataSync() as Float32Array, shape: param.shape }, { values: expected, shape: param.shape }, `param ${i}`, 1e-5);
        assert.equal(state.stepOf(param), 3);
      });
      assert.deepEqual(Array.from(frozen.dataSync()), [1, 2, 3]);
      assert.equal(state.stepOf(frozen), 0);
      state.dispose();
      tf.dispose([...params, frozen]);
    });
  }

  test('a clone of a parameter keeps its value after the step', () => {
    const param = tf.variable(tf.tensor([1, -1]));
    const snapshot = tf.clone(param);
    const state = new AdamWState();
    const grad = tf.tensor([0.5, 0.5]);
    adamwStep([param], [grad], state, hyper);
    assert.deepEqual(Array.from(snapshot.dataSync()), [1, -1]);
    assert.notDeepEqual(Array.from(param.dataSync()), [1, -1]);
    state.dispose();
    tf.dispose([param, snapshot, grad]);
  });

  test('rejects mismatched gradients and invalid hyper-parameters', () => {
    const param = tf.variable(tf.zeros([2]));
    const state = new AdamWState();
    assert.throws(() => adamwStep([param], [tf.zeros([3])], state, hyper), /does not match/);
    assert.throws(() => adamwStep([param], [], state, hyper), /1 parameters but 0 gradients/);
    assert.throws(() => adamwStep([param], [tf.zeros([2])], state, { learningRate: 0.1, beta1: 1 }), /invalid hyper-parameters/);
    state.dispose();
    param.dispose();
  });
});
