// diffusers DDPMScheduler: the training-time forward process (add_noise, get_velocity) and ancestral sampling.
import { tf } from '../runtime/backend.ts';
import { cumprodFloat32, makeBetas, predictionTypeOf, spacedTimesteps, type PredictionType, type SchedulerConfig } from './scheduling_utils.ts';

const f = Math.fround;

/** A per-sample coefficient broadcast over the remaining axes of `like`. */
export function perSample(values: number[], like: tf.Tensor): tf.Tensor {
  return tf.tensor(values, [values.length, ...like.shape.slice(1).map(() => 1)], 'float32');
}

export class DDPMScheduler {
  readonly betas: Float32Array;
  readonly alphas: Float32Array;
  readonly alphasCumprod: Float32Array;
  readonly numTrainTimesteps: number;
  readonly predictionType: PredictionType;
  numInferenceSteps: number | null = null;
  timesteps: Int32Array;

  constructor(readonly config: SchedulerConfig) {
    this.numTrainTimesteps = config.num_train_timesteps ?? 1000;
    this.betas = makeBetas(config);
    this.alphas = this.betas.map((b) => f(1 - b));
    this.alphasCumprod = cumprodFloat32(this.alphas);
    this.predictionType = predictionTypeOf(config);
    this.timesteps = Int32Array.from({ length: this.numTrainTimesteps }, (_, i) => this.numTrainTimesteps - 1 - i);
  }

  setTimesteps(numInferenceSteps: number): void {
    this.numInferenceSteps = numInferenceSteps;
    this.timesteps = spacedTimesteps(this.config, numInferenceSteps);
  }

  private checkTimestep(t: number): void {
    if (!Number.isInteger(t) || t < 0 || t >= this.numTrainTimesteps) throw new Error(`timestep ${t} is outside 0..${this.numTrainTimesteps - 1}`);
  }

  /** Per-sample √ᾱ_t and √(1−ᾱ_t). */
  private noiseCoefficients(timesteps: ArrayLike<number>): { signal: number[]; noise: number[] } {
    const ts = Array.from(timesteps);
    ts.forEach((t) => this.checkTimestep(t));
    return {
      signal: ts.map((t) => f(Math.sqrt(this.alphasCumprod[t]!))),
      noise: ts.map((t) => f(Math.sqrt(f(1 - this.alphasCumprod[t]!)))),
    };
  }

  /** √ᾱ_t·x0 + √(1−ᾱ_t)·ε, one timestep per sample. */
  addNoise(original: tf.Tensor, noise: tf.Tensor, timesteps: ArrayLike<number>): tf.Tensor {
    const c = this.noiseCoefficients(timesteps);
    return tf.tidy(() => tf.add(tf.mul(perSample(c.signal, original), original), tf.mul(perSample(c.noise, noise), noise)));
  }

  /** The v-prediction target √ᾱ_t·ε − √(1−ᾱ_t)·x0. */
  getVelocity(sample: tf.Tensor, noise: tf.Tensor, timesteps: ArrayLike<number>): tf.Tensor {
    const c = this.noiseCoefficients(timesteps);
    return tf.tidy(() => tf.sub(tf.mul(perSample(c.signal, noise), noise), tf.mul(perSample(c.noise, sample), sample)));
  }

  previousTimestep(t: number): number {
    return t - (this.numInferenceSteps ? Math.floor(this.numTrainTimesteps / this.numInferenceSteps) : 1);
  }

  /** fixed_small posterior variance at t (clamped at 1e-20 like diffusers). */
  variance(t: number): number {
    const prev = this.previousTimestep(t);
    const alphaProd = this.alphasCumprod[t]!;
    const alphaProdPrev = prev >= 0 ? this.alphasCumprod[prev]! : 1;
    const currentBeta = f(1 - f(alphaProd / alphaProdPrev));
    const variance = f(f(f(1 - alphaProdPrev) / f(1 - alphaProd)) * currentBeta);
    const type = this.config.variance_type ?? 'fixed_small';
    if (type === 'fixed_small') return Math.max(variance, 1e-20);
    if (type === 'fixed_large') return currentBeta;
    throw new Error(`unsupported variance_type '${type}'`);
  }

  /** One ancestral step. `varianceNoise` is the N(0, I) draw (ignored at t = 0). */
  step(modelOutput: tf.Tensor, t: number, sample: tf.Tensor, varianceNoise: tf.Tensor): { prevSample: tf.Tensor; predOriginalSample: tf.Tensor } {
    this.checkTimestep(t);
    const prev = this.previousTimestep(t);
    const alphaProd = this.alphasCumprod[t]!;
    const alphaProdPrev = prev >= 0 ? this.alphasCumprod[prev]! : 1;
    const betaProd = f(1 - alphaProd);
    const betaProdPrev = f(1 - alphaProdPrev);
    const currentAlpha = f(alphaProd / alphaProdPrev);
    const currentBeta = f(1 - currentAlpha);
    const predOriginalSample = tf.tidy(() => {
      const x0 = predictOriginal(this.predictionType, modelOutput, sample, alphaProd);
      const range = this.config.clip_sample_range ?? 1;
      return this.config.clip_sample ?? false ? tf.clipByValue(x0, -range, range) : x0;
    });
    const prevSample = tf.tidy(() => {
      const originalCoeff = f(f(f(Math.sqrt(alphaProdPrev)) * currentBeta) / betaProd);
      const sampleCoeff = f(f(f(Math.sqrt(currentAlpha)) * betaProdPrev) / betaProd);
      const mean = tf.add(tf.mul(predOriginalSample, originalCoeff), tf.mul(sample, sampleCoeff));
      return t > 0 ? tf.add(mean, tf.mul(varianceNoise, f(Math.sqrt(this.variance(t))))) : mean;
    });
    return { prevSample, predOriginalSample };
  }
}

/** x̂0 from a model output under the three parametrisations. */
export function predictOriginal(type: PredictionType, modelOutput: tf.Tensor, sample: tf.Tensor, alphaProd: number): tf.Tensor {
  return tf.tidy(() => {
    const sqrtAlpha = f(Math.sqrt(alphaProd));
    const sqrtBeta = f(Math.sqrt(f(1 - alphaProd)));
    if (type === 'epsilon') return tf.div(tf.sub(sample, tf.mul(modelOutput, sqrtBeta)), sqrtAlpha);
    if (type === 'v_prediction') return tf.sub(tf.mul(sample, sqrtAlpha), tf.mul(modelOutput, sqrtBeta));
    return modelOutput.clone();
  });
}

/** ε̂ from a model output under the three parametrisations. */
export function predictEpsilon(type: PredictionType, modelOutput: tf.Tensor, sample: tf.Tensor, alphaProd: number): tf.Tensor {
  return tf.tidy(() => {
    const sqrtAlpha = f(Math.sqrt(alphaProd));
    const sqrtBeta = f(Math.sqrt(f(1 - alphaProd)));
    if (type === 'epsilon') return modelOutput.clone();
    if (type === 'v_prediction') return tf.add(tf.mul(modelOutput, sqrtAlpha), tf.mul(sample, sqrtBeta));
    return tf.div(tf.sub(sample, tf.mul(modelOutput, sqrtAlpha)), sqrtBeta);
  });
}
