// Memory on the wasm backend: every tensor lives in one wasm32 heap that grows up to 4 GiB and never shrinks. This
// module turns heap exhaustion into a clear error (stock tfjs silently writes through a null pointer), reports the
// heap, measures a training step's peak and plans batches: the largest micro-batch that fits, plus how many of them
// to accumulate.
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from './wasm_heap.ts';

/** emscripten's maximum heap for tfjs-backend-wasm (4 GiB minus one 64 KiB page) */
export const WASM_HEAP_LIMIT_BYTES = 4294901760;

export class WasmHeapExhaustedError extends Error {
  constructor(readonly requestedBytes: number, readonly heapBytes: number) {
    super(
      `wasm heap exhausted: cannot allocate ${mib(requestedBytes)} MiB with ${mib(heapBytes)} MiB of the ` +
        `${mib(WASM_HEAP_LIMIT_BYTES)} MiB wasm32 limit in use; use a smaller batch or accumulate gradients ` +
        '(planBatch in trainer/runtime/memory.ts)',
    );
    this.name = 'WasmHeapExhaustedError';
  }
}

function mib(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(0);
}

interface EmscriptenHeap {
  _malloc(bytes: number): number;
  HEAPU8: Uint8Array;
}

const guarded = new WeakSet<object>();

/**
 * Makes a failed allocation on the wasm backend throw WasmHeapExhaustedError instead of returning address 0 (which
 * tfjs would use as the tensor's memory).
 */
export function guardWasmHeap(backend: BackendWasm): void {
  const wasm = backend.wasm as unknown as EmscriptenHeap;
  if (guarded.has(wasm)) return;
  guarded.add(wasm);
  const malloc = wasm._malloc.bind(wasm);
  wasm._malloc = (bytes: number) => {
    // wasm32 malloc takes a 32-bit size: a larger request would wrap around to a small block.
    if (bytes > WASM_HEAP_LIMIT_BYTES) throw new WasmHeapExhaustedError(bytes, wasm.HEAPU8.length);
    const address = malloc(bytes);
    if (address === 0 && bytes > 0) throw new WasmHeapExhaustedError(bytes, wasm.HEAPU8.length);
    return address;
  };
}

export interface HeapStats {
  /** bytes held by live tensors (tf.memory().numBytes) */
  tensorBytes: number;
  /** current size of the wasm heap (0 on other backends); it only grows */
  heapBytes: number;
  /** the most the heap can hold (Infinity off wasm) */
  limitBytes: number;
}

export function heapStats(): HeapStats {
  const onWasm = tf.getBackend() === 'wasm';
  const wasm = onWasm ? ((tf.backend() as BackendWasm).wasm as unknown as EmscriptenHeap) : null;
  return {
    tensorBytes: tf.memory().numBytes,
    heapBytes: wasm ? wasm.HEAPU8.length : 0,
    limitBytes: onWasm ? WASM_HEAP_LIMIT_BYTES : Number.POSITIVE_INFINITY,
  };
}

/**
 * Peak tensor bytes a function adds on top of what is live when it starts (it must free what it allocates). tf.profile
 * samples the total after every kernel, so tensors made without a kernel (tf.tensor, tf.zeros) only count once a
 * kernel runs while they are alive.
 */
export async function measurePeakBytes(fn: () => void): Promise<number> {
  const before = tf.memory().numBytes;
  const profile = await tf.profile(() => {
    fn();
    return [];
  });
  return Math.max(0, profile.peakBytes - before);
}

export interface BatchPlan {
  /** samples per forward/backward pass */
  microBatch: number;
  /** passes whose gradients are summed per optimizer step; their sizes add up to the requested batch */
  microBatches: number[];
  /** measured peak of one pass: fixedBytes + microBatch · bytesPerSample */
  fixedBytes: number;
  bytesPerSample: number;
}

export interface PlanBatchOptions {
  /** the batch the trainer wants per optimizer step */
  batch: number;
  /** one forward + backward (+ optimizer) at the given batch size; it must dispose everything it creates */
  trainStep: (batch: number) => void;
  /** total bytes tensors may use; defaults to the wasm heap limit (no planning needed off wasm) */
  limitBytes?: number;
  /** fraction of the limit kept free for fragmentation and the caller; default 0.15 */
  headroom?: number;
}

/**
 * Measures a training step at batch 1 and 2, models its peak memory as fixed + batch · perSample, and returns the
 * largest micro-batch (≤ the requested batch) that fits the heap, with the gradient-accumulation split.
 */
export async function planBatch(options: PlanBatchOptions): Promise<BatchPlan> {
  const { batch } = options;
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`planBatch: batch must be a positive integer, got ${batch}`);
  const limit = options.limitBytes ?? heapStats().limitBytes;
  if (limit === Number.POSITIVE_INFINITY) return { microBatch: batch, microBatches: [batch], fixedBytes: 0, bytesPerSample: 0 };
  const headroom = options.headroom ?? 0.15;
  const available = limit * (1 - headroom) - tf.memory().numBytes;
  const one = await measurePeakBytes(() => options.trainStep(1));
  if (one > available) {
    throw new Error(`planBatch: one sample needs ${mib(one)} MiB but only ${mib(available)} MiB are available`);
  }
  let two: number | null = null;
  if (batch > 1 && 2 * one <= available) {
    try {
      two = await measurePeakBytes(() => options.trainStep(2));
    } catch (error) {
      if (!(error instanceof WasmHeapExhaustedError)) throw error;
    }
  }
  const bytesPerSample = two === null ? one : Math.max(1, two - one);
  const fixedBytes = Math.max(0, one - bytesPerSample);
  const fits = Math.max(1, Math.floor((available - fixedBytes) / bytesPerSample));
  return { ...splitBatch(batch, fits), fixedBytes, bytesPerSample };
}

/** Splits a batch into the fewest passes of at most `maxMicroBatch` samples, as even as possible. */
export function splitBatch(batch: number, maxMicroBatch: number): { microBatch: number; microBatches: number[] } {
  const passes = Math.ceil(batch / Math.max(1, Math.min(batch, maxMicroBatch)));
  const microBatch = Math.ceil(batch / passes);
  const microBatches = Array.from({ length: passes }, (_, i) => Math.min(microBatch, batch - i * microBatch)).filter((n) => n > 0);
  return { microBatch, microBatches };
}

/**
 * Gradient accumulation: runs `computeGradients(offset, size)` for each micro-batch and returns the sum of the
 * gradients weighted by size / total (the gradient of a batch-mean loss over the whole batch). Intermediate tensors
 * are freed as it goes; the caller owns the result.
 */
export function accumulateGradients(
  microBatches: number[],
  computeGradients: (offset: number, size: number) => Record<string, tf.Tensor | null>,
): Record<string, tf.Tensor> {
  const total = microBatches.reduce((a, b) => a + b, 0);
  const sums: Record<string, tf.Tensor> = {};
  let offset = 0;
  for (const size of microBatches) {
    const grads = computeGradients(offset, size);
    for (const [name, grad] of Object.entries(grads)) {
      if (!grad) continue;
      const weighted = tf.tidy(() => tf.mul(grad, size / total));
      grad.dispose();
      const previous = sums[name];
      sums[name] = previous ? tf.tidy(() => tf.add(previous, weighted)) : weighted;
      if (previous) tf.dispose([previous, weighted]);
    }
    offset += size;
  }
  return sums;
}
