// The JS kernels that make training work on the plain wasm backend, checked against the tfjs cpu backend.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { initRuntime, tf } from '../../../trainer/runtime/backend.ts';
import { conv2DBackpropFilterWasm, unsortedSegmentSumWasm } from '../../../trainer/runtime/wasm_kernels.ts';
import { type BackendWasm, heapOffset } from '../../../trainer/runtime/wasm_heap.ts';
import { assertAllClose, cpuKernel, randomTensor, wasmKernel } from './kernel_helpers.ts';

const convCases = [
  { name: '3x3 same', x: [2, 7, 6, 5], filter: [3, 3, 5, 4], strides: 1, pad: 'same' },
  { name: '3x3 stride 2, explicit pad 1', x: [2, 9, 8, 3], filter: [3, 3, 3, 6], strides: 2, pad: 1 },
  { name: '1x1', x: [3, 4, 5, 8], filter: [1, 1, 8, 7], strides: 1, pad: 'valid' },
  { name: '3x3 valid, odd sizes', x: [1, 6, 5, 2], filter: [3, 2, 2, 3], strides: [1, 2], pad: 'valid' },
  { name: 'asymmetric explicit padding', x: [2, 5, 5, 3], filter: [3, 3, 3, 2], strides: 1, pad: [[0, 0], [0, 2], [1, 0], [0, 0]] },
] as const;

describe('wasm fallback kernels', () => {
  before(async () => {
    const runtime = await initRuntime();
    assert.equal(runtime.engine, 'wasm', 'kernel tests need the wasm backend');
  });

  for (const c of convCases) {
    test(`Conv2DBackpropFilter ${c.name} matches the cpu backend`, () => {
      const x = randomTensor([...c.x], 1);
      const info = tf.backend_util.computeConv2DInfo(
        [...c.x] as [number, number, number, number],
        [...c.filter] as [number, number, number, number],
        c.strides as number,
        1,
        c.pad as 'same',
      );
      const dy = randomTensor(info.outShape, 2);
      const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', dimRoundingMode: undefined, filterShape: [...c.filter] };
      const expected = cpuKernel('Conv2DBackpropFilter', { x, dy }, attrs);
      const actual = wasmKernel(conv2DBackpropFilterWasm, { x, dy }, attrs);
      assertAllClose(actual, expected, 'dW');
    });
  }

  test('Conv2DBackpropFilter rejects NCHW', () => {
    const x = randomTensor([1, 3, 4, 4], 1);
    const dy = randomTensor([1, 2, 4, 4], 2);
    const attrs = { strides: 1, pad: 'same', dataFormat: 'NCHW', filterShape: [3, 3, 3, 2] };
    assert.throws(() => wasmKernel(conv2DBackpropFilterWasm, { x, dy }, attrs), /NHWC only/);
  });

  test('UnsortedSegmentSum matches the cpu backend, dropping out-of-range ids', () => {
    const x = randomTensor([7, 3, 2], 3);
    const segmentIds = { values: Int32Array.from([2, 0, 2, -1, 4, 1, 9]), shape: [7], dtype: 'int32' as const };
    const attrs = { numSegments: 5 };
    const expected = cpuKernel('UnsortedSegmentSum', { x, segmentIds }, attrs);
    const actual = wasmKernel(unsortedSegmentSumWasm, { x, segmentIds }, attrs);
    assertAllClose(actual, expected, 'segment sum');
  });

  test('UnsortedSegmentSum sums int32 rows', () => {
    const x = { values: Int32Array.from([1, 2, 3, 4, 5, 6]), shape: [3, 2], dtype: 'int32' as const };
    const segmentIds = { values: Int32Array.from([1, 1, 0]), shape: [3], dtype: 'int32' as const };
    const actual = wasmKernel(unsortedSegmentSumWasm, { x, segmentIds }, { numSegments: 2 });
    assert.deepEqual(Array.from(actual.values), [5, 6, 4, 6]);
    assert.deepEqual(actual.shape, [2, 2]);
  });

  test('Identity and same-dtype Cast share memory, and the copy outlives the original', () => {
    const backend = tf.backend() as BackendWasm;
    const x = tf.tensor([1, 2, 3]);
    const copy = tf.clone(x);
    const cast = tf.cast(x, 'float32');
    assert.equal(heapOffset(backend, copy), heapOffset(backend, x));
    assert.equal(heapOffset(backend, cast), heapOffset(backend, x));
    x.dispose();
    assert.deepEqual(Array.from(copy.dataSync()), [1, 2, 3]);
    copy.dispose();
    assert.deepEqual(Array.from(cast.dataSync()), [1, 2, 3]);
    cast.dispose();
    const converted = tf.cast(tf.tensor([1.7, -2.5]), 'int32');
    assert.equal(converted.dtype, 'int32');
    assert.deepEqual(Array.from(converted.dataSync()), [1, -2]);
  });

  test('conv2d weight gradient and embedding-table gradient work through tf.grads on wasm', async () => {
    const xData = randomTensor([2, 6, 6, 3], 4);
    const wData = randomTensor([3, 3, 3, 4], 5);
    const table = randomTensor([10, 4], 6);
    const ids = Int32Array.from([3, 7, 3, 0]);
    const run = () =>
      tf.tidy(() => {
        const x = tf.tensor4d(xData.values, xData.shape as [number, number, number, number]);
        const w = tf.tensor4d(wData.values, wData.shape as [number, number, number, number]);
        const emb = tf.tensor2d(table.values, table.shape as [number, number]);
        const loss = (wv: tf.Tensor, ev: tf.Tensor) => {
          const y = tf.conv2d(x, wv as tf.Tensor4D, 1, 'same');
          const tokens = tf.gather(ev, tf.tensor1d(ids, 'int32'));
          return tf.sum(tf.mul(tf.mean(y, [1, 2]), tf.reshape(tf.slice(tokens, [0, 0], [2, 4]), [2, 4])));
        };
        const [dw, demb] = tf.grads(loss)([w, emb]);
        return [dw!.dataSync() as Float32Array, demb!.dataSync() as Float32Array] as const;
      });
    const [dwWasm, dembWasm] = run();
    const previous = tf.getBackend();
    assert.ok(await tf.setBackend('cpu'));
    try {
      const [dwCpu, dembCpu] = run();
      assertAllClose({ values: dwWasm, shape: [dwWasm.length] }, { values: dwCpu, shape: [dwCpu.length] }, 'dW');
      assertAllClose({ values: dembWasm, shape: [dembWasm.length] }, { values: dembCpu, shape: [dembCpu.length] }, 'dEmbedding');
    } finally {
      assert.ok(await tf.setBackend(previous));
    }
  });
});
