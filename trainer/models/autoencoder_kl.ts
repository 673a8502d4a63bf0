// diffusers AutoencoderKL (autoencoder_kl.py + vae.py): Encoder, Decoder, quant convs and the diagonal Gaussian
// posterior. Images are NHWC in [-1, 1]; latents NHWC.
import { tf } from '../runtime/backend.ts';
import { activation } from '../nn/functional.ts';
import { Conv2d, GroupNorm, Module } from '../nn/layers.ts';
import { ParameterStore, type LoadReport } from '../nn/parameters.ts';
import { readComponentConfig } from '../io/diffusers.ts';
import { Attention } from './attention_processor.ts';
import { Downsample2D, ResnetBlock2D, Upsample2D } from './resnet.ts';

export interface AutoencoderKLConfig {
  in_channels: number;
  out_channels: number;
  down_block_types: string[];
  up_block_types: string[];
  block_out_channels: number[];
  layers_per_block: number;
  act_fn?: string;
  latent_channels: number;
  norm_num_groups: number;
  sample_size?: number;
  scaling_factor?: number;
  shift_factor?: number | null;
  mid_block_add_attention?: boolean;
  use_quant_conv?: boolean;
  use_post_quant_conv?: boolean;
  [key: string]: unknown;
}

/** The VAE hard-codes eps 1e-6 for its norms. */
const VAE_EPS = 1e-6;

class UNetMidBlock2D extends Module {
  readonly resnets: ResnetBlock2D[];
  readonly attention: Attention | null;

  constructor(store: ParameterStore, prefix: string, channels: number, groups: number, act: string, addAttention: boolean) {
    super(store, prefix);
    const resnet = (i: number) =>
      new ResnetBlock2D(store, this.child(`resnets.${i}`), { inChannels: channels, outChannels: channels, tembChannels: null, groups, eps: VAE_EPS, act });
    this.resnets = [resnet(0), resnet(1)];
    this.attention = addAttention
      ? new Attention(store, this.child('attentions.0'), {
          queryDim: channels,
          heads: 1,
          dimHead: channels,
          bias: true,
          normNumGroups: groups,
          eps: VAE_EPS,
          residualConnection: true,
        })
      : null;
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    let h = this.resnets[0]!.forward(x, null);
    if (this.attention) h = this.attention.forward(h) as tf.Tensor4D;
    return this.resnets[1]!.forward(h, null);
  }
}

/** DownEncoderBlock2D (resnets, then an optional stride-2 conv) and UpDecoderBlock2D (resnets, then an optional 2x upsampler). */
class ResnetStack extends Module {
  readonly resnets: ResnetBlock2D[];
  readonly sampler: Downsample2D | Upsample2D | null;

  constructor(
    store: ParameterStore,
    prefix: string,
    o: { inChannels: number; outChannels: number; layers: number; groups: number; act: string; sampler: 'down' | 'up' | null },
  ) {
    super(store, prefix);
    this.resnets = Array.from(
      { length: o.layers },
      (_, i) =>
        new ResnetBlock2D(store, this.child(`resnets.${i}`), {
          inChannels: i === 0 ? o.inChannels : o.outChannels,
          outChannels: o.outChannels,
          tembChannels: null,
          groups: o.groups,
          eps: VAE_EPS,
          act: o.act,
        }),
    );
    if (o.sampler === 'down') this.sampler = new Downsample2D(store, this.child('downsamplers.0'), o.outChannels, o.outChannels, 0);
    else if (o.sampler === 'up') this.sampler = new Upsample2D(store, this.child('upsamplers.0'), o.outChannels, o.outChannels);
    else this.sampler = null;
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    let h = x;
    for (const resnet of this.resnets) h = resnet.forward(h, null);
    return this.sampler ? this.sampler.forward(h) : h;
  }
}

type Trace = (name: string, value: tf.Tensor) => void;

