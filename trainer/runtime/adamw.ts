// AdamW (decoupled weight decay, torch.optim.AdamW semantics) for the trainers: one fused native kernel per
// parameter when the addon is active, tf ops otherwise. Parameters are replaced (Variable.assign), never written in
// place, so tensors that share a parameter's memory (clones) keep their values.
import * as tf from '@tensorflow/tfjs';
import { FUSED } from './fused_kernels.ts';
import { fusedOpsActive } from './fused.ts';

export interface AdamWHyper {
  learningRate: number;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  /** torch's default is 1e-2 */
  weightDecay?: number;
}

interface Moments {
  m: tf.Tensor;
  v: tf.Tensor;
  /** per parameter, as torch: a parameter without a gradient does not advance */
  step: number;
}

/** First and second moments per parameter; dispose() frees them. */
export class AdamWState {
  private readonly moments = new Map<tf.Variable, Moments>();

  /** the step count of a parameter (0 before its first update) */
  stepOf(param: tf.Variable): number {
    return this.moments.get(param)?.step ?? 0;
  }

  /** @internal */
  momentsOf(param: tf.Variable): Moments {
    let moments = this.moments.get(param);
    if (!moments) {
      moments = { m: tf.keep(tf.zerosLike(param)), v: tf.keep(tf.zerosLike(param)), step: 0 };
      this.moments.set(param, moments);
    }
    return moments;
  }

  dispose(): void {
    for (const { m, v } of this.moments.values()) tf.dispose([m, v]);
    this.moments.clear();
  }
}

/**
 * One AdamW step for every parameter that has a gradient (null entries are skipped, like torch's None grads).
 * `useNative: false` forces the tf-ops path.
 */
export function adamwStep(
  params: tf.Variable[],
  grads: (tf.Tensor | null | undefined)[],
  state: AdamWState,
  hyper: AdamWHyper,
  options: { useNative?: boolean } = {},
): void {
  if (params.length !== grads.length) throw new Error(`adamwStep: ${params.length} parameters but ${grads.length} gradients`);
  const h = {
    learningRate: hyper.learningRate,
    beta1: hyper.beta1 ?? 0.9,
    beta2: hyper.beta2 ?? 0.999,
    epsilon: hyper.epsilon ?? 1e-8,
    weightDecay: hyper.weightDecay ?? 1e-2,
  };
  if (!(h.learningRate >= 0) || !(h.beta1 >= 0 && h.beta1 < 1) || !(h.beta2 >= 0 && h.beta2 < 1) || !(h.epsilon > 0) || !(h.weightDecay >= 0)) {
    throw new Error(`adamwStep: invalid hyper-parameters ${JSON.stringify(h)}`);
  }
  params.forEach((param, i) => {
    const grad = grads[i];
    if (!grad) return;
    if (!tf.util.arraysEqual(grad.shape, param.shape)) {
      throw new Error(`adamwStep: gradient [${grad.shape}] does not match parameter ${param.name} [${param.shape}]`);
    }
    const moments = state.momentsOf(param);
    const step = moments.step + 1;
    const native = options.useNative !== false && fusedOpsActive(param, grad);
    const [nextParam, m, v] = native
      ? (tf.engine().runKernel(FUSED.adamw, { param, grad, m: moments.m, v: moments.v }, { ...h, step }) as tf.Tensor[])
      : adamwComposite(param, grad, moments, h, step);
    param.assign(nextParam!);
    tf.dispose([nextParam!, moments.m, moments.v]);
    moments.m = tf.keep(m!);
    moments.v = tf.keep(v!);
    moments.step = step;
  });
}

function adamwComposite(
  param: tf.Tensor,
  grad: tf.Tensor,
  moments: Moments,
  h: Required<AdamWHyper>,
  step: number,
): tf.Tensor[] {
  return tf.tidy(() => {
    const m = tf.add(tf.mul(moments.m, h.beta1), tf.mul(grad, 1 - h.beta1));
    const v = tf.add(tf.mul(moments.v, h.beta2), tf.mul(tf.square(grad), 1 - h.beta2));
    const correction1 = 1 - h.beta1 ** step;
    const correction2 = 1 - h.beta2 ** step;
    const denominator = tf.add(tf.div(tf.sqrt(v), Math.sqrt(correction2)), h.epsilon);
    const decayed = tf.mul(param, 1 - h.learningRate * h.weightDecay);
    const next = tf.sub(decayed, tf.mul(tf.div(m, denominator), h.learningRate / correction1));
    return [next, m, v];
  });
}
