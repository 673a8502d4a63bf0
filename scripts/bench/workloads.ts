// The UNet workloads of `npm run bench`, as diffusers UNet2DConditionModel configs shared by the TypeScript model and
// the PyTorch reference (scripts/bench/unet_torch.py).
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { UNet2DConditionConfig } from '../../trainer/models/unet_2d_condition.ts';

export interface Workload {
  name: string;
  description: string;
  config: UNet2DConditionConfig;
  height: number;
  width: number;
  tokens: number;
  batches: number[];
}

const crossAttention3 = ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'];

/** ~10M parameters, 16x16 latents: the acceptance workload of the engine. */
export const unet10m: Workload = {
  name: 'unet10m',
  description: '11.0M params, 4x16x16 latents, channels 64/128/128, cross-attention at every level, 77x256 context',
  config: {
    sample_size: 16,
    in_channels: 4,
    out_channels: 4,
    block_out_channels: [64, 128, 128],
    layers_per_block: 2,
    down_block_types: crossAttention3,
    up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
    cross_attention_dim: 256,
    attention_head_dim: 8,
    norm_num_groups: 32,
  },
  height: 16,
  width: 16,
  tokens: 77,
  batches: [1, 2, 8],
};

/** SD1.5's block structure at one fifth of its width (320/640/1280/1280 -> 64/128/256/256), 64x64 latents. */
export const sd15Narrow: Workload = {
  name: 'sd15-narrow',
  description: 'SD1.5 blocks at 1/5 width (64/128/256/256), 4x64x64 latents, 77x768 context',
  config: {
    sample_size: 64,
    in_channels: 4,
    out_channels: 4,
    block_out_channels: [64, 128, 256, 256],
    layers_per_block: 2,
    down_block_types: [...crossAttention3, 'DownBlock2D'],
    up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
    cross_attention_dim: 768,
    attention_head_dim: 8,
    norm_num_groups: 32,
  },
  height: 64,
  width: 64,
  tokens: 77,
  batches: [1],
};

/** The tiny UNet of the test fixtures (tiny-sd/unet), when the fixtures are present. */
export function tinyFixture(): Workload | null {
  const dir = resolve(process.env.MIFO_FIXTURES ?? join(import.meta.dirname, '..', '..', '..', 'shared', 'fixtures'));
  const configPath = join(dir, 'tiny-sd', 'unet', 'config.json');
  if (!existsSync(configPath)) return null;
  const config = JSON.parse(readFileSync(configPath, 'utf8')) as UNet2DConditionConfig;
  const side = config.sample_size ?? 16;
  return {
    name: 'tiny',
    description: `the tiny-sd fixture UNet (channels ${config.block_out_channels.join('/')}), 4x${side}x${side} latents`,
    config,
    height: side,
    width: side,
    tokens: 77,
    batches: [2],
  };
}

export function allWorkloads(): Workload[] {
  const tiny = tinyFixture();
  return [unet10m, ...(tiny ? [tiny] : []), sd15Narrow];
}
