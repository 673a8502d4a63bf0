// diffusers transformer_2d.py (continuous input): GroupNorm, proj_in (1x1 conv or linear), transformer blocks,
// proj_out, residual.
import { tf } from '../runtime/backend.ts';
import { Conv2d, GroupNorm, Linear, Module } from '../nn/layers.ts';
import type { ParameterStore } from '../nn/parameters.ts';
import { BasicTransformerBlock } from './attention.ts';
import type { AttentionController, AttentionLayerInfo } from './attention_processor.ts';

export interface Transformer2DOptions {
  heads: number;
  dimHead: number;
  inChannels: number;
  numLayers: number;
  normNumGroups: number;
  crossAttentionDim: number;
  useLinearProjection: boolean;
  onlyCrossAttention: boolean;
  normEps: number;
}

export class Transformer2DModel extends Module {
  readonly norm: GroupNorm;
  readonly projIn: Linear | Conv2d;
  readonly blocks: BasicTransformerBlock[];
  readonly projOut: Linear | Conv2d;
  readonly innerDim: number;

  constructor(
    store: ParameterStore,
    prefix: string,
    readonly options: Transformer2DOptions,
    /** hook info per transformer block; built by the UNet, which knows the layers' order */
    layerInfo: (transformer: number) => { attn1: AttentionLayerInfo; attn2: AttentionLayerInfo },
  ) {
    super(store, prefix);
    const { heads, dimHead, inChannels } = options;
    this.innerDim = heads * dimHead;
    // diffusers hard-codes eps=1e-6 for this GroupNorm regardless of the UNet's norm_eps.
    this.norm = new GroupNorm(store, this.child('norm'), options.normNumGroups, inChannels, 1e-6);
    this.projIn = options.useLinearProjection
      ? new Linear(store, this.child('proj_in'), inChannels, this.innerDim)
      : new Conv2d(store, this.child('proj_in'), inChannels, this.innerDim, 1);
    this.blocks = Array.from(
      { length: options.numLayers },
      (_, i) =>
        new BasicTransformerBlock(
          store,
          this.child(`transformer_blocks.${i}`),
          {
            dim: this.innerDim,
            heads,
            dimHead,
            crossAttentionDim: options.crossAttentionDim,
            onlyCrossAttention: options.onlyCrossAttention,
            normEps: options.normEps,
          },
          layerInfo(i),
        ),
    );
    this.projOut = options.useLinearProjection
      ? new Linear(store, this.child('proj_out'), this.innerDim, inChannels)
      : new Conv2d(store, this.child('proj_out'), this.innerDim, inChannels, 1);
  }

  forward(x: tf.Tensor4D, context: tf.Tensor3D, controller?: AttentionController): tf.Tensor4D {
    return tf.tidy(() => {
      const [b, h, w, c] = x.shape;
      const normed = this.norm.forward(x);
      let tokens: tf.Tensor3D;
      if (this.projIn instanceof Conv2d) tokens = tf.reshape(this.projIn.forward(normed), [b, h * w, this.innerDim]);
      else tokens = this.projIn.forward(tf.reshape(normed, [b, h * w, c]) as tf.Tensor3D);
      for (const block of this.blocks) tokens = block.forward(tokens, context, [h, w], controller);
      let out: tf.Tensor4D;
      if (this.projOut instanceof Conv2d) out = this.projOut.forward(tf.reshape(tokens, [b, h, w, this.innerDim]));
      else out = tf.reshape(this.projOut.forward(tokens), [b, h, w, c]);
      return tf.add(out, x);
    });
  }
}
