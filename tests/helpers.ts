// Shared test helpers: where the fixtures live, golden tensors, and the tolerance rule of the golden README.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SafetensorsFile } from '../trainer/io/safetensors.ts';
import { initRuntime, tf } from '../trainer/runtime/backend.ts';
import type { UNet2DConditionConfig } from '../trainer/models/unet_2d_condition.ts';

export const repoRoot = resolve(import.meta.dirname, '..');

/** MIFO_FIXTURES points at a fixture set; the default is ../shared/fixtures beside the checkout. */
export function fixturesDir(): string {
  const dir = resolve(process.env.MIFO_FIXTURES ?? join(repoRoot, '..', 'shared', 'fixtures'));
  if (!existsSync(join(dir, 'tiny-sd-golden', 'manifest.json'))) {
    throw new Error(`fixtures not found at ${dir} (set MIFO_FIXTURES to a folder holding tiny-sd, tiny-sd2 and tiny-sd-golden)`);
  }
  return dir;
}

export interface GoldenVariant {
  name: string;
  pipelineDir: string;
  info: Record<string, any>;
}

export function goldenManifest(): Record<string, any> {
  return JSON.parse(readFileSync(join(fixturesDir(), 'tiny-sd-golden', 'manifest.json'), 'utf8'));
}

/** Every variant the manifest lists (sd1, sd2, ... for another fixture set). */
export function goldenVariants(): GoldenVariant[] {
  const manifest = goldenManifest();
  return Object.entries(manifest.variants as Record<string, any>).map(([name, info]) => ({
    name,
    pipelineDir: join(fixturesDir(), info.pipeline_folder),
    info,
  }));
}

export function goldenFile(variant: string, part: string): SafetensorsFile {
  return SafetensorsFile.open(join(fixturesDir(), 'tiny-sd-golden', `${variant}_${part}.safetensors`));
}

/** Reads a golden float tensor as a tf tensor in its stored (PyTorch) layout. */
export function goldenTensor(file: SafetensorsFile, name: string): tf.Tensor {
  const { shape, data } = file.readFloat32(name);
  return tf.tensor(data, shape, 'float32');
}

export function goldenInts(file: SafetensorsFile, name: string): { shape: number[]; data: Int32Array } {
  return file.readInt32(name);
}

/** Tolerance from the golden README: max|ours − golden| ≤ rtol·max|golden| + 1e-6. */
export function assertClose(actual: tf.Tensor | Float32Array, expected: tf.Tensor | Float32Array, rtol: number, what: string): number {
  const a = actual instanceof Float32Array ? actual : (actual.dataSync() as Float32Array);
  const e = expected instanceof Float32Array ? expected : (expected.dataSync() as Float32Array);
  if (!(actual instanceof Float32Array) && !(expected instanceof Float32Array)) {
    assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  }
  assert.equal(a.length, e.length, `${what}: element count`);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < a.length; i++) {
    const diff = Math.abs(a[i]! - e[i]!);
    if (!(diff <= maxDiff)) maxDiff = diff; // NaN propagates into maxDiff
    maxRef = Math.max(maxRef, Math.abs(e[i]!));
  }
  const bound = rtol * maxRef + 1e-6;
  assert.ok(maxDiff <= bound, `${what}: max|diff| ${maxDiff.toExponential(3)} > ${bound.toExponential(3)} (rtol ${rtol}, max|golden| ${maxRef.toExponential(3)})`);
  return maxDiff;
}

/** The rel tolerance the manifest suggests for one tensor. */
export function suggestedTolerance(variant: string, part: string, tensor: string): number {
  const entry = goldenManifest().files?.[`${variant}_${part}.safetensors`]?.[tensor];
  const tol = entry?.suggested_rel_tol;
  if (typeof tol !== 'number') throw new Error(`manifest gives no suggested_rel_tol for ${variant}_${part}/${tensor}`);
  return tol;
}

export async function setupRuntime(): Promise<void> {
  await initRuntime();
}

/** NCHW golden -> NHWC, the layout of our image tensors. */
export function nchwToNhwc(x: tf.Tensor): tf.Tensor4D {
  return tf.transpose(x, [0, 2, 3, 1]) as tf.Tensor4D;
}

export function nhwcToNchw(x: tf.Tensor): tf.Tensor4D {
  return tf.transpose(x, [0, 3, 1, 2]) as tf.Tensor4D;
}

/** stabilityai/stable-diffusion-2-1-base unet/config.json (the structural fields); a UNet built from it only declares parameters. */
export const SD21_BASE_UNET_CONFIG: UNet2DConditionConfig = {
  sample_size: 64,
  in_channels: 4,
  out_channels: 4,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
  block_out_channels: [320, 640, 1280, 1280],
  layers_per_block: 2,
  attention_head_dim: [5, 10, 20, 20],
  cross_attention_dim: 1024,
  use_linear_projection: true,
  norm_num_groups: 32,
  act_fn: 'silu',
  flip_sin_to_cos: true,
  freq_shift: 0,
};
