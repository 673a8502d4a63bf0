// Token grounding for the diffusion stage (TokenCompose, Wang et al. 2024, L_token): the cross-attention map of each
// word that names an object should fall inside that object's mask. The world renders exact instance masks, so the
// model can be taught where its words belong instead of spreading them evenly over the image.
import { resizeArea, type Mask } from '../learn/masks.ts';
import type { AttentionCall, AttentionController, AttentionLayerInfo } from '../models/attention_processor.ts';
import { tf } from '../runtime/backend.ts';
import type { CLIPTokenizer } from '../tokenizer/clip_tokenizer.ts';
import { objectWords, type SceneObject } from '../world/scene.ts';

export interface TokenGrounding {
  /** λ: the term's weight next to the diffusion loss */
  weight: number;
  /** UNet levels (0: the latent's own size, 1: half of it, ...) whose cross-attention layers are grounded */
  levels: number[];
  /** only samples noised to a timestep below this are grounded (at pure noise no layout is there to attend to) */
  maxTimestep: number;
}

/**
 * The positions in `ids` of each object's words, searched in caption order (so the k-th of two equal phrases gets
 * the k-th occurrence); null for an object whose words are not all there (cut off by truncation).
 */
export function objectWordPositions(ids: readonly number[], objectWordIds: readonly (readonly number[])[]): (number[] | null)[] {
  let from = 0;
  return objectWordIds.map((words) => {
    if (words.length === 0) throw new Error('an object needs at least one word');
    for (let start = from; start + words.length <= ids.length; start++) {
      if (words.every((id, i) => ids[start + i] === id)) {
        from = start + words.length;
        return words.map((_, i) => start + i);
      }
    }
    return null;
  });
}

/** objectWordPositions for a caption's objects, each object's words tokenized as the caption tokenizes them. */
export function captionObjectWordPositions(
  tokenizer: CLIPTokenizer,
  objects: readonly Pick<SceneObject, 'shape' | 'colour' | 'texture'>[],
  ids: readonly number[],
): (number[] | null)[] {
  return objectWordPositions(ids, objects.map((object) => tokenizer.encode(objectWords(object).join(' '), { addSpecialTokens: false }).inputIds));
}

/** One training sample's grounding: each object's word positions (null: not grounded) and its full-size mask. */
export interface GroundedSample {
  objects: { positions: number[] | null; mask: Mask }[];
}

/** The targets of one map size for a batch: token masks [batch, side², keys] and token weights [batch, keys]. */
export interface GroundingTargets {
  side: number;
  tokenMasks: Float32Array;
  tokenWeights: Float32Array;
}

/**
 * Column k of a sample's token masks is the area-resized mask of the object that word k names (zeros for words that
 * name none), and its weight is 1 exactly for those words. A null sample (caption dropped, or too noisy) has none.
 */
export function groundingTargets(samples: readonly (GroundedSample | null)[], keys: number, side: number): GroundingTargets {
  const cells = side * side;
  const tokenMasks = new Float32Array(samples.length * cells * keys);
  const tokenWeights = new Float32Array(samples.length * keys);
  samples.forEach((sample, b) => {
    for (const object of sample?.objects ?? []) {
      if (!object.positions) continue;
      const small = resizeArea(object.mask, side, side).data;
      for (const k of object.positions) {
        if (k < 0 || k >= keys) throw new Error(`word position ${k} is outside the ${keys} keys`);
        tokenWeights[b * keys + k] = 1;
        for (let q = 0; q < cells; q++) tokenMasks[(b * cells + q) * keys + k] = small[q]!;
      }
    }
  });
  return { side, tokenMasks, tokenWeights };
}

/**
 * L_token without its weight: for every weighted word, (1 − the share of its head-averaged attention map that falls
 * inside its mask)², averaged over the weighted words. probs [B, heads, queries, keys], tokenMasks [B, queries, keys],
 * tokenWeights [B, keys] with at least one non-zero weight.
 */
export function tokenGroundingLoss(probs: tf.Tensor4D, tokenMasks: tf.Tensor3D, tokenWeights: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const maps = tf.mean(probs, 1) as tf.Tensor3D;
    const inside = tf.sum(tf.mul(maps, tokenMasks), 1);
    const total = tf.sum(maps, 1);
    const outsideShare = tf.sub(1, tf.div(inside, total));
    const weighted = tf.sum(tf.mul(tf.square(outsideShare), tokenWeights));
    return tf.div(weighted, tf.sum(tokenWeights)) as tf.Scalar;
  });
}

/** Adds up L_token over the grounded cross-attention layers of one UNet pass; `mean()` is the term for the loss. */
export class TokenGroundingController implements AttentionController {
  private readonly terms: tf.Scalar[] = [];

  /** targets: per map side, tokenMasks [B, side², keys] and tokenWeights [B, keys] of the pass's samples */
  constructor(
    private readonly levels: ReadonlySet<number>,
    private readonly targets: ReadonlyMap<number, { tokenMasks: tf.Tensor3D; tokenWeights: tf.Tensor2D }>,
  ) {}

  capture(layer: AttentionLayerInfo): boolean {
    return layer.kind === 'cross' && this.levels.has(layer.level);
  }

  onProbs(call: AttentionCall, probs: tf.Tensor4D): void {
    const target = this.targets.get(call.height);
    if (!target || call.width !== call.height) {
      probs.dispose();
      throw new Error(`${call.layer.id}: no grounding targets for a ${call.height}x${call.width} map`);
    }
    this.terms.push(tf.keep(tokenGroundingLoss(probs, target.tokenMasks, target.tokenWeights)));
    probs.dispose();
  }

  /** The mean over the grounded layers; frees the per-layer terms. */
  mean(): tf.Scalar {
    if (this.terms.length === 0) throw new Error(`no cross-attention layer at levels ${[...this.levels].join(', ')} was run`);
    const mean = tf.tidy(() => tf.mean(tf.stack(this.terms)) as tf.Scalar);
    tf.dispose(this.terms);
    this.terms.length = 0;
    return mean;
  }
}
