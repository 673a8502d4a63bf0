// The one place that picks the tensor engine. Order: MIFO_BACKEND if set; else tfjs-node-gpu / tfjs-node when
// installed (optional accelerators); else the wasm backend. Everything else in trainer/ is backend-agnostic.
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { type BackendWasm, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { guardWasmHeap } from './memory.ts';
import { enableNativeKernels } from './native.ts';
import { registerWasmKernels } from './wasm_kernels.ts';

export { tf };

export type EngineName = 'tensorflow' | 'wasm' | 'cpu';

export interface RuntimeInfo {
  engine: EngineName;
  /** human-readable description, logged once */
  description: string;
}

const require = createRequire(import.meta.url);
let runtime: Promise<RuntimeInfo> | null = null;

export function initRuntime(): Promise<RuntimeInfo> {
  runtime ??= chooseEngine().then((info) => {
    if (process.env.MIFO_QUIET !== '1') process.stderr.write(`[mifo] tensor engine: ${info.description}\n`);
    return info;
  });
  return runtime;
}

async function chooseEngine(): Promise<RuntimeInfo> {
  tf.enableProdMode();
  const requested = process.env.MIFO_BACKEND?.trim().toLowerCase();
  if (requested && !['tensorflow', 'wasm', 'cpu'].includes(requested)) {
    throw new Error(`MIFO_BACKEND=${requested} is not one of: tensorflow, wasm, cpu`);
  }
  if (requested === 'tensorflow' || !requested) {
    const accelerated = await tryTensorflowBinding();
    if (accelerated) return accelerated;
    if (requested === 'tensorflow') {
      throw new Error('MIFO_BACKEND=tensorflow but neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node could be loaded');
    }
  }
  if (requested === 'cpu') {
    await setBackendOrThrow('cpu');
    return { engine: 'cpu', description: 'tfjs cpu (pure JavaScript; slow, for debugging)' };
  }
  return initWasm();
}

async function tryTensorflowBinding(): Promise<RuntimeInfo | null> {
  for (const name of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      await import(name);
    } catch {
      continue;
    }
    if (await tf.setBackend('tensorflow')) {
      return { engine: 'tensorflow', description: `${name} (libtensorflow${name.endsWith('gpu') ? ', CUDA' : ''})` };
    }
  }
  return null;
}

async function initWasm(): Promise<RuntimeInfo> {
  const wasmDist = dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
  setWasmPaths(`${wasmDist}/`);
  registerWasmKernels();
  const native = enableNativeKernels();
  await setBackendOrThrow('wasm');
  guardWasmHeap(tf.backend() as BackendWasm);
  const description = native.active
    ? `tfjs wasm + native kernels (OpenBLAS ${native.blasCore}, ${native.threads} threads)`
    : `tfjs wasm (SIMD, single thread; native kernels off: ${native.reason})`;
  return { engine: 'wasm', description };
}

async function setBackendOrThrow(name: string): Promise<void> {
  // tf.setBackend reports failure by returning false, not by throwing.
  const ok = await tf.setBackend(name);
  if (!ok) throw new Error(`the tfjs '${name}' backend failed to initialise`);
  await tf.ready();
}
