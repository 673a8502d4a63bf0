// diffusers UNet2DConditionModel (unet_2d_condition.py) for the SD1.x / SD2.x family, configured from config.json.
// Tensors are NHWC; parameter keys are the diffusers safetensors keys.
import { tf } from '../runtime/backend.ts';
import { activation } from '../nn/functional.ts';
import { Conv2d, GroupNorm } from '../nn/layers.ts';
import { ParameterStore, type LoadReport } from '../nn/parameters.ts';
import { readComponentConfig } from '../io/diffusers.ts';
import type { AttentionController, AttentionLayerInfo } from './attention_processor.ts';
import { TimestepEmbedding, timestepFeatures } from './embeddings.ts';
import {
  AttentionLayerRegistry,
  makeDownBlock,
  makeUpBlock,
  UNetMidBlock2DCrossAttn,
  type BlockOptions,
  type DownBlock,
  type UpBlock,
} from './unet_2d_blocks.ts';

export interface UNet2DConditionConfig {
  sample_size?: number;
  in_channels: number;
  out_channels: number;
  center_input_sample?: boolean;
  flip_sin_to_cos?: boolean;
  freq_shift?: number;
  down_block_types: string[];
  mid_block_type?: string | null;
  up_block_types: string[];
  only_cross_attention?: boolean | boolean[];
  block_out_channels: number[];
  layers_per_block: number | number[];
  downsample_padding?: number;
  mid_block_scale_factor?: number;
  act_fn?: string;
  norm_num_groups: number;
  norm_eps?: number;
  cross_attention_dim: number | number[];
  transformer_layers_per_block?: number | number[];
  /** legacy diffusers naming: the number of heads (int or one per block) */
  attention_head_dim?: number | number[];
  num_attention_heads?: number | number[] | null;
  use_linear_projection?: boolean;
  upcast_attention?: boolean;
  conv_in_kernel?: number;
  conv_out_kernel?: number;
  [key: string]: unknown;
}

/** Config features of other UNet families; refusing them beats silently computing something else. */
const UNSUPPORTED: [keyof UNet2DConditionConfig, (v: unknown) => boolean][] = [
  ['class_embed_type', (v) => v != null],
  ['num_class_embeds', (v) => v != null],
  ['addition_embed_type', (v) => v != null],
  ['encoder_hid_dim', (v) => v != null],
  ['time_cond_proj_dim', (v) => v != null],
  ['dual_cross_attention', (v) => v === true],
  ['resnet_time_scale_shift', (v) => v != null && v !== 'default'],
  ['time_embedding_type', (v) => v != null && v !== 'positional'],
  ['attention_type', (v) => v != null && v !== 'default'],
  ['cross_attention_norm', (v) => v != null],
  ['timestep_post_act', (v) => v != null],
  ['time_embedding_dim', (v) => v != null],
  ['class_embeddings_concat', (v) => v === true],
  ['resnet_skip_time_act', (v) => v === true],
  ['resnet_out_scale_factor', (v) => v != null && v !== 1],
];

function perBlock<T>(value: T | T[] | undefined, fallback: T, count: number, name: string): T[] {
  if (Array.isArray(value)) {
    if (value.length !== count) throw new Error(`UNet config: ${name} has ${value.length} entries for ${count} blocks`);
    return value;
  }
  return Array.from({ length: count }, () => value ?? fallback);
}

export interface UNetForwardOptions {
  controller?: AttentionController;
  /** receives named intermediate outputs (the module names of diffusers forward hooks); parity tests localise errors with it */
  trace?: (name: string, value: tf.Tensor) => void;
}

export class UNet2DConditionModel {
  readonly store = new ParameterStore();
  readonly attentionLayers: AttentionLayerInfo[];
  private readonly timeEmbedding: TimestepEmbedding;
  private readonly convIn: Conv2d;
  private readonly downBlocks: DownBlock[] = [];
  private readonly midBlock: UNetMidBlock2DCrossAttn | null;
  private readonly upBlocks: UpBlock[] = [];
  private readonly convNormOut: GroupNorm;
  private readonly convOut: Conv2d;
  private readonly act: (x: tf.Tensor) => tf.Tensor;
  private readonly numUpsamplers: number;

