// Stage 1: the AutoencoderKL, trained from scratch on random crops of rendered scenes with a mean squared error
// (plus an optional L1 term) and a small KL term towards N(0, I). Afterwards scaling_factor is set so that the
// scaled latents of training images have unit standard deviation, as Stable Diffusion's 0.18215 was chosen.
// Stage 1b fine-tunes the decoder alone on whole images.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors } from '../io/safetensors.ts';
import { AutoencoderKL, type AutoencoderKLConfig } from '../models/autoencoder_kl.ts';
import { tf } from '../runtime/backend.ts';
import { Generator } from '../util/random.ts';
import type { RgbImage } from '../io/image.ts';
import { renderScene } from '../world/render.ts';
import { sampleScene } from '../world/sampler.ts';
import type { NamedParameter } from './checkpoint.ts';
import { batchTensor, drawWorldBatch, sliceSamples } from './data.ts';
import { writePreviewGrid } from './preview.ts';
import { DIFFUSERS_VERSION, stageFingerprint, type Recipe } from './recipe.ts';
import type { StepLoss, TrainingStage } from './stage.ts';

/** Seeds of the scaling-factor images: a stream of their own, so it does not shift the training stream. */
const SCALING_SEED_OFFSET = 0x5ca1e;
const PREVIEW_SCENES = 8;

export function createVae(config: AutoencoderKLConfig, seed: number): AutoencoderKL {
  const vae = new AutoencoderKL(config);
  vae.store.initialize(seed);
  return vae;
}

/** Mean KL divergence per latent element of N(mean, exp(logvar)) from N(0, 1). */
function klPerElement(mean: tf.Tensor, logvar: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mul(tf.mean(tf.sub(tf.add(tf.square(mean), tf.exp(logvar)), tf.add(logvar, 1))), 0.5) as tf.Scalar);
}

export function vaeTrainingStage(recipe: Recipe, vae: AutoencoderKL): TrainingStage {
  const settings = recipe.vae;
  const parameters: NamedParameter[] = vae.store.keys().map((key) => ({ name: `vae.${key}`, variable: vae.store.get(key) }));
  const latentSide = settings.crop / vae.scaleFactor;
  const latentChannels = settings.config.latent_channels;
  return {
    name: 'vae',
    fingerprint: stageFingerprint(recipe, 'vae'),
    settings,
    parameters,
    ema: null,
    prepareStep(generator) {
      const batch = drawWorldBatch(generator, recipe.world, settings.batch, settings.crop);
      const eps = generator.randn(settings.batch * latentSide * latentSide * latentChannels);
      const images = batchTensor(batch);
      const noise = tf.tensor4d(eps, [settings.batch, latentSide, latentSide, latentChannels]);
      return {
        lossFn: ({ start, size }): StepLoss => {
          const target = sliceSamples(images, start, size);
          const posterior = vae.encode(target);
          const reconstruction = vae.decode(AutoencoderKL.sample(posterior, sliceSamples(noise, start, size)));
          const error = tf.sub(reconstruction, target);
          const mse = tf.mean(tf.square(error)) as tf.Scalar;
          const l1 = tf.mean(tf.abs(error)) as tf.Scalar;
          const kl = klPerElement(posterior.mean, posterior.logvar);
          const loss = tf.addN([mse, tf.mul(l1, settings.l1Weight), tf.mul(kl, settings.klWeight)]) as tf.Scalar;
          return { loss, terms: { mse, l1, kl } };
        },
        dispose: () => tf.dispose([images, noise]),
      };
    },
    preview: (dir, step) => reconstructionPreview(vae, recipe, dir, step),
  };
}

/** The decoder's own parameters: everything after the latent (post_quant_conv and decoder.*). */
export function isDecoderParameter(key: string): boolean {
  return key.startsWith('decoder.') || key.startsWith('post_quant_conv.');
}

/**
 * Stage 1b: fine-tunes the decoder on whole images from posterior samples of the frozen encoder, which leaves the
 * latent space (and so the diffusion stage) untouched.
 */
export function decoderTrainingStage(recipe: Recipe, vae: AutoencoderKL): TrainingStage {
  const settings = recipe.decoder;
  const parameters: NamedParameter[] = vae.store
    .keys()
    .filter(isDecoderParameter)
    .map((key) => ({ name: `vae.${key}`, variable: vae.store.get(key) }));
  const latentSide = recipe.world.imageSize / vae.scaleFactor;
  const latentShape: [number, number, number, number] = [settings.batch, latentSide, latentSide, recipe.vae.config.latent_channels];
  return {
    name: 'decoder',
    fingerprint: stageFingerprint(recipe, 'decoder'),
    settings,
    parameters,
    ema: null,
    prepareStep(generator) {
      const batch = drawWorldBatch(generator, recipe.world, settings.batch);
      const eps = generator.randn(latentShape.reduce((a, b) => a * b, 1));
      const images = batchTensor(batch);
      const latents = tf.tidy(() => AutoencoderKL.sample(vae.encode(images), tf.tensor4d(eps, latentShape)));
      return {
        lossFn: ({ start, size }): StepLoss => {
          const error = tf.sub(vae.decode(sliceSamples(latents, start, size)), sliceSamples(images, start, size));
          const mse = tf.mean(tf.square(error)) as tf.Scalar;
          const l1 = tf.mean(tf.abs(error)) as tf.Scalar;
          return { loss: tf.add(mse, tf.mul(l1, settings.l1Weight)) as tf.Scalar, terms: { mse, l1 } };
        },
        dispose: () => tf.dispose([images, latents]),
      };
    },
    preview: (dir, step) => reconstructionPreview(vae, recipe, dir, step),
  };
}

