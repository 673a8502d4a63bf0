// Parameters keyed exactly by their safetensors names. Modules declare each parameter with its PyTorch shape;
// loading checks every declared key and shape, so a checkpoint maps 1:1 and a mismatch names the key.
// Conv kernels are stored in tfjs's HWIO layout and converted from/to PyTorch's OIHW at the file boundary.
import { tf } from '../runtime/backend.ts';
import { WeightSource } from '../io/diffusers.ts';
import type { TensorToWrite } from '../io/safetensors.ts';

export type Layout = 'torch' | 'conv2d';

export type Init =
  | { kind: 'zeros' }
  | { kind: 'ones' }
  | { kind: 'normal'; std: number }
  | { kind: 'uniform'; bound: number };

export interface ParameterSpec {
  /** full safetensors key */
  key: string;
  /** shape as PyTorch stores it */
  torchShape: number[];
  layout: Layout;
  init: Init;
}

export class WeightLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WeightLoadError';
  }
}

/** PyTorch OIHW -> tfjs HWIO. */
export function oihwToHwio(data: Float32Array, [o, i, h, w]: number[]): Float32Array {
  const out = new Float32Array(data.length);
  for (let oo = 0; oo < o!; oo++)
    for (let ii = 0; ii < i!; ii++)
      for (let hh = 0; hh < h!; hh++)
        for (let ww = 0; ww < w!; ww++) out[((hh * w! + ww) * i! + ii) * o! + oo] = data[((oo * i! + ii) * h! + hh) * w! + ww]!;
  return out;
}

/** tfjs HWIO -> PyTorch OIHW. */
export function hwioToOihw(data: Float32Array, [o, i, h, w]: number[]): Float32Array {
  const out = new Float32Array(data.length);
  for (let oo = 0; oo < o!; oo++)
    for (let ii = 0; ii < i!; ii++)
      for (let hh = 0; hh < h!; hh++)
        for (let ww = 0; ww < w!; ww++) out[((oo * i! + ii) * h! + hh) * w! + ww] = data[((hh * w! + ww) * i! + ii) * o! + oo]!;
  return out;
}

function engineShape(spec: ParameterSpec): number[] {
  if (spec.layout === 'conv2d') {
    const [o, i, h, w] = spec.torchShape;
    return [h!, w!, i!, o!];
  }
  return spec.torchShape;
}

/** LoRA: W x + scale · up(down(x)), with down [rank, in] and up [out, rank] in PyTorch layout (PEFT lora_A / lora_B). */
export interface LowRankAdapter {
  down: tf.Variable;
  up: tf.Variable;
  scale: number;
}

export interface LoadReport {
  loaded: number;
  /** keys in the file that no module declared (e.g. buffers such as position_ids) */
  unexpected: string[];
}

/**
 * Holds a model's parameters as tf.Variables. Parameters are declared by modules at construction time and
 * filled by `load` (from safetensors) or `initialize` (fresh training).
 */
export class ParameterStore {
  readonly specs = new Map<string, ParameterSpec>();
  private readonly values = new Map<string, tf.Variable>();
  /** low-rank adapters by the prefix of the Linear they modify (see Linear.forward) */
  readonly adapters = new Map<string, LowRankAdapter>();

  declare(spec: ParameterSpec): string {
    if (this.specs.has(spec.key)) throw new Error(`parameter '${spec.key}' declared twice`);
    this.specs.set(spec.key, spec);
    return spec.key;
  }

  get(key: string): tf.Variable {
    const value = this.values.get(key);
    if (!value) {
      throw new WeightLoadError(this.specs.has(key) ? `parameter '${key}' has not been loaded` : `no parameter '${key}' is declared`);
    }
    return value;
  }

  has(key: string): boolean {
    return this.values.has(key);
  }

  keys(): string[] {
    return [...this.specs.keys()];
  }

  variables(filter?: (key: string) => boolean): tf.Variable[] {
    return [...this.values.entries()].filter(([key]) => !filter || filter(key)).map(([, v]) => v);
  }

  /** Sets a parameter from PyTorch-layout data. */
  assign(key: string, data: Float32Array, torchShape: readonly number[]): void {
    const spec = this.specs.get(key);
    if (!spec) throw new WeightLoadError(`no parameter '${key}' is declared`);
    if (torchShape.length !== spec.torchShape.length || torchShape.some((d, i) => d !== spec.torchShape[i])) {
      throw new WeightLoadError(`'${key}' has shape [${torchShape.join(', ')}] but the model config expects [${spec.torchShape.join(', ')}]`);
    }
    const values = spec.layout === 'conv2d' ? oihwToHwio(data, spec.torchShape) : data;
    const tensor = tf.tensor(values, engineShape(spec), 'float32');
    const existing = this.values.get(key);
    if (existing) {
      existing.assign(tensor);
      tensor.dispose();
    } else {
      this.values.set(key, tf.variable(tensor, false));
      tensor.dispose();
    }
  }

