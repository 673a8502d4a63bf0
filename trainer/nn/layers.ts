// torch.nn-shaped layers over a ParameterStore. A layer at prefix "down_blocks.0.resnets.0.conv1" owns the keys
// "down_blocks.0.resnets.0.conv1.weight" / ".bias", exactly as in the safetensors file.
import { tf } from '../runtime/backend.ts';
import { groupNorm, layerNorm } from './functional.ts';
import type { Init, Layout, ParameterStore } from './parameters.ts';

export function joinKey(prefix: string, name: string): string {
  return prefix ? `${prefix}.${name}` : name;
}

export class Module {
  constructor(
    readonly store: ParameterStore,
    readonly prefix: string,
  ) {}

  protected child(name: string): string {
    return joinKey(this.prefix, name);
  }

  protected parameter(name: string, torchShape: number[], init: Init, layout: Layout = 'torch'): string {
    return this.store.declare({ key: this.child(name), torchShape, init, layout });
  }
}

/** PyTorch's default (Kaiming-uniform with a=√5) reduces to U(±1/√fan_in) for weights and biases. */
function fanInUniform(fanIn: number): Init {
  return { kind: 'uniform', bound: 1 / Math.sqrt(fanIn) };
}

export class Linear extends Module {
  readonly weight: string;
  readonly bias: string | null;

  constructor(
    store: ParameterStore,
    prefix: string,
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: { bias?: boolean; init?: Init; biasInit?: Init } = {},
  ) {
    super(store, prefix);
    this.weight = this.parameter('weight', [outFeatures, inFeatures], options.init ?? fanInUniform(inFeatures));
    this.bias = options.bias === false ? null : this.parameter('bias', [outFeatures], options.biasInit ?? fanInUniform(inFeatures));
  }

  forward<T extends tf.Tensor>(x: T): T {
    return tf.tidy(() => {
      const shape = x.shape;
      const flat = tf.reshape(x, [-1, this.inFeatures]) as tf.Tensor2D;
      let y = tf.matMul(flat, this.store.get(this.weight) as tf.Tensor2D, false, true);
      if (this.bias) y = tf.add(y, this.store.get(this.bias));
      const adapter = this.store.adapters.get(this.prefix);
      if (adapter) {
        const low = tf.matMul(flat, adapter.down as tf.Tensor2D, false, true);
        y = tf.add(y, tf.mul(tf.matMul(low, adapter.up as tf.Tensor2D, false, true), adapter.scale));
      }
      return tf.reshape(y, [...shape.slice(0, -1), this.outFeatures]) as T;
    });
  }
}

export class Conv2d extends Module {
  readonly weight: string;
  readonly bias: string | null;

  constructor(
    store: ParameterStore,
    prefix: string,
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    readonly options: { stride?: number; padding?: number; bias?: boolean } = {},
  ) {
    super(store, prefix);
    const fanIn = inChannels * kernelSize * kernelSize;
    this.weight = this.parameter('weight', [outChannels, inChannels, kernelSize, kernelSize], fanInUniform(fanIn), 'conv2d');
    this.bias = options.bias === false ? null : this.parameter('bias', [outChannels], fanInUniform(fanIn));
  }

  /** x: NHWC */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const stride = this.options.stride ?? 1;
      const padding = this.options.padding ?? 0;
      const pad = padding === 0 ? 'valid' : padding;
      let y = tf.conv2d(x, this.store.get(this.weight) as tf.Tensor4D, stride, pad);
      if (this.bias) y = tf.add(y, this.store.get(this.bias));
      return y;
    });
  }
}

export class GroupNorm extends Module {
  readonly weight: string;
  readonly bias: string;

  constructor(
    store: ParameterStore,
    prefix: string,
    readonly numGroups: number,
    readonly numChannels: number,
    readonly eps: number,
  ) {
    super(store, prefix);
    if (numChannels % numGroups !== 0) {
      throw new Error(`${prefix}: GroupNorm with ${numGroups} groups cannot split ${numChannels} channels`);
    }
    this.weight = this.parameter('weight', [numChannels], { kind: 'ones' });
    this.bias = this.parameter('bias', [numChannels], { kind: 'zeros' });
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return groupNorm(x, this.numGroups, this.store.get(this.weight), this.store.get(this.bias), this.eps);
  }
}

export class LayerNorm extends Module {
  readonly weight: string;
  readonly bias: string;

  constructor(
    store: ParameterStore,
    prefix: string,
    readonly dim: number,
    readonly eps: number,
  ) {
    super(store, prefix);
    this.weight = this.parameter('weight', [dim], { kind: 'ones' });
    this.bias = this.parameter('bias', [dim], { kind: 'zeros' });
  }

  forward<T extends tf.Tensor>(x: T): T {
    return layerNorm(x, this.store.get(this.weight), this.store.get(this.bias), this.eps);
  }
}

export class Embedding extends Module {
  readonly weight: string;

  constructor(
    store: ParameterStore,
    prefix: string,
    readonly numEmbeddings: number,
    readonly dim: number,
    init: Init = { kind: 'normal', std: 1 },
  ) {
    super(store, prefix);
    this.weight = this.parameter('weight', [numEmbeddings, dim], init);
  }

  /** ids: int32 [..]; returns [.., dim] */
  forward(ids: tf.Tensor): tf.Tensor {
    return tf.gather(this.store.get(this.weight), ids);
  }
}
