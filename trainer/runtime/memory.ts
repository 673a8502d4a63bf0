// Memory on the wasm backend: every tensor lives in one wasm32 heap that grows up to 4 GiB and never shrinks. This
// module turns heap exhaustion into a clear error (stock tfjs silently writes through a null pointer or aborts the
// module), counts live tensor memory, measures a training step's peak and plans batches: the largest micro-batch
// that fits, plus how many of them to accumulate.
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from './wasm_heap.ts';

/** emscripten's maximum heap for tfjs-backend-wasm (4 GiB minus one 64 KiB page) */
export const WASM_HEAP_LIMIT_BYTES = 4294901760;

export class WasmHeapExhaustedError extends Error {
  constructor(
    readonly requestedBytes: number,
    readonly liveBytes: number,
    readonly limitBytes: number,
  ) {
    super(
      `wasm heap exhausted: cannot allocate ${mib(requestedBytes)} MiB with ${mib(liveBytes)} MiB of tensors live ` +
        `(usable limit ${mib(limitBytes)} MiB of the 4 GiB wasm32 heap); use a smaller batch or accumulate gradients ` +
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
  _free(address: number): void;
  HEAPU8: Uint8Array;
}

/** Bytes kept free for the backend's own C++ allocations, which abort the whole wasm module when they fail. */
export const DEFAULT_RESERVE_BYTES = 64 * 2 ** 20;

/** Live bytes of the tensor allocations made from JS (all tfjs tensors), counted once however many tensors share them. */
class HeapTracker {
  private readonly sizes = new Map<number, number>();
  live = 0;
  peak = 0;

  constructor(
    readonly limitBytes: number,
    readonly reserveBytes: number,
  ) {}

  allocated(address: number, bytes: number): void {
    this.sizes.set(address, bytes);
    this.live += bytes;
    this.peak = Math.max(this.peak, this.live);
  }

  freed(address: number): void {
    const bytes = this.sizes.get(address);
    if (bytes === undefined) return;
    this.sizes.delete(address);
    this.live -= bytes;
  }
}

const trackers = new WeakMap<object, HeapTracker>();

function trackerOf(backend: BackendWasm): HeapTracker | undefined {
  return trackers.get(backend.wasm as unknown as object);
}

/**
 * Guards tensor allocations on the wasm backend: a request that does not fit below the limit minus a reserve throws
 * WasmHeapExhaustedError. Stock tfjs would otherwise use address 0 (malloc's failure value) as the tensor's memory,
 * wrap requests over 4 GiB around to small blocks, or let the backend's own allocations fail later and abort the
 * module. Also counts live and peak bytes for measurePeakBytes.
 */
export function guardWasmHeap(backend: BackendWasm, options: { limitBytes?: number; reserveBytes?: number } = {}): void {
  const wasm = backend.wasm as unknown as EmscriptenHeap;
  if (trackers.has(wasm)) return;
  const tracker = new HeapTracker(options.limitBytes ?? WASM_HEAP_LIMIT_BYTES, options.reserveBytes ?? DEFAULT_RESERVE_BYTES);
  trackers.set(wasm, tracker);
  // emscripten exports start as stubs that replace themselves with the raw wasm function on their first call, which
  // would also replace a wrapper installed before that; one call first makes the wrappers stick.
  wasm._free(wasm._malloc(8));
  const malloc = wasm._malloc.bind(wasm);
  const free = wasm._free.bind(wasm);
  wasm._malloc = (bytes: number) => {
    const usable = tracker.limitBytes - tracker.reserveBytes;
    if (tracker.live + bytes > usable) throw new WasmHeapExhaustedError(bytes, tracker.live, usable);
    const address = malloc(bytes);
    if (address === 0 && bytes > 0) throw new WasmHeapExhaustedError(bytes, tracker.live, usable);
    // wasm returns addresses as signed i32 (negative past 2 GiB); callers pass them back unsigned
    tracker.allocated(address >>> 0, bytes);
    return address;
  };
  wasm._free = (address: number) => {
    tracker.freed(address >>> 0);
    free(address);
  };
}

export interface HeapStats {
  /** bytes of live tensor memory (shared memory counted once; tf.memory().numBytes counts it per tensor) */
  liveBytes: number;
  /** current size of the wasm heap (0 on other backends); it only grows */
  heapBytes: number;
  /** the most tensors may use (Infinity off wasm) */
  limitBytes: number;
}

export function heapStats(): HeapStats {
  const tracker = tf.getBackend() === 'wasm' ? trackerOf(tf.backend() as BackendWasm) : undefined;
  const wasm = tracker ? ((tf.backend() as BackendWasm).wasm as unknown as EmscriptenHeap) : null;
  return {
    liveBytes: tracker ? tracker.live : tf.memory().numBytes,
    heapBytes: wasm ? wasm.HEAPU8.length : 0,
    limitBytes: tracker ? tracker.limitBytes - tracker.reserveBytes : Number.POSITIVE_INFINITY,
  };
}

/**
 * Peak bytes a function adds on top of what is live when it starts (it must free what it allocates). On the wasm
 * backend this counts real allocations; elsewhere it falls back to tf.profile, which counts memory shared by several
 * tensors once per tensor.
 */
export async function measurePeakBytes(fn: () => void): Promise<number> {
  const tracker = tf.getBackend() === 'wasm' ? trackerOf(tf.backend() as BackendWasm) : undefined;
  if (tracker) {
    const before = tracker.live;
    tracker.peak = before;
    fn();
    return tracker.peak - before;
  }
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
  /** total bytes tensors may use; defaults to the wasm heap limit less its reserve (no planning needed off wasm) */
  limitBytes?: number;
  /** fraction of the limit kept free for fragmentation and the caller; default 0.1 */
  headroom?: number;
}

/**
 * Measures a training step at batch 1 and 2, models its peak memory as fixed + batch · perSample, and returns the
 * largest micro-batch (≤ the requested batch) that fits the heap, with the gradient-accumulation split.
 */
export async function planBatch(options: PlanBatchOptions): Promise<BatchPlan> {
  const { batch } = options;
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`planBatch: batch must be a positive integer, got ${batch}`);
  const stats = heapStats();
  const limit = options.limitBytes ?? stats.limitBytes;
  if (limit === Number.POSITIVE_INFINITY) return { microBatch: batch, microBatches: [batch], fixedBytes: 0, bytesPerSample: 0 };
  const headroom = options.headroom ?? 0.1;
  const available = limit * (1 - headroom) - stats.liveBytes;
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
      // a single pass is the whole batch: its gradients need no weighting (and a training step no extra kernels)
      const weighted = size === total ? grad : tf.tidy(() => tf.mul(grad, size / total));
      if (weighted !== grad) grad.dispose();
      const previous = sums[name];
      sums[name] = previous ? tf.tidy(() => tf.add(previous, weighted)) : weighted;
      if (previous) tf.dispose([previous, weighted]);
    }
    offset += size;
  }
  return sums;
}
