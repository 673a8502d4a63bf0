// The guidance losses of MIFO synthesis (Eqs. 6-14; reference `_save_loss_values`, `_compute_loss_term`,
// `_compute_loss`). Per loss layer and subject s, from the masked conditional attention probabilities:
//   F_s = Σ_heads Σ_{x ∈ box_s} Σ_{k ∈ keys_s} p[x, k]     (in-box mass)
//   G_s = Σ_heads Σ_{x ∈ Ω}     Σ_{k ∈ keys_s} p[x, k]     (out-of-box mass; Ω = pixels in no box)
// with keys_s = the subject's tokens and EOS for cross-attention, the pixels of box_s for self-attention.
// F and G are averaged over the layers of one type, then per (sample, subject):
//   in-box reward  R = (1 − F/(F + S·G))²   (S = 1 for MIFO, the number of boxes for Bounded Attention)
//   out-of-box penalty P = ln(1 + G)
//   L^X = R + α·P, and L = λ_CA·Σ L^CA + λ_SA·Σ L^SA.
import { tf } from '../runtime/backend.ts';
import type { RegionSet } from './regions.ts';

export interface AttentionMass {
  /** [B, S] */
  inBox: tf.Tensor2D;
  /** [B, S] */
  outOfBox: tf.Tensor2D;
}

/** [K, S] selector of each subject's cross-attention keys: its token positions and EOS. */
export function crossKeySelector(subjectPositions: readonly (readonly number[])[], eosIndex: number, keys: number): tf.Tensor2D {
  const count = subjectPositions.length;
  const data = new Float32Array(keys * count);
  subjectPositions.forEach((positions, s) => {
    for (const k of [...positions, eosIndex]) {
      if (k < 0 || k >= keys) throw new Error(`key position ${k} is outside the ${keys} keys`);
      data[k * count + s] = 1;
    }
  });
  return tf.tensor2d(data, [keys, count]);
}

/** [Q, S]: 1 where pixel q is in subject s's region. Also the self-attention key selector (keys are pixels). */
export function regionSelector(regions: RegionSet): tf.Tensor2D {
  const size = regions.height * regions.width;
  const count = regions.subjects.length;
  const data = new Float32Array(size * count);
  regions.subjects.forEach((mask, s) => {
    for (let q = 0; q < size; q++) if (mask[q]) data[q * count + s] = 1;
  });
  return tf.tensor2d(data, [size, count]);
}

/** F and G of one layer. probs: [B, heads, Q, K]; keySelector: [K, S]; regions on the layer's Q = h·w grid. */
export function attentionMass(probs: tf.Tensor4D, keySelector: tf.Tensor2D, regions: RegionSet): AttentionMass {
  return tf.tidy(() => {
    const [batch, , queries, keys] = probs.shape;
    const subjects = keySelector.shape[1];
    if (queries !== regions.height * regions.width) throw new Error(`attention has ${queries} queries but the regions are ${regions.height}x${regions.width}`);
    if (keySelector.shape[0] !== keys) throw new Error(`key selector has ${keySelector.shape[0]} rows for ${keys} keys`);
    if (regions.subjects.length !== subjects) throw new Error(`${regions.subjects.length} regions for ${subjects} subjects`);
    const summedHeads = tf.sum(probs, 1);
    const perSubject = tf.reshape(tf.matMul(tf.reshape(summedHeads, [batch * queries, keys]), keySelector), [batch, queries, subjects]);
    const inBox = tf.sum(tf.mul(perSubject, tf.expandDims(regionSelector(regions), 0)), 1) as tf.Tensor2D;
    const background = tf.tensor3d(Float32Array.from(regions.background), [1, queries, 1]);
    const outOfBox = tf.sum(tf.mul(perSubject, background), 1) as tf.Tensor2D;
    return { inBox, outOfBox };
  });
}

/** (1 − F/(F + S·G))² */
export function inBoxReward(inBox: tf.Tensor, outOfBox: tf.Tensor, backgroundFactor = 1): tf.Tensor {
  return tf.tidy(() => tf.square(tf.sub(1, tf.div(inBox, tf.add(inBox, tf.mul(outOfBox, backgroundFactor))))));
}

/** ln(1 + G) */
export function outOfBoxPenalty(outOfBox: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.log1p(outOfBox));
}

export interface TermOptions {
  alpha: number;
  inBox: boolean;
  outOfBox: boolean;
  /** S in the reward's S·G: 1 for MIFO, the number of boxes for Bounded Attention */
  backgroundFactor: number;
}

/** L^X per (sample, subject) [B, S] from the per-layer masses of one attention type. */
export function termLoss(perLayer: readonly AttentionMass[], options: TermOptions): tf.Tensor2D {
  if (perLayer.length === 0) throw new Error('no loss layer of this type produced attention');
  if (!options.inBox && !options.outOfBox) throw new Error('the loss needs the in-box term, the out-of-box term, or both');
  return tf.tidy(() => {
    const meanIn = tf.mean(tf.stack(perLayer.map((m) => m.inBox)), 0);
    const meanOut = tf.mean(tf.stack(perLayer.map((m) => m.outOfBox)), 0);
    const terms: tf.Tensor[] = [];
    if (options.inBox) terms.push(inBoxReward(meanIn, meanOut, options.backgroundFactor));
    if (options.outOfBox) terms.push(tf.mul(outOfBoxPenalty(meanOut), options.alpha));
    return (terms.length === 1 ? terms[0]! : tf.add(terms[0]!, terms[1]!)) as tf.Tensor2D;
  });
}

/** λ_CA·Σ L^CA + λ_SA·Σ L^SA; a null term (weight 0, never computed) contributes nothing. */
export function totalLoss(cross: tf.Tensor2D | null, self: tf.Tensor2D | null, lambdaCross: number, lambdaSelf: number): tf.Scalar {
  return tf.tidy(() => {
    let loss: tf.Tensor = tf.scalar(0);
    if (cross) loss = tf.add(loss, tf.mul(tf.sum(cross), lambdaCross));
    if (self) loss = tf.add(loss, tf.mul(tf.sum(self), lambdaSelf));
    return loss as tf.Scalar;
  });
}
