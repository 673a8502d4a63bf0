// diffusers DDIMScheduler (Song et al. 2021), deterministic for eta = 0.
import { tf } from '../runtime/backend.ts';
import { predictEpsilon, predictOriginal } from './scheduling_ddpm.ts';
import { cumprodFloat32, makeBetas, predictionTypeOf, spacedTimesteps, type PredictionType, type SchedulerConfig } from './scheduling_utils.ts';

const f = Math.fround;

export interface DDIMStepOutput {
  prevSample: tf.Tensor;
  predOriginalSample: tf.Tensor;
}

export class DDIMScheduler {
  readonly betas: Float32Array;
  readonly alphasCumprod: Float32Array;
  readonly finalAlphaCumprod: number;
  readonly numTrainTimesteps: number;
  readonly predictionType: PredictionType;
  readonly initNoiseSigma = 1;
  numInferenceSteps: number | null = null;
  timesteps: Int32Array = new Int32Array();

  constructor(readonly config: SchedulerConfig) {
    if (config.thresholding) throw new Error('DDIM thresholding is not supported');
    this.numTrainTimesteps = config.num_train_timesteps ?? 1000;
    this.betas = makeBetas(config);
    this.alphasCumprod = cumprodFloat32(this.betas.map((b) => f(1 - b)));
    this.finalAlphaCumprod = config.set_alpha_to_one ?? true ? 1 : this.alphasCumprod[0]!;
    this.predictionType = predictionTypeOf(config);
  }

  setTimesteps(numInferenceSteps: number): Int32Array {
    this.numInferenceSteps = numInferenceSteps;
    this.timesteps = spacedTimesteps(this.config, numInferenceSteps);
    return this.timesteps;
  }

  previousTimestep(t: number): number {
    if (this.numInferenceSteps === null) throw new Error('call setTimesteps before stepping the DDIM scheduler');
    return t - Math.floor(this.numTrainTimesteps / this.numInferenceSteps);
  }

  alphaProdPrev(t: number): number {
    const prev = this.previousTimestep(t);
    return prev >= 0 ? this.alphasCumprod[prev]! : this.finalAlphaCumprod;
  }

  /** x_{t-1} from x_t and the model output; with eta > 0 `varianceNoise` adds the stochastic part. */
  step(modelOutput: tf.Tensor, t: number, sample: tf.Tensor, options: { eta?: number; varianceNoise?: tf.Tensor } = {}): DDIMStepOutput {
    if (!Number.isInteger(t) || t < 0 || t >= this.numTrainTimesteps) throw new Error(`timestep ${t} is outside 0..${this.numTrainTimesteps - 1}`);
    const alphaProd = this.alphasCumprod[t]!;
    const alphaProdPrev = this.alphaProdPrev(t);
    const eta = options.eta ?? 0;
    const predOriginalSample = tf.tidy(() => {
      const x0 = predictOriginal(this.predictionType, modelOutput, sample, alphaProd);
      const range = this.config.clip_sample_range ?? 1;
      return this.config.clip_sample ?? true ? tf.clipByValue(x0, -range, range) : x0;
    });
    const prevSample = tf.tidy(() => {
      const epsilon = predictEpsilon(this.predictionType, modelOutput, sample, alphaProd);
      const variance = f(f(f(1 - alphaProdPrev) / f(1 - alphaProd)) * f(1 - f(alphaProd / alphaProdPrev)));
      const std = f(eta * Math.sqrt(variance));
      const direction = tf.mul(epsilon, f(Math.sqrt(f(f(1 - alphaProdPrev) - f(std * std)))));
      const prev = tf.add(tf.mul(predOriginalSample, f(Math.sqrt(alphaProdPrev))), direction);
      if (eta === 0) return prev;
      if (!options.varianceNoise) throw new Error('DDIM with eta > 0 needs varianceNoise');
      return tf.add(prev, tf.mul(options.varianceNoise, std));
    });
    return { prevSample, predOriginalSample };
  }
}