async function reconstructionPreview(vae: AutoencoderKL, recipe: Recipe, dir: string, step: number): Promise<void> {
  const scenes = heldOutScenes(PREVIEW_SCENES, recipe.world.imageSize, 0);
  const reconstructions = reconstruct(vae, scenes.map((s) => s.image));
  const images = [...scenes.map((s) => s.image), ...reconstructions];
  const labels = [...scenes.map((s) => `original: ${s.caption}`), ...scenes.map((s, i) => `reconstruction (${psnr(s.image.data, reconstructions[i]!.data).toFixed(2)} dB)`)];
  await writePreviewGrid(dir, step, images, PREVIEW_SCENES, labels);
}

export interface HeldOutScene {
  seed: number;
  caption: string;
  image: RgbImage;
}

/** Renders held-out-split scenes (1-4 objects) with seeds firstSeed, firstSeed + 1, ... */
export function heldOutScenes(count: number, size: number, firstSeed: number): HeldOutScene[] {
  return Array.from({ length: count }, (_, i) => {
    const seed = firstSeed + i;
    const scene = sampleScene(seed, { split: 'heldout' });
    const caption = `${scene.objects.length} object(s), seed ${seed}`;
    return { seed, caption, image: { width: size, height: size, data: renderScene(scene, size, { masks: false }).image } };
  });
}

/** 8-bit RGB images as one NHWC tensor in [-1, 1], the VAE's input range. */
export function rgbImagesToTensor(images: readonly RgbImage[]): tf.Tensor4D {
  const { width, height } = images[0]!;
  const data = new Float32Array(images.length * width * height * 3);
  images.forEach((image, i) => image.data.forEach((v, j) => (data[i * width * height * 3 + j] = v / 127.5 - 1)));
  return tf.tensor4d(data, [images.length, height, width, 3]);
}

/** Encodes (posterior mean) and decodes images, returning 8-bit reconstructions. */
export function reconstruct(vae: AutoencoderKL, images: readonly RgbImage[], batch = 16): RgbImage[] {
  const out: RgbImage[] = [];
  for (let start = 0; start < images.length; start += batch) {
    const chunk = images.slice(start, start + batch);
    const decoded = tf.tidy(() => {
      const x = rgbImagesToTensor(chunk);
      const y = vae.decode(vae.encode(x).mean);
      return tf.clipByValue(tf.add(tf.mul(y, 127.5), 127.5), 0, 255);
    });
    const values = decoded.dataSync();
    decoded.dispose();
    chunk.forEach((image, i) => {
      const size = image.width * image.height * 3;
      const data = new Uint8Array(size);
      for (let j = 0; j < size; j++) data[j] = Math.round(values[i * size + j]!);
      out.push({ width: image.width, height: image.height, data });
    });
  }
  return out;
}

export function meanSquaredError(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) throw new Error(`images differ in size (${a.length} vs ${b.length} values)`);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i]! - b[i]!) ** 2;
  return sum / a.length;
}

/** PSNR of 8-bit images in dB (peak 255). */
export function psnr(a: Uint8Array, b: Uint8Array): number {
  return 10 * Math.log10((255 * 255) / Math.max(meanSquaredError(a, b), 1e-10));
}

export interface ReconstructionReport {
  images: number;
  /** mean of the per-image PSNRs */
  meanPsnr: number;
  /** PSNR of the mean squared error over all images (never above meanPsnr) */
  pooledPsnr: number;
  worstPsnr: number;
}

export function measureReconstruction(vae: AutoencoderKL, scenes: readonly HeldOutScene[]): ReconstructionReport {
  const reconstructions = reconstruct(vae, scenes.map((s) => s.image));
  const errors = scenes.map((s, i) => meanSquaredError(s.image.data, reconstructions[i]!.data));
  const values = errors.map((e) => 10 * Math.log10((255 * 255) / Math.max(e, 1e-10)));
  const pooled = errors.reduce((a, b) => a + b, 0) / errors.length;
  return {
    images: scenes.length,
    meanPsnr: values.reduce((a, b) => a + b, 0) / values.length,
    pooledPsnr: 10 * Math.log10((255 * 255) / Math.max(pooled, 1e-10)),
    worstPsnr: Math.min(...values),
  };
}

/** 1 / the standard deviation of the posterior-sampled latents of `count` training images (SD's rule for 0.18215). */
export function latentScalingFactor(vae: AutoencoderKL, recipe: Recipe, count: number): number {
  const generator = new Generator(recipe.seed + SCALING_SEED_OFFSET);
  let sum = 0;
  let sumSquares = 0;
  let n = 0;
  for (let done = 0; done < count; done += 16) {
    const batch = drawWorldBatch(generator, recipe.world, Math.min(16, count - done));
    const values = tf.tidy(() => {
      const posterior = vae.encode(batchTensor(batch));
      const eps = tf.tensor(generator.randn(posterior.mean.size), posterior.mean.shape);
      return AutoencoderKL.sample(posterior, eps as tf.Tensor4D).dataSync();
    });
    for (const v of values) {
      sum += v;
      sumSquares += v * v;
    }
    n += values.length;
  }
  const variance = sumSquares / n - (sum / n) ** 2;
  return 1 / Math.sqrt(variance);
}

/** Writes a diffusers vae/ folder (config.json with scaling_factor, float32 or float16 weights). */
export function saveVae(dir: string, vae: AutoencoderKL, scalingFactor: number, dtype: 'F32' | 'F16'): void {
  mkdirSync(dir, { recursive: true });
  const config = { _class_name: 'AutoencoderKL', _diffusers_version: DIFFUSERS_VERSION, ...vae.config, scaling_factor: scalingFactor };
  writeFileSync(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  writeSafetensors(join(dir, 'diffusion_pytorch_model.safetensors'), vae.store.stateDict({ dtype }));
}