  constructor(readonly config: UNet2DConditionConfig) {
    for (const [key, isUnsupported] of UNSUPPORTED) {
      if (isUnsupported(config[key])) throw new Error(`UNet config: ${String(key)}=${JSON.stringify(config[key])} is not supported`);
    }
    const store = this.store;
    const blocks = config.block_out_channels;
    const count = config.down_block_types.length;
    if (blocks.length !== count || config.up_block_types.length !== count) {
      throw new Error(`UNet config: ${count} down blocks, ${config.up_block_types.length} up blocks and ${blocks.length} block_out_channels must agree`);
    }
    const heads = perBlock(config.num_attention_heads ?? config.attention_head_dim, 8, count, 'attention_head_dim');
    const layersPerBlock = perBlock(config.layers_per_block, 2, count, 'layers_per_block');
    const crossDims = perBlock(config.cross_attention_dim, 1280, count, 'cross_attention_dim');
    const transformerLayers = perBlock(config.transformer_layers_per_block, 1, count, 'transformer_layers_per_block');
    const onlyCross = perBlock(config.only_cross_attention, false, count, 'only_cross_attention');
    const act = config.act_fn ?? 'silu';
    const eps = config.norm_eps ?? 1e-5;
    const groups = config.norm_num_groups;
    const timeEmbedDim = blocks[0]! * 4;
    this.act = activation(act);

    const registry = new AttentionLayerRegistry();
    const common = {
      tembChannels: timeEmbedDim,
      eps,
      act,
      groups,
      useLinearProjection: config.use_linear_projection ?? false,
      downsamplePadding: config.downsample_padding ?? 1,
    };
    const convInKernel = config.conv_in_kernel ?? 3;
    this.convIn = new Conv2d(store, 'conv_in', config.in_channels, blocks[0]!, convInKernel, { padding: (convInKernel - 1) / 2 });
    this.timeEmbedding = new TimestepEmbedding(store, 'time_embedding', blocks[0]!, timeEmbedDim, act);

    let outputChannels = blocks[0]!;
    config.down_block_types.forEach((type, i) => {
      const inputChannels = outputChannels;
      outputChannels = blocks[i]!;
      const options: BlockOptions = {
        ...common,
        numLayers: layersPerBlock[i]!,
        transformerLayers: transformerLayers[i]!,
        inChannels: inputChannels,
        outChannels: outputChannels,
        heads: heads[i]!,
        crossAttentionDim: crossDims[i]!,
        onlyCrossAttention: onlyCross[i]!,
        addSampler: i < count - 1,
        prevOutputChannels: 0,
        level: i,
        blockIndex: i,
      };
      this.downBlocks.push(makeDownBlock(type, store, `down_blocks.${i}`, options, registry));
    });

    const midType = config.mid_block_type === undefined ? 'UNetMidBlock2DCrossAttn' : config.mid_block_type;
    if (midType !== null && midType !== 'UNetMidBlock2DCrossAttn') throw new Error(`UNet config: mid_block_type '${midType}' is not supported`);
    this.midBlock =
      midType === null
        ? null
        : new UNetMidBlock2DCrossAttn(
            store,
            'mid_block',
            {
              ...common,
              numLayers: 1,
              transformerLayers: transformerLayers[count - 1]!,
              inChannels: blocks[count - 1]!,
              outChannels: blocks[count - 1]!,
              heads: heads[count - 1]!,
              crossAttentionDim: crossDims[count - 1]!,
              onlyCrossAttention: false,
              addSampler: false,
              prevOutputChannels: 0,
              level: count - 1,
              blockIndex: 0,
            },
            registry,
          );
    if (config.mid_block_scale_factor !== undefined && config.mid_block_scale_factor !== 1) {
      throw new Error('UNet config: mid_block_scale_factor other than 1 is not supported');
    }

    const reversedBlocks = [...blocks].reverse();
    const reversedHeads = [...heads].reverse();
    const reversedLayers = [...layersPerBlock].reverse();
    const reversedCross = [...crossDims].reverse();
    const reversedTransformerLayers = (
      Array.isArray(config.reverse_transformer_layers_per_block) ? (config.reverse_transformer_layers_per_block as number[]) : [...transformerLayers].reverse()
    );
    const reversedOnlyCross = [...onlyCross].reverse();
    outputChannels = reversedBlocks[0]!;
    let upsamplers = 0;
    config.up_block_types.forEach((type, i) => {
      const prevOutputChannels = outputChannels;
      outputChannels = reversedBlocks[i]!;
      const inputChannels = reversedBlocks[Math.min(i + 1, count - 1)]!;
      const addSampler = i < count - 1;
      if (addSampler) upsamplers++;
      const options: BlockOptions = {
        ...common,
        numLayers: reversedLayers[i]! + 1,
        transformerLayers: reversedTransformerLayers[i]!,
        inChannels: inputChannels,
        outChannels: outputChannels,
        heads: reversedHeads[i]!,
        crossAttentionDim: reversedCross[i]!,
        onlyCrossAttention: reversedOnlyCross[i]!,
        addSampler,
        prevOutputChannels,
        level: count - 1 - i,
        blockIndex: i,
      };
      this.upBlocks.push(makeUpBlock(type, store, `up_blocks.${i}`, options, registry));
    });
    this.numUpsamplers = upsamplers;
    this.attentionLayers = registry.layers;

    this.convNormOut = new GroupNorm(store, 'conv_norm_out', groups, blocks[0]!, eps);
    const convOutKernel = config.conv_out_kernel ?? 3;
    this.convOut = new Conv2d(store, 'conv_out', blocks[0]!, config.out_channels, convOutKernel, { padding: (convOutKernel - 1) / 2 });
  }

