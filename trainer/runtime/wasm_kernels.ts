// JS kernels for the tfjs wasm backend, needed with or without the native addon:
// - the two the stock backend lacks and training needs: Conv2DBackpropFilter (every conv weight gradient) and
//   UnsortedSegmentSum (the gradient of gather, i.e. of an embedding table), as JS on wasm-heap views plus the
//   backend's own matmul/transpose kernels; the native addon replaces them when it loads;
// - Identity and same-dtype Cast that share the input's memory (reference counted, as the cpu backend and the wasm
//   Reshape kernel do) instead of copying it. Autodiff clones every tensor it saves for the backward pass, so copies
//   cost ~10% of a training step. Sharing is safe because no kernel writes into its inputs.
import * as tf from '@tensorflow/tfjs';
import {
  allocate,
  type BackendWasm,
  f32View,
  heapBuffer,
  heapOffset,
  i32View,
  release,
  reshapeInfo,
  runWasmKernel,
  type TensorInfo,
} from './wasm_heap.ts';

interface Conv2DBackpropFilterAttrs {
  strides: number | [number, number];
  pad: 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
  dataFormat?: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape: [number, number, number, number];
}

/**
 * dW[kh,kw] = Σ_{n,oh,ow} x[n, oh·sh−pt+kh, ow·sw−pl+kw, :]ᵀ · dy[n,oh,ow,:], one matmul per filter tap.
 * Each tap gathers the shifted input rows [P, Ci] (P = N·OH·OW) and multiplies dyᵀ [Co, P] by them; the wasm matmul
 * is fast only without transposes, hence dyᵀ up front and one transpose of the [taps, Co, Ci] result at the end.
 * Peak extra memory is one tap (P·Ci floats), not a whole im2col matrix.
 */
export function conv2DBackpropFilterWasm(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: BackendWasm;
  attrs: Conv2DBackpropFilterAttrs;
}): TensorInfo {
  const { backend, attrs } = args;
  const x = requireInput(args.inputs, 'x', 'Conv2DBackpropFilter');
  const dy = requireInput(args.inputs, 'dy', 'Conv2DBackpropFilter');
  if (attrs.dataFormat === 'NCHW') throw new Error('Conv2DBackpropFilter on wasm supports NHWC only');
  if (x.dtype !== 'float32' || dy.dtype !== 'float32') throw new Error('Conv2DBackpropFilter on wasm supports float32 only');
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterShape,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  const { batchSize, inChannels, outHeight, outWidth, outChannels, filterHeight, filterWidth } = info;
  const rows = batchSize * outHeight * outWidth;
  const taps = filterHeight * filterWidth;

  const dyRows = reshapeInfo(backend, dy, [rows, outChannels]);
  const dyT = runWasmKernel(backend, 'Transpose', { x: dyRows }, { perm: [1, 0] });
  release(backend, dyRows);
  const perTap = allocate(backend, [taps, outChannels, inChannels]);
  for (let kh = 0; kh < filterHeight; kh++) {
    for (let kw = 0; kw < filterWidth; kw++) {
      const shifted = allocate(backend, [rows, inChannels]);
      gatherTap(backend, x, shifted, info, kh, kw);
      const product = runWasmKernel(backend, 'BatchMatMul', { a: dyT, b: shifted }, { transposeA: false, transposeB: false });
      const tapBlock = outChannels * inChannels;
      f32View(backend, perTap).set(f32View(backend, product), (kh * filterWidth + kw) * tapBlock);
      release(backend, shifted, product);
    }
  }
  release(backend, dyT);
  const filterMajor = runWasmKernel(backend, 'Transpose', { x: perTap }, { perm: [0, 2, 1] });
  release(backend, perTap);
  const dw = reshapeInfo(backend, filterMajor, [...attrs.filterShape]);
  release(backend, filterMajor);
  return dw;
}

/** shifted[n,oh,ow,:] = x[n, oh·sh−pt+kh, ow·sw−pl+kw, :], zero where the tap falls in the padding. */
function gatherTap(backend: BackendWasm, x: TensorInfo, shifted: TensorInfo, info: tf.backend_util.Conv2DInfo, kh: number, kw: number): void {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, strideHeight, strideWidth, padInfo } = info;
  const heap = new Float32Array(heapBuffer(backend));
  const xBase = heapOffset(backend, x) / 4;
  const outBase = heapOffset(backend, shifted) / 4;
  let dst = outBase;
  for (let n = 0; n < batchSize; n++) {
    for (let oh = 0; oh < outHeight; oh++) {
      const ih = oh * strideHeight - padInfo.top + kh;
      const rowInside = ih >= 0 && ih < inHeight;
      for (let ow = 0; ow < outWidth; ow++, dst += inChannels) {
        const iw = ow * strideWidth - padInfo.left + kw;
        if (rowInside && iw >= 0 && iw < inWidth) {
          const src = xBase + ((n * inHeight + ih) * inWidth + iw) * inChannels;
          heap.copyWithin(dst, src, src + inChannels);
        } else {
          heap.fill(0, dst, dst + inChannels);
        }
      }
    }
  }
}

