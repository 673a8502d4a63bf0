// Heap guard, batch planning and gradient accumulation (trainer/runtime/memory.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { initRuntime, tf } from '../../../trainer/runtime/backend.ts';
import {
  accumulateGradients,
  guardWasmHeap,
  heapStats,
  measurePeakBytes,
  planBatch,
  splitBatch,
  WASM_HEAP_LIMIT_BYTES,
  WasmHeapExhaustedError,
} from '../../../trainer/runtime/memory.ts';
import type { BackendWasm } from '../../../trainer/runtime/wasm_heap.ts';
import { assertAllClose, randomValues } from './kernel_helpers.ts';

await initRuntime();
const MiB = 2 ** 20;

describe('wasm heap memory', () => {
  test('an allocation beyond the wasm32 limit throws instead of wrapping around', () => {
    assert.equal(tf.getBackend(), 'wasm');
    assert.throws(() => tf.fill([1.2e9], 1), WasmHeapExhaustedError);
    assert.ok(heapStats().limitBytes < WASM_HEAP_LIMIT_BYTES);
  });

  test('live bytes count every tensor allocation once, shared memory once', () => {
    const before = heapStats().liveBytes;
    const a = tf.fill([MiB / 4], 1);
    const b = tf.zeros([MiB / 2]);
    const copy = tf.clone(b);
    const shared = tf.reshape(copy, [2, MiB / 4]);
    assert.equal(heapStats().liveBytes - before, 3 * MiB);
    tf.dispose([a, b, copy, shared]);
    assert.equal(heapStats().liveBytes, before);
  });

  test('a failed malloc throws instead of handing out address 0', () => {
    const fake = { wasm: { _malloc: (bytes: number) => (bytes > 100 ? 0 : 64), _free: (_address: number) => {}, HEAPU8: new Uint8Array(128) } };
    guardWasmHeap(fake as unknown as BackendWasm, { limitBytes: 10_000, reserveBytes: 0 });
    assert.equal(fake.wasm._malloc(10), 64);
    assert.throws(() => fake.wasm._malloc(1000), (error: unknown) => error instanceof WasmHeapExhaustedError && /planBatch/.test(error.message));
  });

  test('allocations stop short of the limit by the reserve, and freed memory is counted back', () => {
    let next = 8;
    const fake = { wasm: { _malloc: (bytes: number) => (next += bytes), _free: (_address: number) => {}, HEAPU8: new Uint8Array(8) } };
    guardWasmHeap(fake as unknown as BackendWasm, { limitBytes: 1000, reserveBytes: 200 });
    const first = fake.wasm._malloc(500);
    assert.throws(() => fake.wasm._malloc(301), WasmHeapExhaustedError);
    fake.wasm._free(first);
    fake.wasm._malloc(800);
  });

  test('addresses past 2 GiB (negative i32 from wasm) are matched with their unsigned frees', () => {
    const high = -1_000_000; // what wasm returns for 0xFFF0BDC0
    const fake = { wasm: { _malloc: (_bytes: number) => high, _free: (_address: number) => {}, HEAPU8: new Uint8Array(8) } };
    guardWasmHeap(fake as unknown as BackendWasm, { limitBytes: 1000, reserveBytes: 0 });
    fake.wasm._malloc(600);
    fake.wasm._free(high >>> 0);
    fake.wasm._malloc(600);
  });

  test('splitBatch makes the fewest, most even passes', () => {
    assert.deepEqual(splitBatch(8, 3), { microBatch: 3, microBatches: [3, 3, 2] });
    assert.deepEqual(splitBatch(7, 2), { microBatch: 2, microBatches: [2, 2, 2, 1] });
    assert.deepEqual(splitBatch(8, 8), { microBatch: 8, microBatches: [8] });
    assert.deepEqual(splitBatch(5, 100), { microBatch: 5, microBatches: [5] });
    assert.deepEqual(splitBatch(9, 4), { microBatch: 3, microBatches: [3, 3, 3] });
  });

  test('measurePeakBytes sees the high-water mark of a step that frees everything, shared memory counted once', async () => {
    const peak = await measurePeakBytes(() => {
      const a = tf.fill([MiB / 4], 1);
      const b = tf.zeros([MiB / 2]);
      const view = tf.reshape(b, [MiB / 4, 2]);
      tf.dispose([a, b, view]);
    });
    assert.equal(peak, 3 * MiB);
  });

  test('planBatch fits the largest micro-batch under the limit', async () => {
    // a step holding 5 MiB plus 10 MiB per sample at its peak
    const trainStep = (batch: number) => {
      const fixed = tf.fill([(5 * MiB) / 4], 1);
      const perSample = tf.fill([(batch * 10 * MiB) / 4], 1);
      tf.dispose([fixed, perSample]);
    };
    const limitBytes = heapStats().liveBytes + 100 * MiB;
    const plan = await planBatch({ batch: 20, trainStep, limitBytes, headroom: 0 });
    assert.equal(plan.bytesPerSample, 10 * MiB);
    assert.equal(plan.fixedBytes, 5 * MiB);
    assert.deepEqual(plan.microBatches, [7, 7, 6]);
    const small = await planBatch({ batch: 4, trainStep, limitBytes, headroom: 0 });
    assert.deepEqual(small.microBatches, [4]);
    await assert.rejects(planBatch({ batch: 2, trainStep, limitBytes: heapStats().liveBytes + 10 * MiB }), /one sample needs/);
  });

  test('accumulated micro-batch gradients equal the full-batch gradient of a mean loss', () => {
    const x = tf.tensor2d(randomValues(8 * 3, 1), [8, 3]);
    const y = tf.tensor2d(randomValues(8, 2), [8, 1]);
    const w = tf.variable(tf.tensor2d(randomValues(3, 3), [3, 1]));
    const gradients = (offset: number, size: number) =>
      tf.variableGrads(() => tf.mean(tf.square(tf.sub(tf.matMul(tf.slice(x, [offset, 0], [size, 3]), w), tf.slice(y, [offset, 0], [size, 1])))) as tf.Scalar, [w]).grads;
    const full = gradients(0, 8);
    const accumulated = accumulateGradients([3, 3, 2], gradients);
    assertAllClose(accumulated[w.name]!, full[w.name]!, 'dW');
    tf.dispose([x, y, w, ...Object.values(full), ...Object.values(accumulated)]);
  });
});
