// diffusers unet_2d_blocks.py: the down, mid and up blocks of UNet2DConditionModel (NHWC).
import { tf } from '../runtime/backend.ts';
import { Module } from '../nn/layers.ts';
import type { ParameterStore } from '../nn/parameters.ts';
import type { AttentionController, AttentionLayerInfo } from './attention_processor.ts';
import { Downsample2D, ResnetBlock2D, Upsample2D } from './resnet.ts';
import { Transformer2DModel } from './transformer_2d.ts';

/** Hands out hook descriptions in construction order, which is forward execution order. */
export class AttentionLayerRegistry {
  readonly layers: AttentionLayerInfo[] = [];
  private crossCount = 0;

  register(
    path: string,
    where: { place: AttentionLayerInfo['place']; block: number; attention: number; level: number },
    heads: number,
    headDim: number,
  ): (transformer: number) => { attn1: AttentionLayerInfo; attn2: AttentionLayerInfo } {
    return (transformer) => {
      const make = (kind: 'self' | 'cross', name: string): AttentionLayerInfo => {
        const info: AttentionLayerInfo = {
          id: `${path}.transformer_blocks.${transformer}.${name}`,
          kind,
          ...where,
          transformer,
          heads,
          headDim,
          order: this.layers.length,
          crossOrder: kind === 'cross' ? this.crossCount++ : -1,
        };
        this.layers.push(info);
        return info;
      };
      return { attn1: make('self', 'attn1'), attn2: make('cross', 'attn2') };
    };
  }
}

export interface BlockOptions {
  numLayers: number;
  transformerLayers: number;
  inChannels: number;
  outChannels: number;
  tembChannels: number;
  eps: number;
  act: string;
  groups: number;
  heads: number;
  crossAttentionDim: number;
  useLinearProjection: boolean;
  onlyCrossAttention: boolean;
  /** down blocks: add a stride-2 conv at the end; up blocks: add a 2x upsampler */
  addSampler: boolean;
  downsamplePadding: number;
  /** up blocks: channels coming from the previous (deeper) block */
  prevOutputChannels: number;
  /** resolution level of the block's own resnets/attentions (0 = latent size) */
  level: number;
  blockIndex: number;
}

function makeResnet(store: ParameterStore, prefix: string, o: BlockOptions, inChannels: number): ResnetBlock2D {
  return new ResnetBlock2D(store, prefix, {
    inChannels,
    outChannels: o.outChannels,
    tembChannels: o.tembChannels,
    groups: o.groups,
    eps: o.eps,
    act: o.act,
  });
}

function makeTransformer(
  store: ParameterStore,
  prefix: string,
  o: BlockOptions,
  channels: number,
  registry: AttentionLayerRegistry,
  place: AttentionLayerInfo['place'],
  attention: number,
): Transformer2DModel {
  const layerInfo = registry.register(prefix, { place, block: o.blockIndex, attention, level: o.level }, o.heads, channels / o.heads);
  return new Transformer2DModel(
    store,
    prefix,
    {
      heads: o.heads,
      dimHead: channels / o.heads,
      inChannels: channels,
      numLayers: o.transformerLayers,
      normNumGroups: o.groups,
      crossAttentionDim: o.crossAttentionDim,
      useLinearProjection: o.useLinearProjection,
      onlyCrossAttention: o.onlyCrossAttention,
      normEps: o.eps,
    },
    layerInfo,
  );
}

export interface BlockInput {
  temb: tf.Tensor2D;
  context: tf.Tensor3D;
  controller?: AttentionController;
}

export interface DownBlock {
  readonly resnets: ResnetBlock2D[];
  /** returns the block output and every state the up path concatenates as a skip */
  forward(x: tf.Tensor4D, input: BlockInput): { output: tf.Tensor4D; skips: tf.Tensor4D[] };
}

export interface UpBlock {
  readonly resnets: ResnetBlock2D[];
  forward(x: tf.Tensor4D, skips: tf.Tensor4D[], input: BlockInput, upsampleSize?: [number, number]): tf.Tensor4D;
}

export class DownBlock2D extends Module implements DownBlock {
  readonly resnets: ResnetBlock2D[];
  readonly attentions: Transformer2DModel[];
  readonly downsampler: Downsample2D | null;

  constructor(store: ParameterStore, prefix: string, o: BlockOptions, registry: AttentionLayerRegistry | null) {
    super(store, prefix);
    this.resnets = [];
    this.attentions = [];
    for (let i = 0; i < o.numLayers; i++) {
      this.resnets.push(makeResnet(store, this.child(`resnets.${i}`), o, i === 0 ? o.inChannels : o.outChannels));
      if (registry) this.attentions.push(makeTransformer(store, this.child(`attentions.${i}`), o, o.outChannels, registry, 'down', i));
    }
    this.downsampler = o.addSampler
      ? new Downsample2D(store, this.child('downsamplers.0'), o.outChannels, o.outChannels, o.downsamplePadding)
      : null;
  }