/**
 * out[s, ...] = Σ_{i : ids[i] = s} x[i, ...] for segment ids shaped like a prefix of x; ids outside
 * [0, numSegments) are dropped, as in TensorFlow.
 */
export function unsortedSegmentSumWasm(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: BackendWasm;
  attrs: { numSegments: number };
}): TensorInfo {
  const { backend } = args;
  const x = requireInput(args.inputs, 'x', 'UnsortedSegmentSum');
  const ids = requireInput(args.inputs, 'segmentIds', 'UnsortedSegmentSum');
  const { numSegments } = args.attrs;
  if (ids.dtype !== 'int32') throw new Error('UnsortedSegmentSum: segmentIds must be int32');
  if (x.dtype !== 'float32' && x.dtype !== 'int32') throw new Error(`UnsortedSegmentSum: unsupported dtype ${x.dtype}`);
  if (!Number.isInteger(numSegments) || numSegments < 0) throw new Error(`UnsortedSegmentSum: bad numSegments ${numSegments}`);
  if (ids.shape.length > x.shape.length || ids.shape.some((d, i) => d !== x.shape[i])) {
    throw new Error(`UnsortedSegmentSum: segmentIds shape [${ids.shape}] is not a prefix of x shape [${x.shape}]`);
  }
  const rowShape = x.shape.slice(ids.shape.length);
  const rowSize = tf.util.sizeFromShape(rowShape);
  const out = allocate(backend, [numSegments, ...rowShape], x.dtype);
  const outValues = x.dtype === 'float32' ? f32View(backend, out) : i32View(backend, out);
  const xValues = x.dtype === 'float32' ? f32View(backend, x) : i32View(backend, x);
  const segment = i32View(backend, ids);
  outValues.fill(0);
  for (let i = 0; i < segment.length; i++) {
    const s = segment[i]!;
    if (s < 0 || s >= numSegments) continue;
    const src = i * rowSize;
    const dst = s * rowSize;
    for (let j = 0; j < rowSize; j++) outValues[dst + j]! += xValues[src + j]!;
  }
  return out;
}

function requireInput(inputs: tf.NamedTensorInfoMap, name: string, kernel: string): TensorInfo {
  const info = inputs[name];
  if (!info) throw new Error(`${kernel}: missing input '${name}'`);
  return info;
}

function shareInput(backend: BackendWasm, x: TensorInfo): TensorInfo {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}

function identityShared(args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm }): TensorInfo {
  const x = requireInput(args.inputs, 'x', 'Identity');
  if (x.dtype === 'string') throw new Error('Identity on wasm: string tensors are not supported');
  return shareInput(args.backend, x);
}

/** Adds the missing kernels to the wasm backend and swaps in the copy-free Identity and Cast. */
export function registerWasmKernels(): void {
  const missing: tf.KernelConfig[] = [
    { kernelName: 'Conv2DBackpropFilter', backendName: 'wasm', kernelFunc: conv2DBackpropFilterWasm as unknown as tf.KernelFunc },
    { kernelName: 'UnsortedSegmentSum', backendName: 'wasm', kernelFunc: unsortedSegmentSumWasm as unknown as tf.KernelFunc },
  ];
  for (const kernel of missing) {
    if (!tf.getKernel(kernel.kernelName, 'wasm')) tf.registerKernel(kernel);
  }
  if (copyFreeRegistered) return;
  copyFreeRegistered = true;
  tf.unregisterKernel('Identity', 'wasm');
  tf.registerKernel({ kernelName: 'Identity', backendName: 'wasm', kernelFunc: identityShared as unknown as tf.KernelFunc });
  const stockCast = tf.getKernel('Cast', 'wasm');
  if (!stockCast) throw new Error('the wasm backend has no Cast kernel');
  tf.unregisterKernel('Cast', 'wasm');
  tf.registerKernel({
    ...stockCast,
    kernelFunc: ((args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: { dtype: tf.DataType } }) => {
      const x = requireInput(args.inputs, 'x', 'Cast');
      return x.dtype === args.attrs.dtype ? shareInput(args.backend, x) : stockCast.kernelFunc(args as never);
    }) as unknown as tf.KernelFunc,
  });
}

let copyFreeRegistered = false;