  static fromPretrained(componentDir: string, options: { variant?: string } = {}): { model: UNet2DConditionModel; report: LoadReport } {
    const model = new UNet2DConditionModel(readComponentConfig<UNet2DConditionConfig>(componentDir));
    return { model, report: model.store.loadComponent(componentDir, options.variant) };
  }

  get inChannels(): number {
    return this.config.in_channels;
  }

  /**
   * sample: NHWC [B, H, W, in_channels]; timesteps: one per sample (or one for all); context: [B, tokens, dim].
   * Returns the model output (ε or v, per the scheduler's prediction_type) as NHWC.
   */
  forward(sample: tf.Tensor4D, timesteps: number[] | Int32Array, context: tf.Tensor3D, options: UNetForwardOptions = {}): tf.Tensor4D {
    return tf.tidy(() => {
      const [batch, height, width] = sample.shape;
      if (context.shape[0] !== batch) throw new Error(`UNet: ${batch} samples but ${context.shape[0]} context rows`);
      const steps = timesteps.length === 1 ? Array.from({ length: batch }, () => timesteps[0]!) : Array.from(timesteps);
      if (steps.length !== batch) throw new Error(`UNet: ${batch} samples but ${timesteps.length} timesteps`);

      const features = timestepFeatures(steps, this.config.block_out_channels[0]!, {
        flipSinToCos: this.config.flip_sin_to_cos ?? true,
        downscaleFreqShift: this.config.freq_shift ?? 0,
      });
      const temb = this.timeEmbedding.forward(features);
      const trace = options.trace ?? (() => {});
      trace('time_proj', features);
      trace('time_embedding', temb);
      const input = { temb, context, controller: options.controller };

      let h = this.config.center_input_sample ? (tf.sub(tf.mul(sample, 2), 1) as tf.Tensor4D) : sample;
      h = this.convIn.forward(h);
      trace('conv_in', h);
      const skips: tf.Tensor4D[] = [h];
      this.downBlocks.forEach((block, i) => {
        const { output, skips: blockSkips } = block.forward(h, input);
        h = output;
        skips.push(...blockSkips);
        trace(`down_blocks.${i}`, h);
      });
      if (this.midBlock) {
        h = this.midBlock.forward(h, input);
        trace('mid_block', h);
      }

      // Inputs whose side is not a multiple of 2^upsamplers need explicit upsample sizes, taken from the skips.
      const factor = 2 ** this.numUpsamplers;
      const explicitSizes = height % factor !== 0 || width % factor !== 0;
      this.upBlocks.forEach((block, i) => {
        const taken = skips.splice(skips.length - block.resnets.length, block.resnets.length);
        const next = skips[skips.length - 1];
        const size: [number, number] | undefined = explicitSizes && i < this.upBlocks.length - 1 && next ? [next.shape[1], next.shape[2]] : undefined;
        h = block.forward(h, taken, input, size);
        trace(`up_blocks.${i}`, h);
      });
      const normed = this.convNormOut.forward(h);
      trace('conv_norm_out', normed);
      const out = this.convOut.forward(this.act(normed) as tf.Tensor4D);
      trace('conv_out', out);
      return out;
    });
  }
}