class Encoder extends Module {
  readonly convIn: Conv2d;
  readonly downBlocks: ResnetStack[];
  readonly midBlock: UNetMidBlock2D;
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;
  private readonly act: (x: tf.Tensor) => tf.Tensor;

  constructor(store: ParameterStore, prefix: string, c: AutoencoderKLConfig) {
    super(store, prefix);
    const blocks = c.block_out_channels;
    const act = c.act_fn ?? 'silu';
    this.act = activation(act);
    this.convIn = new Conv2d(store, this.child('conv_in'), c.in_channels, blocks[0]!, 3, { padding: 1 });
    this.downBlocks = c.down_block_types.map((type, i) => {
      if (type !== 'DownEncoderBlock2D') throw new Error(`VAE config: unsupported down block '${type}'`);
      return new ResnetStack(store, this.child(`down_blocks.${i}`), {
        inChannels: i === 0 ? blocks[0]! : blocks[i - 1]!,
        outChannels: blocks[i]!,
        layers: c.layers_per_block,
        groups: c.norm_num_groups,
        act,
        sampler: i < blocks.length - 1 ? 'down' : null,
      });
    });
    const last = blocks[blocks.length - 1]!;
    this.midBlock = new UNetMidBlock2D(store, this.child('mid_block'), last, c.norm_num_groups, act, c.mid_block_add_attention ?? true);
    this.convNormOut = new GroupNorm(store, this.child('conv_norm_out'), c.norm_num_groups, last, VAE_EPS);
    this.convOut = new Conv2d(store, this.child('conv_out'), last, 2 * c.latent_channels, 3, { padding: 1 });
  }

  forward(x: tf.Tensor4D, trace: Trace): tf.Tensor4D {
    let h = this.convIn.forward(x);
    this.downBlocks.forEach((block, i) => {
      h = block.forward(h);
      trace(`encoder.down_blocks.${i}`, h);
    });
    h = this.midBlock.forward(h);
    trace('encoder.mid_block', h);
    return this.convOut.forward(this.act(this.convNormOut.forward(h)) as tf.Tensor4D);
  }
}

class Decoder extends Module {
  readonly convIn: Conv2d;
  readonly midBlock: UNetMidBlock2D;
  readonly upBlocks: ResnetStack[];
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;
  private readonly act: (x: tf.Tensor) => tf.Tensor;

  constructor(store: ParameterStore, prefix: string, c: AutoencoderKLConfig) {
    super(store, prefix);
    const reversed = [...c.block_out_channels].reverse();
    const act = c.act_fn ?? 'silu';
    this.act = activation(act);
    this.convIn = new Conv2d(store, this.child('conv_in'), c.latent_channels, reversed[0]!, 3, { padding: 1 });
    this.midBlock = new UNetMidBlock2D(store, this.child('mid_block'), reversed[0]!, c.norm_num_groups, act, c.mid_block_add_attention ?? true);
    this.upBlocks = c.up_block_types.map((type, i) => {
      if (type !== 'UpDecoderBlock2D') throw new Error(`VAE config: unsupported up block '${type}'`);
      return new ResnetStack(store, this.child(`up_blocks.${i}`), {
        inChannels: i === 0 ? reversed[0]! : reversed[i - 1]!,
        outChannels: reversed[i]!,
        layers: c.layers_per_block + 1,
        groups: c.norm_num_groups,
        act,
        sampler: i < reversed.length - 1 ? 'up' : null,
      });
    });
    this.convNormOut = new GroupNorm(store, this.child('conv_norm_out'), c.norm_num_groups, c.block_out_channels[0]!, VAE_EPS);
    this.convOut = new Conv2d(store, this.child('conv_out'), c.block_out_channels[0]!, c.out_channels, 3, { padding: 1 });
  }

