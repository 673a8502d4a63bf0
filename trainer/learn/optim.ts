// The learner's optimizer (the runtime's AdamW, torch semantics), total-norm gradient clipping and the diffusers LR
// schedules. Optimizer state is plain Float32Arrays on export so checkpoints can store it exactly.
import { tf } from '../runtime/backend.ts';
import { adamwStep, AdamWState } from '../runtime/adamw.ts';
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

export interface AdamWSnapshot {
  step: number;
  /** first and second moments, one pair per parameter in the optimizer's order */
  moments: { m: Float32Array; v: Float32Array }[];
}

/**
 * torch.optim.AdamW over a fixed list of parameters, stepped by the runtime's adamwStep (a fused native kernel when
 * the addon is active), with its moments exportable for checkpoints.
 */
export class AdamW {
  private readonly state = new AdamWState();

  constructor(
    private readonly params: tf.Variable[],
    private readonly options: Pick<OptimizerOptions, 'betas' | 'weightDecay' | 'eps'>,
  ) {}

  get steps(): number {
    return this.state.stepOf(this.params[0]!);
  }

  /** One update with `grads` (same order as the parameters) at learning rate `lr`. */
  step(grads: tf.Tensor[], lr: number): void {
    if (grads.length !== this.params.length) throw new Error(`AdamW: ${grads.length} gradients for ${this.params.length} parameters`);
    const [beta1, beta2] = this.options.betas;
    adamwStep(this.params, grads, this.state, { learningRate: lr, beta1, beta2, epsilon: this.options.eps, weightDecay: this.options.weightDecay });
  }

  getState(): AdamWSnapshot {
    return {
      step: this.steps,
      moments: this.params.map((param) => {
        const { m, v } = this.state.momentsOf(param);
        return { m: Float32Array.from(m.dataSync() as Float32Array), v: Float32Array.from(v.dataSync() as Float32Array) };
      }),
    };
  }

  setState(snapshot: AdamWSnapshot): void {
    if (snapshot.moments.length !== this.params.length) throw new Error(`AdamW state has ${snapshot.moments.length} parameters, the optimizer ${this.params.length}`);
    snapshot.moments.forEach(({ m, v }, i) => {
      const param = this.params[i]!;
      if (m.length !== param.size || v.length !== param.size) throw new Error(`AdamW state: parameter ${i} has the wrong size`);
      const moments = this.state.momentsOf(param);
      tf.dispose([moments.m, moments.v]);
      moments.m = tf.keep(tf.tensor(m, param.shape));
      moments.v = tf.keep(tf.tensor(v, param.shape));
      moments.step = snapshot.step;
    });
  }

  dispose(): void {
    this.state.dispose();
  }
}
