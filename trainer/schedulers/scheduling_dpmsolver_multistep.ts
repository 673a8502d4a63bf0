// diffusers DPMSolverMultistepScheduler with its defaults: DPM-Solver++ (Lu et al. 2022), second order, midpoint
// form, in data prediction (x̂0), first order at the final step. Each step is exact for the probability-flow ODE's
// linear part, and the x̂0 of the previous step extrapolates the rest: at the same number of UNet calls it follows
// the ODE more closely than DDIM, which is this solver's first-order case.
import { tf } from '../runtime/backend.ts';
import { predictOriginal } from './scheduling_ddpm.ts';
import { cumprodFloat32, makeBetas, predictionTypeOf, spacedTimesteps, type PredictionType, type SchedulerConfig } from './scheduling_utils.ts';

const f = Math.fround;

/** Where ᾱ reaches 0 (zero terminal SNR), diffusers clamps it so that λ stays finite. */
const ZERO_SNR_ALPHA_CUMPROD = 2 ** -24;

/** The DPMSolverMultistepScheduler options this solver is: a folder asking for another variant is refused, not misread. */
export const DPM_SOLVER_VARIANT: Readonly<Record<string, unknown>> = {
  algorithm_type: 'dpmsolver++',
  solver_order: 2,
  solver_type: 'midpoint',
  final_sigmas_type: 'zero',
  euler_at_final: false,
  use_karras_sigmas: false,
  use_exponential_sigmas: false,
  use_beta_sigmas: false,
  use_lu_lambdas: false,
};

export interface DPMSolverStepOutput {
  prevSample: tf.Tensor;
  predOriginalSample: tf.Tensor;
}

export class DPMSolverMultistepScheduler {
  readonly alphasCumprod: Float32Array;
  readonly predictionType: PredictionType;
  readonly initNoiseSigma = 1;
  timesteps: Int32Array = new Int32Array();
  private stepIndex = 0;
  /** x̂0 and λ of the previous step (the multistep history), kept across tidy scopes */
  private previous: { original: tf.Tensor; lambda: number } | null = null;

  constructor(readonly config: SchedulerConfig) {
    if (config.thresholding) throw new Error('DPM-Solver thresholding is not supported');
    for (const [key, supported] of Object.entries(DPM_SOLVER_VARIANT)) {
      if (config[key] !== undefined && config[key] !== supported) {
        throw new Error(`DPM-Solver ${key} ${JSON.stringify(config[key])} is not supported (only ${JSON.stringify(supported)})`);
      }
    }
    const alphasCumprod = cumprodFloat32(makeBetas(config).map((b) => f(1 - b)));
    if (config.rescale_betas_zero_snr) alphasCumprod[alphasCumprod.length - 1] = ZERO_SNR_ALPHA_CUMPROD;
    this.alphasCumprod = alphasCumprod;
    this.predictionType = predictionTypeOf(config);
  }

  setTimesteps(numInferenceSteps: number): Int32Array {
    this.timesteps = spacedTimesteps(this.config, numInferenceSteps);
    this.stepIndex = 0;
    this.dispose();
    return this.timesteps;
  }

  /** α_t = √ᾱ_t and σ_t = √(1−ᾱ_t) of a timestep; the step after the last one is the data itself (σ = 0). */
  private coefficients(t: number | null): { alpha: number; sigma: number; lambda: number } {
    if (t === null) return { alpha: 1, sigma: 0, lambda: Infinity };
    const alphaCumprod = this.alphasCumprod[t]!;
    const alpha = Math.sqrt(alphaCumprod);
    const sigma = Math.sqrt(1 - alphaCumprod);
    return { alpha, sigma, lambda: Math.log(alpha) - Math.log(sigma) };
  }

  /** x_{s} from x_t, where s is the next timestep of setTimesteps' list (the data after the last one). */
  step(modelOutput: tf.Tensor, t: number, sample: tf.Tensor): DPMSolverStepOutput {
    if (this.timesteps.length === 0) throw new Error('call setTimesteps before stepping the DPM-Solver scheduler');
    if (this.timesteps[this.stepIndex] !== t) throw new Error(`timestep ${t} is not step ${this.stepIndex} of this schedule (${this.timesteps[this.stepIndex]})`);
    const last = this.stepIndex === this.timesteps.length - 1;
    const current = this.coefficients(t);
    const next = this.coefficients(last ? null : this.timesteps[this.stepIndex + 1]!);
    const predOriginalSample = predictOriginal(this.predictionType, modelOutput, sample, this.alphasCumprod[t]!);
    // e^{-h} with h = λ_s − λ_t; the last step lands on the data (λ = ∞) and takes x̂0 as it is
    const decay = Math.exp(current.lambda - next.lambda);
    const prevSample = tf.tidy(() => {
      const firstOrder = tf.add(tf.mul(sample, next.sigma / current.sigma), tf.mul(predOriginalSample, next.alpha * (1 - decay)));
      if (!this.previous || last) return firstOrder;
      const ratio = (current.lambda - this.previous.lambda) / (next.lambda - current.lambda);
      const difference = tf.div(tf.sub(predOriginalSample, this.previous.original), ratio);
      return tf.add(firstOrder, tf.mul(difference, 0.5 * next.alpha * (1 - decay)));
    });
    this.previous?.original.dispose();
    this.previous = { original: tf.keep(predOriginalSample.clone()), lambda: current.lambda };
    this.stepIndex++;
    return { prevSample, predOriginalSample };
  }

  /** Frees the multistep history. */
  dispose(): void {
    this.previous?.original.dispose();
    this.previous = null;
  }
}
