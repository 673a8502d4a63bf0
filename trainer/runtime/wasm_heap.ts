// Direct access to tensors of the tfjs wasm backend: every tensor is one malloc'd block of the wasm heap, so kernels
// written outside the backend (JS loops, the native addon) can read and write them in place. This leans on
// tfjs-backend-wasm internals (dataIdMap, makeOutput), which is why @tensorflow/* is pinned exactly.
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

export type { BackendWasm };
export type TensorInfo = tf.TensorInfo;

/** Byte offset of a tensor's data in the wasm heap. */
export function heapOffset(backend: BackendWasm, info: TensorInfo): number {
  const data = backend.dataIdMap.get(info.dataId);
  if (!data) throw new Error('tensor data is not on the wasm backend');
  return data.memoryOffset;
}

/**
 * The current heap buffer. Allocating (makeOutput) may grow the wasm memory, which detaches earlier buffers, so
 * fetch it after the last allocation of a kernel.
 */
export function heapBuffer(backend: BackendWasm): ArrayBuffer {
  // HEAPU8 is an emscripten export the module typings leave out.
  return (backend.wasm as unknown as { HEAPU8: Uint8Array }).HEAPU8.buffer as ArrayBuffer;
}

export function f32View(backend: BackendWasm, info: TensorInfo): Float32Array {
  return new Float32Array(heapBuffer(backend), heapOffset(backend, info), tf.util.sizeFromShape(info.shape));
}

export function i32View(backend: BackendWasm, info: TensorInfo): Int32Array {
  return new Int32Array(heapBuffer(backend), heapOffset(backend, info), tf.util.sizeFromShape(info.shape));
}

/** An uninitialised float32 tensor on the wasm heap. */
export function allocate(backend: BackendWasm, shape: number[], dtype: tf.DataType = 'float32'): TensorInfo {
  return backend.makeOutput(shape, dtype);
}

/** Same data, another shape (the wasm Reshape kernel does the same: share the block, count a reference). */
export function reshapeInfo(backend: BackendWasm, info: TensorInfo, shape: number[]): TensorInfo {
  if (tf.util.sizeFromShape(shape) !== tf.util.sizeFromShape(info.shape)) {
    throw new Error(`cannot reshape [${info.shape}] to [${shape}]`);
  }
  backend.incRef(info.dataId);
  return { dataId: info.dataId, shape, dtype: info.dtype };
}

export function release(backend: BackendWasm, ...infos: TensorInfo[]): void {
  for (const info of infos) backend.disposeData(info.dataId);
}

/** Runs another kernel registered for the wasm backend on TensorInfos (no tape, no engine bookkeeping). */
export function runWasmKernel(
  backend: BackendWasm,
  kernelName: string,
  inputs: Record<string, TensorInfo>,
  attrs: Record<string, unknown> = {},
): TensorInfo {
  const kernel = tf.getKernel(kernelName, 'wasm');
  if (!kernel) throw new Error(`no '${kernelName}' kernel is registered for the wasm backend`);
  const out = kernel.kernelFunc({ inputs, attrs: attrs as tf.NamedAttrMap, backend });
  if (Array.isArray(out)) throw new Error(`kernel '${kernelName}' returned several outputs`);
  return out;
}