  forward(x: tf.Tensor4D, input: BlockInput): { output: tf.Tensor4D; skips: tf.Tensor4D[] } {
    const skips: tf.Tensor4D[] = [];
    let h = x;
    this.resnets.forEach((resnet, i) => {
      h = resnet.forward(h, input.temb);
      const attention = this.attentions[i];
      if (attention) h = attention.forward(h, input.context, input.controller);
      skips.push(h);
    });
    if (this.downsampler) {
      h = this.downsampler.forward(h);
      skips.push(h);
    }
    return { output: h, skips };
  }
}

/** CrossAttnDownBlock2D is DownBlock2D with a Transformer2DModel after every resnet. */
export function makeDownBlock(type: string, store: ParameterStore, prefix: string, o: BlockOptions, registry: AttentionLayerRegistry): DownBlock {
  if (type === 'CrossAttnDownBlock2D') return new DownBlock2D(store, prefix, o, registry);
  if (type === 'DownBlock2D') return new DownBlock2D(store, prefix, o, null);
  throw new Error(`unsupported down block type '${type}' (supported: CrossAttnDownBlock2D, DownBlock2D)`);
}

export class UpBlock2D extends Module implements UpBlock {
  readonly resnets: ResnetBlock2D[];
  readonly attentions: Transformer2DModel[];
  readonly upsampler: Upsample2D | null;

  constructor(store: ParameterStore, prefix: string, o: BlockOptions, registry: AttentionLayerRegistry | null) {
    super(store, prefix);
    this.resnets = [];
    this.attentions = [];
    for (let i = 0; i < o.numLayers; i++) {
      const skipChannels = i === o.numLayers - 1 ? o.inChannels : o.outChannels;
      const resnetIn = i === 0 ? o.prevOutputChannels : o.outChannels;
      this.resnets.push(makeResnet(store, this.child(`resnets.${i}`), o, resnetIn + skipChannels));
      if (registry) this.attentions.push(makeTransformer(store, this.child(`attentions.${i}`), o, o.outChannels, registry, 'up', i));
    }
    this.upsampler = o.addSampler ? new Upsample2D(store, this.child('upsamplers.0'), o.outChannels, o.outChannels) : null;
  }

  forward(x: tf.Tensor4D, skips: tf.Tensor4D[], input: BlockInput, upsampleSize?: [number, number]): tf.Tensor4D {
    let h = x;
    const remaining = [...skips];
    this.resnets.forEach((resnet, i) => {
      const skip = remaining.pop();
      if (!skip) throw new Error(`${this.prefix}: ran out of skip connections`);
      h = resnet.forward(tf.concat([h, skip], 3), input.temb);
      const attention = this.attentions[i];
      if (attention) h = attention.forward(h, input.context, input.controller);
    });
    return this.upsampler ? this.upsampler.forward(h, upsampleSize) : h;
  }
}

/** CrossAttnUpBlock2D is UpBlock2D with a Transformer2DModel after every resnet. */
export function makeUpBlock(type: string, store: ParameterStore, prefix: string, o: BlockOptions, registry: AttentionLayerRegistry): UpBlock {
  if (type === 'CrossAttnUpBlock2D') return new UpBlock2D(store, prefix, o, registry);
  if (type === 'UpBlock2D') return new UpBlock2D(store, prefix, o, null);
  throw new Error(`unsupported up block type '${type}' (supported: CrossAttnUpBlock2D, UpBlock2D)`);
}

/** resnet, then (transformer, resnet) × numLayers, all at the input width. */
export class UNetMidBlock2DCrossAttn extends Module {
  readonly resnets: ResnetBlock2D[];
  readonly attentions: Transformer2DModel[];

  constructor(store: ParameterStore, prefix: string, o: BlockOptions, registry: AttentionLayerRegistry) {
    super(store, prefix);
    const same = { ...o, outChannels: o.inChannels };
    this.resnets = [makeResnet(store, this.child('resnets.0'), same, o.inChannels)];
    this.attentions = [];
    for (let i = 0; i < o.numLayers; i++) {
      this.attentions.push(makeTransformer(store, this.child(`attentions.${i}`), same, o.inChannels, registry, 'mid', i));
      this.resnets.push(makeResnet(store, this.child(`resnets.${i + 1}`), same, o.inChannels));
    }
  }

  forward(x: tf.Tensor4D, input: BlockInput): tf.Tensor4D {
    let h = this.resnets[0]!.forward(x, input.temb);
    this.attentions.forEach((attention, i) => {
      h = attention.forward(h, input.context, input.controller);
      h = this.resnets[i + 1]!.forward(h, input.temb);
    });
    return h;
  }
}
