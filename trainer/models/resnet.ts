// diffusers resnet.py / downsampling.py / upsampling.py: ResnetBlock2D, Downsample2D, Upsample2D (NHWC).
import { tf } from '../runtime/backend.ts';
import { activation } from '../nn/functional.ts';
import { Conv2d, GroupNorm, Linear, Module } from '../nn/layers.ts';
import type { ParameterStore } from '../nn/parameters.ts';

export interface ResnetOptions {
  inChannels: number;
  outChannels: number;
  /** null: no time embedding (VAE) */
  tembChannels: number | null;
  groups: number;
  eps: number;
  act: string;
  outputScaleFactor?: number;
}

export class ResnetBlock2D extends Module {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly timeEmbProj: Linear | null;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly convShortcut: Conv2d | null;
  private readonly act: (x: tf.Tensor) => tf.Tensor;

  constructor(store: ParameterStore, prefix: string, readonly options: ResnetOptions) {
    super(store, prefix);
    const { inChannels, outChannels, groups, eps } = options;
    this.act = activation(options.act);
    this.norm1 = new GroupNorm(store, this.child('norm1'), groups, inChannels, eps);
    this.conv1 = new Conv2d(store, this.child('conv1'), inChannels, outChannels, 3, { padding: 1 });
    this.timeEmbProj = options.tembChannels === null ? null : new Linear(store, this.child('time_emb_proj'), options.tembChannels, outChannels);
    this.norm2 = new GroupNorm(store, this.child('norm2'), groups, outChannels, eps);
    this.conv2 = new Conv2d(store, this.child('conv2'), outChannels, outChannels, 3, { padding: 1 });
    this.convShortcut = inChannels !== outChannels ? new Conv2d(store, this.child('conv_shortcut'), inChannels, outChannels, 1) : null;
  }

  forward(x: tf.Tensor4D, temb: tf.Tensor2D | null): tf.Tensor4D {
    return tf.tidy(() => {
      let h = this.conv1.forward(this.act(this.norm1.forward(x)) as tf.Tensor4D);
      if (this.timeEmbProj && temb) {
        const t = this.timeEmbProj.forward(this.act(temb));
        h = tf.add(h, tf.reshape(t, [t.shape[0]!, 1, 1, t.shape[1]!]));
      }
      h = this.conv2.forward(this.act(this.norm2.forward(h)) as tf.Tensor4D);
      const shortcut = this.convShortcut ? this.convShortcut.forward(x) : x;
      const out = tf.add(shortcut, h) as tf.Tensor4D;
      const scale = this.options.outputScaleFactor ?? 1;
      return scale === 1 ? out : tf.div(out, scale);
    });
  }
}

/** Stride-2 conv. padding 0 pads only right/bottom by one first, as diffusers does for the VAE. */
export class Downsample2D extends Module {
  readonly conv: Conv2d;

  constructor(store: ParameterStore, prefix: string, channels: number, outChannels: number, readonly padding: number) {
    super(store, prefix);
    this.conv = new Conv2d(store, this.child('conv'), channels, outChannels, 3, { stride: 2, padding });
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const input = this.padding === 0 ? tf.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]]) : x;
      return this.conv.forward(input);
    });
  }
}

/** Nearest-neighbour 2x (or to an explicit size) followed by a 3x3 conv. */
export class Upsample2D extends Module {
  readonly conv: Conv2d;

  constructor(store: ParameterStore, prefix: string, channels: number, outChannels: number) {
    super(store, prefix);
    this.conv = new Conv2d(store, this.child('conv'), channels, outChannels, 3, { padding: 1 });
  }

  forward(x: tf.Tensor4D, size?: [number, number]): tf.Tensor4D {
    return tf.tidy(() => {
      const [, h, w] = x.shape;
      const up = tf.image.resizeNearestNeighbor(x, size ?? [h * 2, w * 2]);
      return this.conv.forward(up);
    });
  }
}