  /**
   * Changes the first dimension of a torch-layout parameter (e.g. a token embedding table after tokens were
   * added). Loaded rows are kept (the tail is cut when shrinking); `addedRows`, in PyTorch layout, fills the rows
   * past the old end. The variable is replaced, so code holding the old one (an optimizer) must fetch it again.
   */
  resizeRows(key: string, rows: number, addedRows?: Float32Array): void {
    const spec = this.specs.get(key);
    if (!spec) throw new WeightLoadError(`no parameter '${key}' is declared`);
    if (spec.layout !== 'torch') throw new Error(`'${key}' is a ${spec.layout} kernel; only torch-layout parameters can be resized`);
    if (!Number.isInteger(rows) || rows < 1) throw new Error(`'${key}': cannot resize to ${rows} rows`);
    const [oldRows, ...rowShape] = spec.torchShape;
    const rowSize = rowShape.reduce((a, b) => a * b, 1);
    const added = Math.max(0, rows - oldRows!);
    if ((addedRows?.length ?? 0) !== added * rowSize) {
      throw new Error(`'${key}': growing from ${oldRows} to ${rows} rows needs ${added * rowSize} new values, got ${addedRows?.length ?? 0}`);
    }
    const torchShape = [rows, ...rowShape];
    const existing = this.values.get(key);
    this.specs.set(key, { ...spec, torchShape });
    if (!existing) return;
    const data = new Float32Array(rows * rowSize);
    data.set((existing.dataSync() as Float32Array).subarray(0, Math.min(rows, oldRows!) * rowSize));
    if (addedRows) data.set(addedRows, oldRows! * rowSize);
    const trainable = existing.trainable;
    existing.dispose();
    this.values.delete(key);
    this.assign(key, data, torchShape);
    this.get(key).trainable = trainable;
  }

  /** Loads every declared parameter; missing keys and shape mismatches throw, naming the key. */
  load(source: WeightSource, options: { prefix?: string } = {}): LoadReport {
    const prefix = options.prefix ?? '';
    const missing = this.keys().filter((key) => !source.has(prefix + key));
    if (missing.length > 0) {
      const shown = missing.slice(0, 8).join(', ');
      throw new WeightLoadError(`weights are missing ${missing.length} parameter(s) the config needs: ${shown}${missing.length > 8 ? ', …' : ''}`);
    }
    for (const key of this.keys()) {
      const { shape, data } = source.readFloat32(prefix + key);
      this.assign(key, data, shape);
    }
    const declared = new Set(this.keys().map((k) => prefix + k));
    const unexpected = source.keys().filter((k) => k.startsWith(prefix) && !declared.has(k));
    return { loaded: declared.size, unexpected };
  }

  /** Loads the safetensors weights of a diffusers component folder. */
  loadComponent(componentDir: string, variant?: string): LoadReport {
    const source = WeightSource.forComponent(componentDir, variant);
    try {
      return this.load(source);
    } finally {
      source.close();
    }
  }

  /** Fills every parameter from its declared initialiser with a seeded generator. */
  initialize(seed: number): void {
    let index = 0;
    for (const spec of this.specs.values()) {
      const size = spec.torchShape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(size);
      const init = spec.init;
      if (init.kind === 'ones') data.fill(1);
      else if (init.kind === 'normal') data.set(tf.randomNormal([size], 0, init.std, 'float32', seed + index).dataSync());
      else if (init.kind === 'uniform') data.set(tf.randomUniform([size], -init.bound, init.bound, 'float32', seed + index).dataSync());
      index++;
      this.assign(spec.key, data, spec.torchShape);
    }
  }

  /** Parameters in PyTorch layout, ready for writeSafetensors. */
  stateDict(options: { dtype?: 'F32' | 'F16' | 'BF16'; filter?: (key: string) => boolean } = {}): Record<string, TensorToWrite> {
    const out: Record<string, TensorToWrite> = {};
    for (const [key, spec] of this.specs) {
      if (options.filter && !options.filter(key)) continue;
      const data = this.get(key).dataSync() as Float32Array;
      out[key] = {
        dtype: options.dtype ?? 'F32',
        shape: spec.torchShape,
        data: spec.layout === 'conv2d' ? hwioToOihw(data, spec.torchShape) : Float32Array.from(data),
      };
    }
    return out;
  }

  dispose(): void {
    for (const value of this.values.values()) value.dispose();
    this.values.clear();
  }
}
