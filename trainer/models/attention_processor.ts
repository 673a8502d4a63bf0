// diffusers `Attention` (attention_processor.py) plus the hook API that MIFO learning and synthesis use to read
// attention probabilities and to bound attention with additive logit masks.
import { tf } from '../runtime/backend.ts';
import { scaledDotProductAttention } from '../nn/functional.ts';
import { GroupNorm, Linear, Module } from '../nn/layers.ts';
import type { ParameterStore } from '../nn/parameters.ts';

/** Static description of one attention layer of a UNet, in forward execution order. */
export interface AttentionLayerInfo {
  /** the diffusers module path, e.g. "up_blocks.1.attentions.0.transformer_blocks.0.attn2" */
  id: string;
  kind: 'self' | 'cross';
  place: 'down' | 'mid' | 'up';
  /** index of the down/up block (0 for mid) */
  block: number;
  /** index of the Transformer2DModel inside the block */
  attention: number;
  /** index of the BasicTransformerBlock inside the Transformer2DModel */
  transformer: number;
  /** how many times the latent is downsampled at this layer (queries = latent side / 2^level) */
  level: number;
  heads: number;
  headDim: number;
  /** position among all attention layers in forward order (the ℓ index of Bounded Attention) */
  order: number;
  /** position among the cross-attention layers in forward order (the c index of the MIFO learner), or -1 */
  crossOrder: number;
}

/** One execution of an attention layer. */
export interface AttentionCall {
  layer: AttentionLayerInfo;
  batch: number;
  /** query grid */
  height: number;
  width: number;
  keys: number;
}

/**
 * A caller's control over the UNet's attention layers during one forward pass.
 * - `logitMask` returns an additive mask broadcastable to [batch, heads, queries, keys] (0 keeps a logit, a large
 *   negative value removes it), or null. A tensor created inside the call is freed with the layer's scope; a mask the
 *   controller caches across calls must be kept with tf.keep by the controller.
 * - `capture` chooses the layers whose post-softmax probabilities are handed to `onProbs`; other layers keep no extra
 *   memory. `onProbs` receives [batch, heads, queries, keys] still on the gradient tape and owns (must dispose) it.
 */
export interface AttentionController {
  logitMask?(call: AttentionCall): tf.Tensor | null;
  capture?(layer: AttentionLayerInfo): boolean;
  onProbs?(call: AttentionCall, probs: tf.Tensor4D): void;
}

export interface AttentionOptions {
  queryDim: number;
  crossAttentionDim?: number | null;
  heads: number;
  dimHead: number;
  bias?: boolean;
  outBias?: boolean;
  /** GroupNorm applied to the queries' input (VAE mid-block attention) */
  normNumGroups?: number | null;
  eps?: number;
  residualConnection?: boolean;
  rescaleOutputFactor?: number;
}

export class Attention extends Module {
  readonly heads: number;
  readonly dimHead: number;
  readonly scale: number;
  readonly groupNorm: GroupNorm | null;
  readonly toQ: Linear;
  readonly toK: Linear;
  readonly toV: Linear;
  readonly toOut: Linear;

  constructor(
    store: ParameterStore,
    prefix: string,
    readonly options: AttentionOptions,
    /** set by the UNet for its layers; hook-less attention (VAE) leaves it null */
    readonly layer: AttentionLayerInfo | null = null,
  ) {
    super(store, prefix);
    const innerDim = options.heads * options.dimHead;
    const contextDim = options.crossAttentionDim ?? options.queryDim;
    const bias = options.bias ?? false;
    this.heads = options.heads;
    this.dimHead = options.dimHead;
    this.scale = options.dimHead ** -0.5;
    this.groupNorm = options.normNumGroups
      ? new GroupNorm(store, this.child('group_norm'), options.normNumGroups, options.queryDim, options.eps ?? 1e-5)
      : null;
    this.toQ = new Linear(store, this.child('to_q'), options.queryDim, innerDim, { bias });
    this.toK = new Linear(store, this.child('to_k'), contextDim, innerDim, { bias });
    this.toV = new Linear(store, this.child('to_v'), contextDim, innerDim, { bias });
    this.toOut = new Linear(store, this.child('to_out.0'), innerDim, options.queryDim, { bias: options.outBias ?? true });
  }

  private splitHeads(x: tf.Tensor3D): tf.Tensor4D {
    const [b, n] = x.shape;
    return tf.transpose(tf.reshape(x, [b, n, this.heads, this.dimHead]), [0, 2, 1, 3]);
  }

  /**
   * hidden: [B, N, C] token sequence, or NHWC [B, H, W, C] image (flattened row-major, as diffusers does).
   * context: [B, M, D] for cross-attention, omitted for self-attention.
   * grid: the query grid for hooks when `hidden` is a sequence.
   */
  forward(
    hidden: tf.Tensor,
    context?: tf.Tensor3D | null,
    control?: { controller?: AttentionController; grid?: [number, number] },
  ): tf.Tensor {
    return tf.tidy(() => {
      const imageShape = hidden.rank === 4 ? (hidden.shape as [number, number, number, number]) : null;
      const residual = hidden;
      let x = hidden;
      if (this.groupNorm) {
        if (!imageShape) throw new Error(`${this.prefix}: group_norm attention expects an NHWC image`);
        x = this.groupNorm.forward(x as tf.Tensor4D);
      }
      const [b] = x.shape as [number];
      const sequence = imageShape ? (tf.reshape(x, [b, imageShape[1] * imageShape[2], imageShape[3]]) as tf.Tensor3D) : (x as tf.Tensor3D);
      const keysFrom = context ?? sequence;
      const q = this.splitHeads(this.toQ.forward(sequence));
      const k = this.splitHeads(this.toK.forward(keysFrom));
      const v = this.splitHeads(this.toV.forward(keysFrom));

      const controller = control?.controller;
      let call: AttentionCall | null = null;
      if (controller && this.layer) {
        const grid = imageShape ? [imageShape[1], imageShape[2]] : control?.grid;
        if (!grid) throw new Error(`${this.prefix}: the query grid is unknown`);
        call = { layer: this.layer, batch: b, height: grid[0]!, width: grid[1]!, keys: keysFrom.shape[1] };
      }
      const logitMask = call && controller?.logitMask ? controller.logitMask(call) : null;
      const wantProbs = call !== null && !!controller?.onProbs && (controller.capture?.(call.layer) ?? false);
      const { output, probs } = scaledDotProductAttention(q, k, v, { scale: this.scale, logitMask, returnProbs: wantProbs });
      if (probs && call) controller!.onProbs!(call, probs);

      const merged = tf.reshape(tf.transpose(output, [0, 2, 1, 3]), [b, sequence.shape[1], this.heads * this.dimHead]);
      let out: tf.Tensor = this.toOut.forward(merged);
      if (imageShape) out = tf.reshape(out, imageShape);
      if (this.options.residualConnection) out = tf.add(out, residual);
      const rescale = this.options.rescaleOutputFactor ?? 1;
      return rescale === 1 ? out : tf.div(out, rescale);
    });
  }
}
