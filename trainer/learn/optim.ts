// AdamW with PyTorch's update rule, total-norm gradient clipping and the diffusers LR schedules the learner uses.
// Optimizer state is plain Float32Arrays on export so checkpoints can store it exactly.
import { tf } from '../runtime/backend.ts';
import type { OptimizerOptions } from './options.ts';

/**
 * The learning-rate factor at optimizer step `step` (0-based). cosine = diffusers get_cosine_with_hard_restarts
 * with one cycle: a linear warm-up from 0, then one cosine decay to 0 at `totalSteps`. As in diffusers, the first
 * step of a warm-up runs at factor 0.
 */
export function lrFactor(options: Pick<OptimizerOptions, 'schedule' | 'warmupSteps'>, step: number, totalSteps: number): number {
  if (options.schedule === 'constant') return 1;
  const warmup = options.warmupSteps;
  if (step < warmup) return step / Math.max(1, warmup);
  const progress = (step - warmup) / Math.max(1, totalSteps - warmup);
  if (progress >= 1) return 0;
  return 0.5 * (1 + Math.cos(Math.PI * (progress % 1)));
}

/** Scales `grads` in place so their joint L2 norm is at most maxNorm (torch clip_grad_norm_); returns the norm before. */
export function clipGradNorm(grads: tf.Tensor[], maxNorm: number): { norm: number; clipped: tf.Tensor[] } {
  const norm = Math.sqrt(grads.reduce((sum, g) => sum + tf.tidy(() => tf.sum(tf.square(g)).dataSync()[0]!), 0));
  const coefficient = maxNorm / (norm + 1e-6);
  if (coefficient >= 1) return { norm, clipped: grads.map((g) => g.clone()) };
  return { norm, clipped: grads.map((g) => tf.tidy(() => tf.mul(g, coefficient))) };
}

export interface AdamWState {
  step: number;
  /** first and second moments, one pair per parameter in the optimizer's order */
  moments: { m: Float32Array; v: Float32Array }[];
}

/**
 * torch.optim.AdamW: decoupled weight decay p ← p·(1 − lr·wd), then the bias-corrected Adam step
 * p ← p − (lr/(1−β₁ᵗ))·m / (√v/√(1−β₂ᵗ) + ε).
 */
export class AdamW {
  private m: tf.Variable[];
  private v: tf.Variable[];
  private stepCount = 0;

  constructor(
    private readonly params: tf.Variable[],
    private readonly options: Pick<OptimizerOptions, 'betas' | 'weightDecay' | 'eps'>,
  ) {
    this.m = params.map((p) => tf.variable(tf.zerosLike(p), false));
    this.v = params.map((p) => tf.variable(tf.zerosLike(p), false));
  }

  get steps(): number {
    return this.stepCount;
  }

  /** One update with `grads` (same order as the parameters) at learning rate `lr`. */
  step(grads: tf.Tensor[], lr: number): void {
    if (grads.length !== this.params.length) throw new Error(`AdamW: ${grads.length} gradients for ${this.params.length} parameters`);
    this.stepCount++;
    const [beta1, beta2] = this.options.betas;
    const correction1 = 1 - beta1 ** this.stepCount;
    const correction2Sqrt = Math.sqrt(1 - beta2 ** this.stepCount);
    const stepSize = lr / correction1;
    this.params.forEach((param, i) => {
      const grad = grads[i]!;
      tf.tidy(() => {
        const m = tf.add(tf.mul(this.m[i]!, beta1), tf.mul(grad, 1 - beta1));
        const v = tf.add(tf.mul(this.v[i]!, beta2), tf.mul(tf.square(grad), 1 - beta2));
        const decayed = tf.mul(param, 1 - lr * this.options.weightDecay);
        const denom = tf.add(tf.div(tf.sqrt(v), correction2Sqrt), this.options.eps);
        param.assign(tf.sub(decayed, tf.mul(tf.div(m, denom), stepSize)));
        this.m[i]!.assign(m);
        this.v[i]!.assign(v);
      });
    });
  }

  getState(): AdamWState {
    return {
      step: this.stepCount,
      moments: this.m.map((m, i) => ({ m: Float32Array.from(m.dataSync() as Float32Array), v: Float32Array.from(this.v[i]!.dataSync() as Float32Array) })),
    };
  }

  setState(state: AdamWState): void {
    if (state.moments.length !== this.params.length) throw new Error(`AdamW state has ${state.moments.length} parameters, the optimizer ${this.params.length}`);
    state.moments.forEach(({ m, v }, i) => {
      const shape = this.params[i]!.shape;
      if (m.length !== this.params[i]!.size || v.length !== this.params[i]!.size) throw new Error(`AdamW state: parameter ${i} has the wrong size`);
      tf.tidy(() => {
        this.m[i]!.assign(tf.tensor(m, shape));
        this.v[i]!.assign(tf.tensor(v, shape));
      });
    });
    this.stepCount = state.step;
  }

  dispose(): void {
    for (const t of [...this.m, ...this.v]) t.dispose();
  }
}
