// The mifo_native addon (native/, built by `npm ci` through scripts/build-native.mjs): OpenBLAS GEMM and convolutions,
// copies and reductions the stock kernels do slowly, and the fused kernels of fused_kernels.ts, all registered into the
// tfjs wasm backend. They work in place on the wasm heap (inputs read, outputs allocated by the backend, no copies).
// Unsupported cases fall back to the kernel that was registered before. MIFO_NATIVE=0 keeps the addon unloaded;
// MIFO_THREADS sets its thread count (default: every core). See docs/performance.md.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { registerFusedKernels } from './fused_kernels.ts';
import { type BackendWasm, heapBuffer, heapOffset, type TensorInfo } from './wasm_heap.ts';

/** Functions exported by native/src/addon.cc; heap = the wasm heap ArrayBuffer, tensors by byte offset. */
export interface NativeAddon {
  gemm(heap: ArrayBuffer, batch: number, transA: number, transB: number, M: number, N: number, K: number,
    a: number, strideA: number, b: number, strideB: number, c: number): void;
  conv2dForward(heap: ArrayBuffer, ...geometryAndTensors: number[]): void;
  conv2dBackpropInput(heap: ArrayBuffer, ...geometryAndTensors: number[]): void;
  conv2dBackpropFilter(heap: ArrayBuffer, ...geometryAndTensors: number[]): void;
  silu(heap: ArrayBuffer, x: number, y: number, n: number): void;
  siluGrad(heap: ArrayBuffer, dy: number, x: number, dx: number, n: number): void;
  gelu(heap: ArrayBuffer, x: number, y: number, n: number): void;
  geluGrad(heap: ArrayBuffer, dy: number, x: number, dx: number, n: number): void;
  softmax(heap: ArrayBuffer, x: number, y: number, rows: number, cols: number): void;
  softmaxGrad(heap: ArrayBuffer, dy: number, y: number, dx: number, rows: number, cols: number): void;
  groupNorm(heap: ArrayBuffer, x: number, gamma: number, beta: number, y: number, mean: number, rstd: number,
    batch: number, pixels: number, channels: number, groups: number, eps: number): void;
  groupNormGrad(heap: ArrayBuffer, dy: number, x: number, gamma: number, mean: number, rstd: number, dx: number,
    dgamma: number, dbeta: number, batch: number, pixels: number, channels: number, groups: number): void;
  layerNorm(heap: ArrayBuffer, x: number, gamma: number, beta: number, y: number, mean: number, rstd: number,
    rows: number, cols: number, eps: number): void;
  layerNormGrad(heap: ArrayBuffer, dy: number, x: number, gamma: number, mean: number, rstd: number, dx: number,
    dgamma: number, dbeta: number, rows: number, cols: number): void;
  unsortedSegmentSum(heap: ArrayBuffer, x: number, ids: number, out: number, rows: number, rowSize: number, segments: number): void;
  adamw(heap: ArrayBuffer, param: number, grad: number, m: number, v: number, paramOut: number, mOut: number, vOut: number,
    n: number, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void;
  /** mask -1 = none; ms0..ms3 its strides over [batch, heads, queries, keys]; probs -1 = not wanted */
  attention(heap: ArrayBuffer, batch: number, heads: number, queries: number, keys: number, headDim: number, scale: number,
    q: number, k: number, v: number, mask: number, ms0: number, ms1: number, ms2: number, ms3: number,
    out: number, lse: number, probs: number): void;
  attentionGrad(heap: ArrayBuffer, batch: number, heads: number, queries: number, keys: number, headDim: number, scale: number,
    q: number, k: number, v: number, mask: number, ms0: number, ms1: number, ms2: number, ms3: number,
    lse: number, probs: number, dout: number, dprobs: number, dq: number, dk: number, dv: number): void;
  /** 4-byte elements; strides in elements; offsets include the column offset */
  copyColumns(heap: ArrayBuffer, src: number, srcStride: number, dst: number, dstStride: number, rows: number, cols: number): void;
  sumMiddle(heap: ArrayBuffer, x: number, out: number, outer: number, middle: number, inner: number): void;
  info(): { threads: number; blasCore: string };
}

export interface NativeStatus {
  active: boolean;
  /** why the addon is not active */
  reason?: string;
  threads?: number;
  blasCore?: string;
}

export const nativeAddonPath = fileURLToPath(new URL('../../native/build/Release/mifo_native.node', import.meta.url));

let addon: NativeAddon | null = null;
let status: NativeStatus | null = null;
const replaced = new Map<string, tf.KernelFunc>();

export function nativeStatus(): NativeStatus {
  return status ?? { active: false, reason: 'the runtime has not been initialised' };
}

export function nativeAddon(): NativeAddon | null {
  return addon;
}

/** The wasm kernel a native kernel replaced (the stock one or our JS fallback), for fallbacks and tests. */
export function replacedWasmKernel(kernelName: string): tf.KernelFunc | undefined {
  return replaced.get(kernelName);
}

/** Loads the addon and registers its kernels for the wasm backend; safe to call more than once. */
export function enableNativeKernels(): NativeStatus {
  status ??= loadAndRegister();
  return status;
}

function loadAndRegister(): NativeStatus {
  if (process.env.MIFO_NATIVE === '0') return { active: false, reason: 'disabled by MIFO_NATIVE=0' };
  if (!existsSync(nativeAddonPath)) {
    return { active: false, reason: 'native/build/Release/mifo_native.node is not built (node scripts/build-native.mjs)' };
  }
  try {
    addon = createRequire(import.meta.url)(nativeAddonPath) as NativeAddon;
  } catch (error) {
    return { active: false, reason: `mifo_native.node failed to load: ${(error as Error).message.split('\n')[0]}` };
  }
  registerNativeKernels(addon);
  const info = addon.info();
  return { active: true, threads: info.threads, blasCore: info.blasCore };
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: any };

function override(kernelName: string, make: (fallback: tf.KernelFunc) => (args: KernelArgs) => TensorInfo | TensorInfo[]): void {
  const previous = tf.getKernel(kernelName, 'wasm');
  const fallback: tf.KernelFunc =
    previous?.kernelFunc ??
    (() => {
      throw new Error(`${kernelName}: this case is not supported by the native kernel and the wasm backend has none`);
    });
  if (previous) tf.unregisterKernel(kernelName, 'wasm');
  replaced.set(kernelName, fallback);
  // The stock kernel's setup (its wasm function bindings) must still run at backend start-up for the fallback to work.
  tf.registerKernel({
    kernelName,
    backendName: 'wasm',
    kernelFunc: make(fallback) as unknown as tf.KernelFunc,
    setupFunc: previous?.setupFunc,
    disposeFunc: previous?.disposeFunc,
  });
}

function input(inputs: tf.NamedTensorInfoMap, name: string): TensorInfo {
  const info = inputs[name];
  if (!info) throw new Error(`missing input '${name}'`);
  return info;
}

const size = (shape: number[]) => tf.util.sizeFromShape(shape);

function registerNativeKernels(native: NativeAddon): void {
  override('BatchMatMul', (fallback) => (args) => {
    const { backend, attrs } = args;
    const a = input(args.inputs, 'a');
    const b = input(args.inputs, 'b');
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return fallback(args);
    const transposeA = Boolean(attrs.transposeA);
    const transposeB = Boolean(attrs.transposeB);
    const ra = a.shape.length;
    const rb = b.shape.length;
    const M = transposeA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
    const K = transposeA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
    const kB = transposeB ? b.shape[rb - 1]! : b.shape[rb - 2]!;
    const N = transposeB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
    const outerA = a.shape.slice(0, -2);
    const outerB = b.shape.slice(0, -2);
    // The stock kernel raises tfjs's own errors for mismatched or non-broadcastable shapes.
    if (K !== kB || M * N * K === 0) return fallback(args);
    const outer = tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
    const batch = size(outer);
    const batchA = size(outerA);
    const batchB = size(outerB);
    // Strided batches only: each operand is either full-batch (same linear order as the output) or a single matrix.
    if ((batchA !== batch && batchA !== 1) || (batchB !== batch && batchB !== 1)) return fallback(args);
    const out = backend.makeOutput([...outer, M, N], 'float32');
    native.gemm(
      heapBuffer(backend), batch, transposeA ? 1 : 0, transposeB ? 1 : 0, M, N, K,
      heapOffset(backend, a), batchA === 1 ? 0 : M * K, heapOffset(backend, b), batchB === 1 ? 0 : K * N,
      heapOffset(backend, out),
    );
    return out;
  });

  override('Conv2D', (fallback) => (args) => {
    const { backend, attrs } = args;
    const x = input(args.inputs, 'x');
    const filter = input(args.inputs, 'filter');
    if (attrs.dataFormat === 'NCHW' || x.dtype !== 'float32' || filter.dtype !== 'float32') return fallback(args);
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number], filter.shape as [number, number, number, number],
      attrs.strides, attrs.dilations, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast',
    );
    if (size(info.outShape) === 0) return fallback(args);
    const y = backend.makeOutput(info.outShape, 'float32');
    native.conv2dForward(heapBuffer(backend), ...geometry(info), heapOffset(backend, x), heapOffset(backend, filter), heapOffset(backend, y));
    return y;
  });

  override('Conv2DBackpropInput', (fallback) => (args) => {
    const { backend, attrs } = args;
    const dy = input(args.inputs, 'dy');
    const filter = input(args.inputs, 'filter');
    if (attrs.dataFormat === 'NCHW' || dy.dtype !== 'float32' || filter.dtype !== 'float32') return fallback(args);
    const info = tf.backend_util.computeConv2DInfo(
      attrs.inputShape, filter.shape as [number, number, number, number],
      attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast',
    );
    if (size(info.inShape) === 0 || size(info.outShape) === 0) return fallback(args);
    const dx = backend.makeOutput([...attrs.inputShape], 'float32');
    native.conv2dBackpropInput(heapBuffer(backend), ...geometry(info), heapOffset(backend, dy), heapOffset(backend, filter), heapOffset(backend, dx));
    return dx;
  });

  override('Conv2DBackpropFilter', (fallback) => (args) => {
    const { backend, attrs } = args;
    const x = input(args.inputs, 'x');
    const dy = input(args.inputs, 'dy');
    if (attrs.dataFormat === 'NCHW' || x.dtype !== 'float32' || dy.dtype !== 'float32') return fallback(args);
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number], attrs.filterShape,
      attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast',
    );
    if (size(info.inShape) === 0 || size(info.outShape) === 0) return fallback(args);
    const dw = backend.makeOutput([...attrs.filterShape], 'float32');
    native.conv2dBackpropFilter(heapBuffer(backend), ...geometry(info), heapOffset(backend, x), heapOffset(backend, dy), heapOffset(backend, dw));
    return dw;
  });

  override('UnsortedSegmentSum', (fallback) => (args) => {
    const { backend, attrs } = args;
    const x = input(args.inputs, 'x');
    const ids = input(args.inputs, 'segmentIds');
    const prefix = ids.shape.length <= x.shape.length && ids.shape.every((d, i) => d === x.shape[i]);
    if (x.dtype !== 'float32' || ids.dtype !== 'int32' || !prefix || !Number.isInteger(attrs.numSegments) || attrs.numSegments < 0) {
      return fallback(args);
    }
    const rowShape = x.shape.slice(ids.shape.length);
    const out = backend.makeOutput([attrs.numSegments, ...rowShape], 'float32');
    if (size(out.shape) > 0) {
      native.unsortedSegmentSum(
        heapBuffer(backend), heapOffset(backend, x), heapOffset(backend, ids), heapOffset(backend, out),
        size(ids.shape), size(rowShape), attrs.numSegments,
      );
    }
    return out;
  });

  // Concat and SplitV along any axis copy column blocks between [rows, cols] views of the tensors.
  const copyable = (dtype: string) => dtype === 'float32' || dtype === 'int32';
  override('Concat', (fallback) => (args) => {
    const { backend, attrs } = args;
    const inputs = Object.values(args.inputs) as TensorInfo[];
    const first = inputs[0];
    if (!first || !copyable(first.dtype) || inputs.some((t) => t.dtype !== first.dtype)) return fallback(args);
    const axis = tf.util.parseAxisParam(attrs.axis, first.shape)[0]!;
    tf.backend_util.assertParamsConsistent(inputs.map((t) => t.shape), axis);
    const outShape = tf.backend_util.computeOutShape(inputs.map((t) => t.shape), axis);
    const rows = size(outShape.slice(0, axis));
    const outCols = size(outShape.slice(axis));
    const out = backend.makeOutput(outShape, first.dtype);
    if (rows * outCols === 0) return out;
    const heap = heapBuffer(backend);
    let column = 0;
    for (const t of inputs) {
      const cols = size(t.shape.slice(axis));
      if (cols > 0) native.copyColumns(heap, heapOffset(backend, t), cols, heapOffset(backend, out) + 4 * column, outCols, rows, cols);
      column += cols;
    }
    return out;
  });

  override('SplitV', (fallback) => (args) => {
    const { backend, attrs } = args;
    const x = input(args.inputs, 'x');
    if (!copyable(x.dtype)) return fallback(args);
    const axis = tf.util.parseAxisParam(attrs.axis, x.shape)[0]!;
    const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, attrs.numOrSizeSplits, axis);
    const rows = size(x.shape.slice(0, axis));
    const inner = size(x.shape.slice(axis + 1));
    const outputs = sizes.map((extent) => backend.makeOutput(x.shape.map((d, i) => (i === axis ? extent : d)), x.dtype));
    const heap = heapBuffer(backend);
    const srcCols = x.shape[axis]! * inner;
    let column = 0;
    outputs.forEach((out, i) => {
      const cols = sizes[i]! * inner;
      if (rows * cols > 0) native.copyColumns(heap, heapOffset(backend, x) + 4 * column, srcCols, heapOffset(backend, out), cols, rows, cols);
      column += cols;
    });
    return outputs;
  });

  // Sums over one contiguous run of axes: out[o, i] = Σ_m x[o, m, i].
  override('Sum', (fallback) => (args) => {
    const { backend, attrs } = args;
    const x = input(args.inputs, 'x');
    const axes = tf.util.parseAxisParam(attrs.axis, x.shape).sort((a, b) => a - b);
    const contiguous = axes.every((a, i) => i === 0 || a === axes[i - 1]! + 1);
    if (x.dtype !== 'float32' || axes.length === 0 || !contiguous || size(x.shape) === 0) return fallback(args);
    const firstAxis = axes[0]!;
    const lastAxis = axes[axes.length - 1]!;
    const kept = x.shape.filter((_, i) => i < firstAxis || i > lastAxis);
    const outShape = attrs.keepDims ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : kept;
    const out = backend.makeOutput(outShape, 'float32');
    native.sumMiddle(
      heapBuffer(backend), heapOffset(backend, x), heapOffset(backend, out),
      size(x.shape.slice(0, firstAxis)), size(x.shape.slice(firstAxis, lastAxis + 1)), size(x.shape.slice(lastAxis + 1)),
    );
    return out;
  });

  registerFusedKernels(native);
}

/** The 15 integers of native ConvGeometry, in its field order. */
function geometry(info: tf.backend_util.Conv2DInfo): number[] {
  return [
    info.batchSize, info.inHeight, info.inWidth, info.inChannels,
    info.filterHeight, info.filterWidth, info.outChannels,
    info.outHeight, info.outWidth, info.strideHeight, info.strideWidth,
    info.padInfo.top, info.padInfo.left, info.dilationHeight, info.dilationWidth,
  ];
}
