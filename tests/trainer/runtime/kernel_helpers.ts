// Helpers for kernel tests: run a kernel of the tfjs cpu backend (the pure-JS reference) or of the wasm backend on
// plain arrays, and compare results.
import assert from 'node:assert/strict';
import { tf } from '../../../trainer/runtime/backend.ts';
import type { BackendWasm, TensorInfo } from '../../../trainer/runtime/wasm_heap.ts';

export interface HostTensor {
  values: Float32Array | Int32Array;
  shape: number[];
  dtype?: 'float32' | 'int32';
}

/** Deterministic pseudo-random floats in [-1, 1). */
export function randomValues(size: number, seed: number): Float32Array {
  const out = new Float32Array(size);
  let state = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = ((state >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

export function randomTensor(shape: number[], seed: number): HostTensor {
  return { values: randomValues(tf.util.sizeFromShape(shape), seed), shape };
}

/** Kernel inputs: named (most kernels) or positional (Concat, AddN, Pack). */
export type HostInputs = Record<string, HostTensor> | HostTensor[];

function mapInputs<T>(inputs: HostInputs, make: (t: HostTensor) => T): Record<string, T> | T[] {
  if (Array.isArray(inputs)) return inputs.map(make);
  return Object.fromEntries(Object.entries(inputs).map(([name, t]) => [name, make(t)]));
}

/** Runs `kernelName` of the tfjs cpu backend (plain JavaScript) on host arrays. */
export function cpuKernel(kernelName: string, inputs: HostInputs, attrs: Record<string, unknown>): HostTensor {
  const backend = tf.engine().findBackend('cpu');
  const kernel = tf.getKernel(kernelName, 'cpu');
  if (!backend || !kernel) throw new Error(`the tfjs cpu backend has no '${kernelName}' kernel`);
  const infos = mapInputs(inputs, (t): TensorInfo => {
    const dtype = t.dtype ?? (t.values instanceof Int32Array ? 'int32' : 'float32');
    return { dataId: backend.write(t.values, t.shape, dtype), shape: t.shape, dtype };
  });
  const out = kernel.kernelFunc({ inputs: infos as tf.NamedTensorInfoMap, backend, attrs: attrs as tf.NamedAttrMap });
  if (Array.isArray(out)) throw new Error(`${kernelName} returned several outputs`);
  const values = backend.readSync(out.dataId) as Float32Array | Int32Array;
  for (const info of [...Object.values(infos), out]) backend.disposeData(info.dataId);
  return { values: values.slice(), shape: out.shape };
}

/** Calls a wasm kernel function directly on host arrays and reads its output back. */
export function wasmKernel(
  kernelFunc: (args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: any }) => TensorInfo,
  inputs: HostInputs,
  attrs: Record<string, unknown>,
): HostTensor {
  assert.equal(tf.getBackend(), 'wasm', 'these kernels run on the wasm backend');
  const backend = tf.backend() as BackendWasm;
  const tensors = mapInputs(inputs, (t) => tf.tensor(t.values, t.shape, t.dtype));
  const out = kernelFunc({ inputs: tensors as tf.NamedTensorInfoMap, backend, attrs });
  const values = (backend.readSync(out.dataId) as Float32Array | Int32Array).slice();
  backend.disposeData(out.dataId);
  for (const t of Object.values(tensors)) t.dispose();
  return { values, shape: out.shape };
}

/** max|a − b| ≤ atol + rtol·max|b|, with shapes equal. */
export function assertAllClose(actual: HostTensor | tf.Tensor, expected: HostTensor | tf.Tensor, what: string, rtol = 1e-5, atol = 1e-6): void {
  const a = toHost(actual);
  const e = toHost(expected);
  assert.deepEqual(a.shape, e.shape, `${what}: shape`);
  let maxErr = 0;
  let maxRef = 0;
  for (let i = 0; i < e.values.length; i++) {
    const err = Math.abs(a.values[i]! - e.values[i]!);
    assert.ok(Number.isFinite(err), `${what}: element ${i} is ${a.values[i]}, expected ${e.values[i]}`);
    maxErr = Math.max(maxErr, err);
    maxRef = Math.max(maxRef, Math.abs(e.values[i]!));
  }
  const bound = atol + rtol * maxRef;
  assert.ok(maxErr <= bound, `${what}: max abs error ${maxErr} > ${bound} (max |expected| ${maxRef})`);
}

export function toHost(t: HostTensor | tf.Tensor): HostTensor {
  if (t instanceof tf.Tensor) return { values: t.dataSync() as Float32Array, shape: t.shape };
  return t;
}