  forward(z: tf.Tensor4D, trace: Trace): tf.Tensor4D {
    let h = this.convIn.forward(z);
    h = this.midBlock.forward(h);
    trace('decoder.mid_block', h);
    this.upBlocks.forEach((block, i) => {
      h = block.forward(h);
      trace(`decoder.up_blocks.${i}`, h);
    });
    return this.convOut.forward(this.act(this.convNormOut.forward(h)) as tf.Tensor4D);
  }
}

export interface LatentDistribution {
  mean: tf.Tensor4D;
  /** clamped to [-30, 20] as diffusers does */
  logvar: tf.Tensor4D;
  std: tf.Tensor4D;
}

export class AutoencoderKL {
  readonly store = new ParameterStore();
  readonly encoder: Encoder;
  readonly decoder: Decoder;
  readonly quantConv: Conv2d | null;
  readonly postQuantConv: Conv2d | null;
  readonly scalingFactor: number;
  readonly shiftFactor: number;
  /** image side / latent side */
  readonly scaleFactor: number;

  constructor(readonly config: AutoencoderKLConfig) {
    const blocks = config.block_out_channels;
    if (config.down_block_types.length !== blocks.length || config.up_block_types.length !== blocks.length) {
      throw new Error('VAE config: block types and block_out_channels must have the same length');
    }
    this.encoder = new Encoder(this.store, 'encoder', config);
    this.decoder = new Decoder(this.store, 'decoder', config);
    const latent = config.latent_channels;
    this.quantConv = config.use_quant_conv ?? true ? new Conv2d(this.store, 'quant_conv', 2 * latent, 2 * latent, 1) : null;
    this.postQuantConv = config.use_post_quant_conv ?? true ? new Conv2d(this.store, 'post_quant_conv', latent, latent, 1) : null;
    this.scalingFactor = config.scaling_factor ?? 0.18215;
    this.shiftFactor = config.shift_factor ?? 0;
    this.scaleFactor = 2 ** (blocks.length - 1);
  }

  static fromPretrained(componentDir: string, options: { variant?: string } = {}): { model: AutoencoderKL; report: LoadReport } {
    const model = new AutoencoderKL(readComponentConfig<AutoencoderKLConfig>(componentDir));
    return { model, report: model.store.loadComponent(componentDir, options.variant) };
  }

  /** image NHWC in [-1, 1] -> posterior over (unscaled) latents */
  encode(image: tf.Tensor4D, trace: Trace = () => {}): LatentDistribution {
    return tf.tidy(() => {
      let moments = this.encoder.forward(image, trace);
      if (this.quantConv) moments = this.quantConv.forward(moments);
      trace('quant_conv', moments);
      const [mean, rawLogvar] = tf.split(moments, 2, 3) as [tf.Tensor4D, tf.Tensor4D];
      const logvar = tf.clipByValue(rawLogvar, -30, 20);
      return { mean, logvar, std: tf.exp(tf.mul(logvar, 0.5)) as tf.Tensor4D };
    });
  }

  /** mean + std·ε for a given standard-normal ε */
  static sample(posterior: LatentDistribution, eps: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => tf.add(posterior.mean, tf.mul(posterior.std, eps)) as tf.Tensor4D);
  }

  /** (unscaled) latents NHWC -> image NHWC, roughly in [-1, 1] (not clamped) */
  decode(latents: tf.Tensor4D, trace: Trace = () => {}): tf.Tensor4D {
    return tf.tidy(() => {
      let z = latents;
      if (this.postQuantConv) z = this.postQuantConv.forward(z);
      trace('post_quant_conv', z);
      return this.decoder.forward(z, trace);
    });
  }

  /** the latents the UNet sees: (z − shift)·scaling_factor */
  scaleLatents(latents: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => tf.mul(tf.sub(latents, this.shiftFactor), this.scalingFactor) as tf.Tensor4D);
  }

  unscaleLatents(latents: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => tf.add(tf.div(latents, this.scalingFactor), this.shiftFactor) as tf.Tensor4D);
  }
}
