// diffusers embeddings.py: sinusoidal timestep features and the TimestepEmbedding MLP.
import { tf } from '../runtime/backend.ts';
import { activation } from '../nn/functional.ts';
import { Linear, Module } from '../nn/layers.ts';
import type { ParameterStore } from '../nn/parameters.ts';

const f = Math.fround;

/**
 * get_timestep_embedding, evaluated in float32 step by step as PyTorch does, so the features match to the last bit
 * rather than to float64 accuracy. Returns [timesteps.length, dim].
 */
export function timestepFeatures(
  timesteps: ArrayLike<number>,
  dim: number,
  options: { flipSinToCos: boolean; downscaleFreqShift: number; maxPeriod?: number },
): tf.Tensor2D {
  const half = Math.floor(dim / 2);
  const logPeriod = f(-Math.log(options.maxPeriod ?? 10000));
  const freqs = new Float32Array(half);
  for (let i = 0; i < half; i++) freqs[i] = f(Math.exp(f(f(logPeriod * i) / (half - options.downscaleFreqShift))));
  const out = new Float32Array(timesteps.length * dim);
  for (let b = 0; b < timesteps.length; b++) {
    const t = f(timesteps[b]!);
    for (let i = 0; i < half; i++) {
      const angle = f(t * freqs[i]!);
      const sin = f(Math.sin(angle));
      const cos = f(Math.cos(angle));
      out[b * dim + i] = options.flipSinToCos ? cos : sin;
      out[b * dim + half + i] = options.flipSinToCos ? sin : cos;
    }
  }
  return tf.tensor2d(out, [timesteps.length, dim]);
}

export class TimestepEmbedding extends Module {
  readonly linear1: Linear;
  readonly linear2: Linear;
  private readonly act: (x: tf.Tensor) => tf.Tensor;

  constructor(store: ParameterStore, prefix: string, inChannels: number, timeEmbedDim: number, act: string) {
    super(store, prefix);
    this.linear1 = new Linear(store, this.child('linear_1'), inChannels, timeEmbedDim);
    this.linear2 = new Linear(store, this.child('linear_2'), timeEmbedDim, timeEmbedDim);
    this.act = activation(act);
  }

  forward(features: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => this.linear2.forward(this.act(this.linear1.forward(features))) as tf.Tensor2D);
  }
}
