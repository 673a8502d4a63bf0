// diffusers attention.py: FeedForward with GEGLU and BasicTransformerBlock (self-attn, cross-attn, feed-forward).
import { tf } from '../runtime/backend.ts';
import { gelu } from '../nn/functional.ts';
import { LayerNorm, Linear, Module } from '../nn/layers.ts';
import type { ParameterStore } from '../nn/parameters.ts';
import { Attention, type AttentionController, type AttentionLayerInfo } from './attention_processor.ts';

/** net.0 = GEGLU(dim -> 2·inner), net.2 = Linear(inner -> dim); net.1 is dropout. */
export class FeedForward extends Module {
  readonly proj: Linear;
  readonly out: Linear;

  constructor(store: ParameterStore, prefix: string, readonly dim: number, mult = 4) {
    super(store, prefix);
    const inner = dim * mult;
    this.proj = new Linear(store, this.child('net.0.proj'), dim, inner * 2);
    this.out = new Linear(store, this.child('net.2'), inner, dim);
  }

  forward(x: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const [hidden, gate] = tf.split(this.proj.forward(x), 2, -1) as [tf.Tensor3D, tf.Tensor3D];
      return this.out.forward(tf.mul(hidden, gelu(gate)) as tf.Tensor3D);
    });
  }
}

export interface TransformerBlockOptions {
  dim: number;
  heads: number;
  dimHead: number;
  crossAttentionDim: number;
  onlyCrossAttention: boolean;
  normEps: number;
}

export class BasicTransformerBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn1: Attention;
  readonly norm2: LayerNorm;
  readonly attn2: Attention;
  readonly norm3: LayerNorm;
  readonly ff: FeedForward;

  constructor(
    store: ParameterStore,
    prefix: string,
    readonly options: TransformerBlockOptions,
    layers: { attn1: AttentionLayerInfo | null; attn2: AttentionLayerInfo | null } = { attn1: null, attn2: null },
  ) {
    super(store, prefix);
    const { dim, heads, dimHead, crossAttentionDim, normEps } = options;
    this.norm1 = new LayerNorm(store, this.child('norm1'), dim, normEps);
    this.attn1 = new Attention(
      store,
      this.child('attn1'),
      { queryDim: dim, crossAttentionDim: options.onlyCrossAttention ? crossAttentionDim : null, heads, dimHead },
      layers.attn1,
    );
    this.norm2 = new LayerNorm(store, this.child('norm2'), dim, normEps);
    this.attn2 = new Attention(store, this.child('attn2'), { queryDim: dim, crossAttentionDim, heads, dimHead }, layers.attn2);
    this.norm3 = new LayerNorm(store, this.child('norm3'), dim, normEps);
    this.ff = new FeedForward(store, this.child('ff'), dim);
  }

  forward(x: tf.Tensor3D, context: tf.Tensor3D, grid: [number, number], controller?: AttentionController): tf.Tensor3D {
    return tf.tidy(() => {
      const selfContext = this.options.onlyCrossAttention ? context : null;
      let h = tf.add(this.attn1.forward(this.norm1.forward(x), selfContext, { controller, grid }), x) as tf.Tensor3D;
      h = tf.add(this.attn2.forward(this.norm2.forward(h), context, { controller, grid }), h) as tf.Tensor3D;
      return tf.add(this.ff.forward(this.norm3.forward(h)), h) as tf.Tensor3D;
    });
  }
}
