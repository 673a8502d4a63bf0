// Text-to-image with classifier-free guidance and DDIM, as diffusers' StableDiffusionPipeline, plus the loading of
// a whole diffusers folder that every stage (learning, synthesis, the studio) starts from.
import { tf } from '../runtime/backend.ts';
import { readComponentConfig, requireComponent } from '../io/diffusers.ts';
import { readPipelineIndex } from '../io/model_index.ts';
import { CLIPTokenizer } from '../tokenizer/clip_tokenizer.ts';
import { CLIPTextModel } from '../models/clip_text_model.ts';
import { UNet2DConditionModel, type UNetForwardOptions } from '../models/unet_2d_condition.ts';
import { AutoencoderKL } from '../models/autoencoder_kl.ts';
import { DDIMScheduler } from '../schedulers/scheduling_ddim.ts';
import { DPMSolverMultistepScheduler } from '../schedulers/scheduling_dpmsolver_multistep.ts';
import type { SchedulerConfig } from '../schedulers/scheduling_utils.ts';
import { Generator } from '../util/random.ts';
import { guidedPrediction } from './guidance.ts';
import { NO_MODEL_ATTENTION_LAYERS, readModelAttentionLayers, type ModelAttentionLayers } from './attention_layers_config.ts';
import { DIFFUSERS_GENERATION_DEFAULTS, readGenerationDefaults, SAMPLER_NAMES, withGenerationDefaults, type GenerationDefaults, type SamplerName } from './generation_defaults.ts';

export interface StepInfo {
  /** 0-based step index */
  step: number;
  total: number;
  timestep: number;
  /** latents after this step (valid during the callback only; clone to keep) */
  latents: tf.Tensor4D;
  /** the scheduler's x̂0 prediction of this step */
  predOriginalSample: tf.Tensor4D;
  noisePredUncond: tf.Tensor4D | null;
  noisePredText: tf.Tensor4D;
  noisePred: tf.Tensor4D;
}

export interface GenerateOptions {
  prompt: string;
  negativePrompt?: string;
  /** steps, guidance, guidanceRescale and sampler default to the pipeline's generationDefaults */
  steps?: number;
  guidance?: number;
  /** diffusers' guidance_rescale φ in [0, 1]: see guidedPrediction */
  guidanceRescale?: number;
  sampler?: SamplerName;
  seed?: number;
  batch?: number;
  height?: number;
  width?: number;
  /** initial noise NHWC [batch, h/8, w/8, C]; drawn from `seed` when absent */
  latents?: tf.Tensor4D;
  /** prompt embeddings from the penultimate text-encoder layer (SD2-style "clip skip") */
  clipSkip?: number;
  onStep?: (info: StepInfo) => void;
  /** attention control for every UNet call (synthesis uses this) */
  unetOptions?: UNetForwardOptions;
}

export interface GenerateResult {
  /** NHWC in [0, 1] */
  images: tf.Tensor4D;
  latents: tf.Tensor4D;
  seed: number;
  timesteps: number[];
}

export class StableDiffusionPipeline {
  constructor(
    readonly modelDir: string,
    readonly tokenizer: CLIPTokenizer,
    readonly textEncoder: CLIPTextModel,
    readonly unet: UNet2DConditionModel,
    readonly vae: AutoencoderKL,
    readonly schedulerConfig: SchedulerConfig,
    readonly generationDefaults: GenerationDefaults = DIFFUSERS_GENERATION_DEFAULTS,
    /** the folder's attention_layers.json: where learning and box control read attention instead of the spec's layers */
    readonly attentionLayers: ModelAttentionLayers = NO_MODEL_ATTENTION_LAYERS,
  ) {}

  static fromPretrained(dir: string): StableDiffusionPipeline {
    const index = readPipelineIndex(dir);
    const tokenizer = CLIPTokenizer.fromPretrained(requireComponent(dir, index, 'tokenizer', ['CLIPTokenizer', 'CLIPTokenizerFast']));
    const textEncoder = CLIPTextModel.fromPretrained(requireComponent(dir, index, 'text_encoder', ['CLIPTextModel']));
    const unet = UNet2DConditionModel.fromPretrained(requireComponent(dir, index, 'unet', ['UNet2DConditionModel'])).model;
    const vae = AutoencoderKL.fromPretrained(requireComponent(dir, index, 'vae', ['AutoencoderKL'])).model;
    const schedulerDir = requireComponent(dir, index, 'scheduler', ['DDIMScheduler', 'DDPMScheduler', 'PNDMScheduler', 'EulerDiscreteScheduler', 'LMSDiscreteScheduler', 'DPMSolverMultistepScheduler', 'EulerAncestralDiscreteScheduler']);
    const schedulerConfig = readComponentConfig<SchedulerConfig>(schedulerDir, 'scheduler_config.json');
    return new StableDiffusionPipeline(dir, tokenizer, textEncoder, unet, vae, schedulerConfig, readGenerationDefaults(dir), readModelAttentionLayers(dir));
  }

  /** The image side the UNet was trained for. */
  get defaultSize(): number {
    return (this.unet.config.sample_size ?? 64) * this.vae.scaleFactor;
  }

