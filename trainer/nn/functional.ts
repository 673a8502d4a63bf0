// Stateless tensor functions shared by every model. Layouts: images NHWC, sequences [batch, tokens, channels],
// attention [batch, heads, queries, keys]. silu, gelu, softmax, groupNorm, layerNorm and scaledDotProductAttention run
// on the native fused kernels when they are active (runtime/fused.ts); the composite tf versions below are the
// reference and the fallback, exported as `compositeOps`.
import { tf } from '../runtime/backend.ts';
import { fusedAttention, fusedGelu, fusedGroupNorm, fusedLayerNorm, fusedOpsActive, fusedSilu, fusedSoftmax } from '../runtime/fused.ts';

export type Activation = 'silu' | 'swish' | 'gelu' | 'quick_gelu' | 'gelu_new' | 'gelu_pytorch_tanh' | 'relu';

export function silu(x: tf.Tensor): tf.Tensor {
  return fusedOpsActive(x) ? fusedSilu(x) : siluComposite(x);
}

function siluComposite(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)));
}

/** Exact GELU, 0.5·x·(1 + erf(x/√2)) (PyTorch's default). */
export function gelu(x: tf.Tensor): tf.Tensor {
  return fusedOpsActive(x) ? fusedGelu(x) : geluComposite(x);
}

function geluComposite(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)));
}

/** softmax over the last axis. */
export function softmax<T extends tf.Tensor>(x: T): T {
  return fusedOpsActive(x) ? fusedSoftmax(x) : (tf.softmax(x) as T);
}

/** tanh approximation of GELU ("gelu_new" in transformers). */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
    return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
  });
}

/** CLIP's x·σ(1.702·x). */
export function quickGelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(tf.mul(x, 1.702))));
}

export function activation(name: string): (x: tf.Tensor) => tf.Tensor {
  switch (name) {
    case 'silu':
    case 'swish':
      return silu;
    case 'gelu':
      return gelu;
    case 'quick_gelu':
      return quickGelu;
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
      return geluTanh;
    case 'relu':
      return tf.relu;
    default:
      throw new Error(`unsupported activation '${name}'`);
  }
}

/** GroupNorm over an NHWC tensor (biased variance, as torch.nn.GroupNorm). */
export function groupNorm(x: tf.Tensor4D, groups: number, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor4D {
  if (fusedOpsActive(x, gamma, beta) && isVector(gamma, x.shape[3]) && isVector(beta, x.shape[3])) {
    return fusedGroupNorm(x, groups, gamma, beta, eps);
  }
  return groupNormComposite(x, groups, gamma, beta, eps);
}

function isVector(t: tf.Tensor, length: number): boolean {
  return t.rank === 1 && t.shape[0] === length;
}

function groupNormComposite(x: tf.Tensor4D, groups: number, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape;
    if (c % groups !== 0) throw new Error(`GroupNorm: ${c} channels are not divisible into ${groups} groups`);
    const grouped = tf.reshape(x, [b, h * w, groups, c / groups]);
    const { mean, variance } = tf.moments(grouped, [1, 3], true);
    const normalized = tf.mul(tf.sub(grouped, mean), tf.rsqrt(tf.add(variance, eps)));
    return tf.add(tf.mul(tf.reshape(normalized, [b, h, w, c]), gamma), beta) as tf.Tensor4D;
  });
}

/** LayerNorm over the last axis. */
export function layerNorm<T extends tf.Tensor>(x: T, gamma: tf.Tensor, beta: tf.Tensor, eps: number): T {
  const channels = x.shape[x.rank - 1]!;
  if (fusedOpsActive(x, gamma, beta) && isVector(gamma, channels) && isVector(beta, channels)) {
    return fusedLayerNorm(x, gamma, beta, eps);
  }
  return layerNormComposite(x, gamma, beta, eps);
}

function layerNormComposite<T extends tf.Tensor>(x: T, gamma: tf.Tensor, beta: tf.Tensor, eps: number): T {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), gamma), beta) as T;
  });
}

export interface AttentionResult {
  /** [batch, heads, queries, head_dim] */
  output: tf.Tensor4D;
  /** post-softmax probabilities [batch, heads, queries, keys], only when asked for */
  probs?: tf.Tensor4D;
}

/**
 * softmax(scale·QKᵀ + logitMask)·V for q [B,H,N,d], k/v [B,H,M,d]. `logitMask` is additive (0 or a large negative
 * value) and broadcasts over [B,H,N,M].
 */
export function scaledDotProductAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  options: { scale: number; logitMask?: tf.Tensor | null; returnProbs?: boolean },
): AttentionResult {
  const tensors = options.logitMask ? [q, k, v, options.logitMask] : [q, k, v];
  return fusedOpsActive(...tensors) ? fusedAttention(q, k, v, options) : attentionComposite(q, k, v, options);
}

function attentionComposite(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  options: { scale: number; logitMask?: tf.Tensor | null; returnProbs?: boolean },
): AttentionResult {
  let probs: tf.Tensor4D | undefined;
  const output = tf.tidy(() => {
    let scores = tf.mul(tf.matMul(q, k, false, true), options.scale) as tf.Tensor4D;
    if (options.logitMask) scores = tf.add(scores, options.logitMask);
    const p = tf.softmax(scores) as tf.Tensor4D;
    if (options.returnProbs) probs = tf.keep(p);
    return tf.matMul(p, v) as tf.Tensor4D;
  });
  return probs ? { output, probs } : { output };
}

/** The composite tf implementations: the reference the fused kernels are tested against, and their fallback. */
export const compositeOps = {
  silu: siluComposite,
  gelu: geluComposite,
  softmax: <T extends tf.Tensor>(x: T): T => tf.softmax(x) as T,
  groupNorm: groupNormComposite,
  layerNorm: layerNormComposite,
  scaledDotProductAttention: attentionComposite,
};
