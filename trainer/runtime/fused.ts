// Fused ops on the native kernels (fused_kernels.ts), with tfjs autodiff. trainer/nn/functional.ts dispatches to them
// when `fusedOpsActive(...)` and keeps its composite tf path as the reference and the fallback.
import * as tf from '@tensorflow/tfjs';
import { FUSED } from './fused_kernels.ts';
import { nativeStatus } from './native.ts';

/** Whether the fused kernels can run on these tensors: native addon loaded, wasm backend, non-empty float32. */
export function fusedOpsActive(...tensors: tf.Tensor[]): boolean {
  return nativeStatus().active && tf.getBackend() === 'wasm' && tensors.every((t) => t.dtype === 'float32' && t.size > 0);
}

function run(kernelName: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown> = {}): tf.Tensor[] {
  const out = tf.engine().runKernel(kernelName, inputs as tf.NamedTensorMap, attrs as tf.NamedAttrMap);
  return Array.isArray(out) ? out : [out as tf.Tensor];
}

/** Runs a kernel with extra statistics outputs and keeps only the first. */
function firstOutput<T extends tf.Tensor>(kernelName: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown>): T {
  const [result, ...statistics] = run(kernelName, inputs, attrs);
  for (const t of statistics) t.dispose();
  return result as T;
}

export function fusedSilu<T extends tf.Tensor>(x: T): T {
  return run(FUSED.silu, { x })[0] as T;
}

export function fusedGelu<T extends tf.Tensor>(x: T): T {
  return run(FUSED.gelu, { x })[0] as T;
}

/** softmax over the last axis */
export function fusedSoftmax<T extends tf.Tensor>(x: T): T {
  return run(FUSED.softmax, { x })[0] as T;
}

/** GroupNorm of NHWC x with per-channel gamma and beta ([C]). */
export function fusedGroupNorm(x: tf.Tensor4D, groups: number, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor4D {
  const channels = x.shape[3];
  if (channels % groups !== 0) throw new Error(`GroupNorm: ${channels} channels are not divisible into ${groups} groups`);
  requireVector(gamma, channels, 'GroupNorm gamma');
  requireVector(beta, channels, 'GroupNorm beta');
  return firstOutput(FUSED.groupNorm, { x, gamma, beta }, { groups, eps });
}

/** LayerNorm over the last axis with gamma and beta of that size. */
export function fusedLayerNorm<T extends tf.Tensor>(x: T, gamma: tf.Tensor, beta: tf.Tensor, eps: number): T {
  const channels = x.shape[x.rank - 1]!;
  requireVector(gamma, channels, 'LayerNorm gamma');
  requireVector(beta, channels, 'LayerNorm beta');
  return firstOutput(FUSED.layerNorm, { x, gamma, beta }, { eps });
}

function requireVector(t: tf.Tensor, length: number, what: string): void {
  if (t.rank !== 1 || t.shape[0] !== length) throw new Error(`${what} must have shape [${length}], got [${t.shape}]`);
}

/**
 * softmax(scale·QKᵀ + logitMask)·V in one kernel for q [B,H,N,d], k/v [B,H,M,d]; the [B,H,N,M] scores exist only
 * row by row unless `returnProbs` asks for them; then they are kept (tf.keep) and the caller must dispose them.
 */
export function fusedAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  options: { scale: number; logitMask?: tf.Tensor | null; returnProbs?: boolean },
): { output: tf.Tensor4D; probs?: tf.Tensor4D } {
  const [batch, heads, , headDim] = q.shape;
  const same = (t: tf.Tensor4D) => t.shape[0] === batch && t.shape[1] === heads && t.shape[3] === headDim;
  if (!same(k) || !same(v) || k.shape[2] !== v.shape[2]) {
    throw new Error(`attention: q [${q.shape}], k [${k.shape}] and v [${v.shape}] do not match`);
  }
  const attrs = { scale: options.scale, returnProbs: options.returnProbs === true };
  const outputs = options.logitMask
    ? run(FUSED.attentionMasked, { q, k, v, mask: options.logitMask }, attrs)
    : run(FUSED.attention, { q, k, v }, attrs);
  const [output, lse, probs] = outputs as [tf.Tensor4D, tf.Tensor, tf.Tensor4D | undefined];
  lse.dispose();
  // As in the composite path, the caller owns the probabilities beyond any enclosing tidy (the attention hooks do).
  return probs ? { output, probs: tf.keep(probs) } : { output };
}