  /** A DDIM scheduler with the model's noise schedule (whatever sampler the folder names). */
  makeScheduler(overrides: SchedulerConfig = {}): DDIMScheduler {
    return new DDIMScheduler({ ...this.schedulerConfig, ...overrides });
  }

  tokenize(prompts: readonly string[]): number[][] {
    return this.tokenizer.encodeBatch(prompts, { padding: 'max_length', truncation: true }).inputIds;
  }

  /** [prompts.length, 77, dim] text-encoder states used as the UNet's cross-attention context. */
  encodePrompt(prompts: readonly string[], options: { clipSkip?: number } = {}): tf.Tensor3D {
    return tf.tidy(() => {
      const skip = options.clipSkip ?? 0;
      const output = this.textEncoder.forward({ inputIds: this.tokenize(prompts), outputHiddenStates: skip > 0 });
      if (skip === 0) return output.lastHiddenState;
      const states = output.hiddenStates!;
      return this.textEncoder.finalLayerNorm.forward(states[states.length - 1 - skip]!);
    });
  }

  initialLatents(batch: number, height: number, width: number, seed: number): tf.Tensor4D {
    const factor = this.vae.scaleFactor;
    if (height % factor !== 0 || width % factor !== 0) throw new Error(`height and width must be multiples of ${factor}, got ${height}x${width}`);
    const shape: [number, number, number, number] = [batch, height / factor, width / factor, this.unet.inChannels];
    return tf.tensor4d(new Generator(seed).randn(shape.reduce((a, b) => a * b, 1)), shape);
  }

  /** latents (scaled) -> images NHWC in [0, 1] */
  decodeLatents(latents: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => tf.clipByValue(tf.add(tf.mul(this.vae.decode(this.vae.unscaleLatents(latents)), 0.5), 0.5), 0, 1) as tf.Tensor4D);
  }

  async generate(options: GenerateOptions): Promise<GenerateResult> {
    const { steps, guidance, guidanceRescale, sampler } = withGenerationDefaults(options, this.generationDefaults);
    const batch = options.batch ?? 1;
    const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
    const height = options.height ?? this.defaultSize;
    const width = options.width ?? this.defaultSize;
    if (!Number.isInteger(batch) || batch < 1) throw new Error(`batch must be a positive integer, got ${batch}`);
    if (!(guidance >= 0)) throw new Error(`guidance must be ≥ 0, got ${guidance}`);
    const useGuidance = guidance > 1;
    if (!SAMPLER_NAMES.includes(sampler)) throw new Error(`sampler must be one of ${SAMPLER_NAMES.join(', ')}, got ${String(sampler)}`);

    const scheduler = sampler === 'ddim' ? this.makeScheduler() : new DPMSolverMultistepScheduler(this.schedulerConfig);
    const timesteps = Array.from(scheduler.setTimesteps(steps));
    const context = tf.tidy(() => {
      const text = this.encodePrompt(Array(batch).fill(options.prompt), { clipSkip: options.clipSkip });
      if (!useGuidance) return text;
      const uncond = this.encodePrompt(Array(batch).fill(options.negativePrompt ?? ''), { clipSkip: options.clipSkip });
      return tf.concat([uncond, text], 0);
    });
    const initial = options.latents ? options.latents.clone() : this.initialLatents(batch, height, width, seed);
    if (initial.shape[0] !== batch) throw new Error(`initial latents have batch ${initial.shape[0]}, expected ${batch}`);
    let latents = tf.tidy(() => tf.mul(initial, scheduler.initNoiseSigma)) as tf.Tensor4D;
    initial.dispose();

    try {
      for (const [step, t] of timesteps.entries()) {
        const next = tf.tidy(() => {
          const input = useGuidance ? (tf.concat([latents, latents], 0) as tf.Tensor4D) : latents;
          const out = this.unet.forward(input, [t], context, options.unetOptions);
          let noisePredUncond: tf.Tensor4D | null = null;
          let noisePredText = out;
          let noisePred = out;
          if (useGuidance) {
            [noisePredUncond, noisePredText] = tf.split(out, 2, 0) as [tf.Tensor4D, tf.Tensor4D];
            noisePred = guidedPrediction(noisePredUncond, noisePredText, guidance, guidanceRescale);
          }
          const { prevSample, predOriginalSample } = scheduler.step(noisePred, t, latents);
          options.onStep?.({
            step,
            total: timesteps.length,
            timestep: t,
            latents: prevSample as tf.Tensor4D,
            predOriginalSample: predOriginalSample as tf.Tensor4D,
            noisePredUncond,
            noisePredText,
            noisePred,
          });
          return prevSample as tf.Tensor4D;
        });
        latents.dispose();
        latents = next;
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      if (scheduler instanceof DPMSolverMultistepScheduler) scheduler.dispose();
    }
    context.dispose();
    const images = this.decodeLatents(latents);
    return { images, latents, seed, timesteps };
  }

  dispose(): void {
    this.textEncoder.dispose();
    this.unet.store.dispose();
    this.vae.store.dispose();
  }
}
