// The training mechanics of both phases (spec §1.3-1.4): one step = sample instances, noise the latents, run the
// text encoder and UNet with the attention recorder, add reconstruction, prior and attention losses, clip and take
// an AdamW step on the phase's trainables. Placeholder rows train through TokenRowOverrides, so the vocabulary
// rows stay pinned without resetting them; their gradients still count in the clipping norm, as in the reference.
import { tf } from '../runtime/backend.ts';
import type { AttentionLayerInfo } from '../models/attention_processor.ts';
import { AutoencoderKL, type LatentDistribution } from '../models/autoencoder_kl.ts';
import type { StableDiffusionPipeline } from '../pipelines/stable_diffusion.ts';
import { DDPMScheduler } from '../schedulers/scheduling_ddpm.ts';
import { Generator } from '../util/random.ts';
import { attachTrainableLora, type TrainableLora } from '../concepts/lora.ts';
import { AttentionRecorder, groupByResolution, jointHeadMean, type LayerMaps } from './attention.ts';
import type { AttentionMass, Phase, StepOutcome, TokenAttentionMap } from './events.ts';
import { selectAttentionLayers } from '../models/attention_layers.ts';
import { attentionTermAt, attentionTermLoss, maskedReconstructionLoss, mseLoss, type AttentionTerm } from './losses.ts';
import { binarize, flipHorizontal, resizeBilinear, resizeNearest, unionMask, type Mask } from './masks.ts';
import { AdamW, clipGradNorm, lrFactor } from './optim.ts';
import type { LearnOptions, Phase1Options, Phase2Options } from './options.ts';
import { instancePrompt, sampleExample } from './sampling.ts';
import type { AddedPlaceholders } from './tokens.ts';

export interface NamedParameter {
  name: string;
  variable: tf.Variable;
}

export interface PhaseState {
  phase: Phase;
  options: Phase1Options | Phase2Options;
  layers: AttentionLayerInfo[];
  /** trainables besides the placeholder rows */
  parameters: NamedParameter[];
  optimizer: AdamW;
  prior: boolean;
  /** vocabulary rows are pinned (their gradients only enter the clipping norm) */
  pinned: boolean;
  lora: TrainableLora | null;
}

export interface ProbeResult {
  maps: TokenAttentionMap[];
  mass: AttentionMass[];
}

export interface LearnerInputs {
  pipeline: StableDiffusionPipeline;
  options: LearnOptions;
  /** [1, size, size, 3] in [-1, 1] */
  image: tf.Tensor4D;
  masks: Mask[];
  placeholders: AddedPlaceholders;
  generator: Generator;
  /** [1, size, size, 3] class images in [-1, 1] (prior preservation) */
  classImages: tf.Tensor4D[];
}

/** Variables of the LoRA adapters are seeded apart from the main stream so a phase-2 restart draws the same ones. */
const LORA_SEED_OFFSET = 0x10a;

export class Learner {
  readonly pipeline: StableDiffusionPipeline;
  readonly options: LearnOptions;
  readonly size: number;
  readonly masks: Mask[];
  readonly tokens: string[];
  readonly tokenIds: number[];
  readonly generator: Generator;
  /** the placeholder rows being learned [N, hidden] */
  readonly rows: tf.Variable;
  private readonly image: tf.Tensor4D;
  private readonly classImages: tf.Tensor4D[];
  private readonly scheduler: DDPMScheduler;
  private readonly latentSide: number;
  private readonly posteriors = new Map<string, LatentDistribution>();
  private readonly layerMasks = new Map<string, tf.Tensor2D>();

  constructor(inputs: LearnerInputs) {
    this.pipeline = inputs.pipeline;
    this.options = inputs.options;
    this.image = inputs.image;
    this.masks = inputs.masks;
    this.size = inputs.image.shape[1];
    this.tokens = inputs.placeholders.tokens;
    this.tokenIds = inputs.placeholders.tokenIds;
    this.generator = inputs.generator;
    this.classImages = inputs.classImages;
    this.scheduler = new DDPMScheduler(inputs.pipeline.schedulerConfig);
    this.latentSide = this.size / inputs.pipeline.vae.scaleFactor;
    if (!Number.isInteger(this.latentSide)) throw new Error(`the learning size ${this.size} is not a multiple of the VAE factor ${inputs.pipeline.vae.scaleFactor}`);
    this.rows = tf.tidy(() => tf.variable(this.pipeline.textEncoder.getTokenEmbeddings(this.tokenIds), false));
  }

  layersFor(phase: Phase): AttentionLayerInfo[] {
    const selection = (phase === 1 ? this.options.phase1 : this.options.phase2).attention.layers;
    return selectAttentionLayers(this.pipeline.unet.attentionLayers, selection, this.pipeline.vae.scaleFactor);
  }

  /** Declares the phase's trainables (attaching LoRA adapters in phase 2 lora mode) and a fresh optimizer. */
  startPhase(phase: Phase): PhaseState {
    const { pipeline, options } = this;
    const phaseOptions = phase === 1 ? options.phase1 : options.phase2;
    let parameters: NamedParameter[] = [];
    let lora: TrainableLora | null = null;
    let pinned = true;
    if (phase === 2 && options.phase2.mode === 'lora') {
      if (!options.phase2.pinVocabulary) throw new Error('phase2.pinVocabulary=false needs phase2.mode=full (LoRA output cannot carry drifted vocabulary rows)');
      lora = attachTrainableLora(pipeline, options.phase2.loraRank, options.phase2.loraAlpha, new Generator(options.seed + LORA_SEED_OFFSET));
      parameters = lora.targets.flatMap((t, i) => [
        { name: `lora.${t.component}.${t.prefix}.down`, variable: lora!.variables[2 * i]! },
        { name: `lora.${t.component}.${t.prefix}.up`, variable: lora!.variables[2 * i + 1]! },
      ]);
    } else if (phase === 2) {
      pinned = options.phase2.pinVocabulary;
      const table = pipeline.textEncoder.tokenEmbedding.weight;
      parameters = [
        ...pipeline.unet.store.keys().map((key) => ({ name: `unet.${key}`, variable: pipeline.unet.store.get(key) })),
        ...pipeline.textEncoder.store
          .keys()
          .filter((key) => !pinned || key !== table)
          .map((key) => ({ name: `text_encoder.${key}`, variable: pipeline.textEncoder.store.get(key) })),
      ];
    }
    const optimizer = new AdamW([this.rows, ...parameters.map((p) => p.variable)], phaseOptions.optimizer);
    return { phase, options: phaseOptions, layers: this.layersFor(phase), parameters, optimizer, prior: phaseOptions.prior, pinned, lora };
  }

  endPhase(state: PhaseState): void {
    state.optimizer.dispose();
  }

  /** One optimisation step; `step` is the 0-based step index within the phase. */
  step(state: PhaseState, step: number, phaseSteps: number): StepOutcome {
    const { pipeline, options, generator } = this;
    const { textEncoder, unet, vae } = pipeline;
    const phaseOptions = state.options;
    const example = sampleExample(generator, this.tokens, options.sampling, options.flipProbability);
    const timestep = generator.randint(this.scheduler.numTrainTimesteps);
    const latentSize = this.latentSide * this.latentSide * unet.inChannels;
    const noise = generator.randn(latentSize);
    const posteriorNoise = generator.randn(latentSize);
    let prior: { index: number; timestep: number; noise: Float32Array; posteriorNoise: Float32Array } | null = null;
    if (state.prior) {
      if (this.classImages.length === 0) throw new Error('prior preservation needs class images');
      prior = { index: generator.randint(this.classImages.length), timestep: generator.randint(this.scheduler.numTrainTimesteps), noise: generator.randn(latentSize), posteriorNoise: generator.randn(latentSize) };
    }
    const term = attentionTermAt(phaseOptions.attention, step, timestep);
    const prompts = prior ? [options.prior.classPrompt, example.prompt] : [example.prompt];
    const ids = pipeline.tokenize(prompts);
    const instanceIds = ids[ids.length - 1]!;
    const positions = example.instances.map((i) => this.position(instanceIds, i));
    const sampleIndex = prior ? 1 : 0;
    const timesteps = prior ? [prior.timestep, timestep] : [timestep];
    const latentShape: [number, number, number, number] = [1, this.latentSide, this.latentSide, unet.inChannels];

    const otherIds = [...new Set(ids.flat())].filter((id) => !this.tokenIds.includes(id));
    const otherRows = state.pinned ? textEncoder.getTokenEmbeddings(otherIds) : null;
    const inputs = tf.tidy(() => {
      const maskedInstance = options.sampling === 'separate' ? example.instances[0]! : null;
      const latent = (posterior: LatentDistribution, eps: Float32Array) =>
        vae.scaleLatents(AutoencoderKL.sample(posterior, tf.tensor4d(eps, latentShape)));
      let z0 = latent(this.posterior(maskedInstance, example.flip), posteriorNoise);
      let eps = tf.tensor4d(noise, latentShape);
      if (prior) {
        z0 = tf.concat([latent(this.classPosterior(prior.index), prior.posteriorNoise), z0], 0);
        eps = tf.concat([tf.tensor4d(prior.noise, latentShape), eps], 0);
      }
      const noisy = this.scheduler.addNoise(z0, eps, timesteps) as tf.Tensor4D;
      const target = this.target(z0, eps, timesteps);
      const recMask = phaseOptions.maskedLoss ? this.reconstructionMask(example.instances, example.flip) : tf.ones([1, this.latentSide, this.latentSide, 1]);
      return { noisy, target, recMask };
    });

    const recorder = term ? new AttentionRecorder(state.layers, sampleIndex, positions) : null;
    const kept: { reconstruction?: tf.Scalar; prior?: tf.Scalar; attention?: tf.Scalar } = {};
    const lossFn = (): tf.Scalar => {
      const overrideIds = otherRows ? [...this.tokenIds, ...otherIds] : this.tokenIds;
      const overrideRows = otherRows ? (tf.concat([this.rows, otherRows], 0) as tf.Tensor2D) : this.rowsTensor;
      const embeds = textEncoder.embedTokens(ids, { tokenIds: overrideIds, rows: overrideRows });
      const context = textEncoder.forward({ inputIds: ids, inputsEmbeds: embeds }).lastHiddenState;
      const pred = unet.forward(inputs.noisy, timesteps, context, recorder ? { controller: recorder } : {});
      const instance = (x: tf.Tensor4D) => (prior ? (tf.slice(x, [1, 0, 0, 0], [1, -1, -1, -1]) as tf.Tensor4D) : x);
      const predInstance = instance(pred);
      const targetInstance = instance(inputs.target);
      const reconstruction = maskedReconstructionLoss(predInstance, targetInstance, inputs.recMask as tf.Tensor4D);
      let total = tf.mul(reconstruction, phaseOptions.reconstructionWeight) as tf.Scalar;
      kept.reconstruction = tf.keep(reconstruction);
      if (prior) {
        const priorLoss = mseLoss(tf.slice(pred, [0, 0, 0, 0], [1, -1, -1, -1]), tf.slice(inputs.target, [0, 0, 0, 0], [1, -1, -1, -1]));
        kept.prior = tf.keep(priorLoss);
        total = tf.add(total, tf.mul(priorLoss, options.prior.weight));
      }
      if (term && recorder) {
        const maskAt = (instance: number, height: number, width: number, binary: boolean) => this.layerMask(instance, example.flip, height, width, binary);
        const attention = attentionLoss(term, phaseOptions.attention.rewardAlpha, recorder.records, example.instances, maskAt);
        kept.attention = tf.keep(attention);
        total = tf.add(total, attention);
      }
      return total;
    };

    const variables = [this.rows, ...(otherRows ? [otherRows] : []), ...state.parameters.map((p) => p.variable)];
    const { value, grads } = tf.engine().gradients(lossFn, variables, undefined, true);
    const filled = grads.map((g, i) => g ?? tf.zerosLike(variables[i]!));
    const { norm, clipped } = clipGradNorm(filled, phaseOptions.optimizer.maxGradNorm);
    const lr = phaseOptions.optimizer.learningRate * lrFactor(phaseOptions.optimizer, step, phaseSteps);
    const updates = otherRows ? [clipped[0]!, ...clipped.slice(2)] : clipped;
    state.optimizer.step(updates, lr);

    const read = (t?: tf.Scalar) => (t ? t.dataSync()[0]! : 0);
    const outcome: StepOutcome = {
      loss: value.dataSync()[0]!,
      terms: { reconstruction: read(kept.reconstruction), prior: read(kept.prior), attention: read(kept.attention) },
      attentionTerm: term?.kind ?? null,
      timestep,
      prompt: example.prompt,
      flip: example.flip,
      lr,
      gradNorm: norm,
    };
    tf.dispose([value, ...filled, ...clipped, ...Object.values(kept), inputs.noisy, inputs.target, inputs.recMask]);
    if (otherRows) otherRows.dispose();
    recorder?.dispose();
    return outcome;
  }

  /**
   * Head-averaged placeholder maps of `layers` for the prompt with every instance, at fixed `timesteps` and noise
   * (seeded by `seed`) on the unflipped image; returns the layer-averaged map per token at the finest resolution and
   * each token's share of attention mass inside every instance mask.
   */
  probe(layers: AttentionLayerInfo[], timesteps: number[], seed: number): ProbeResult {
    const { pipeline } = this;
    const { textEncoder, unet, vae } = pipeline;
    const all = this.tokens.map((_, i) => i);
    const ids = pipeline.tokenize([instancePrompt(this.tokens, all)]);
    const positions = all.map((i) => this.position(ids[0]!, i));
    const latentShape: [number, number, number, number] = [1, this.latentSide, this.latentSide, unet.inChannels];
    const noise = new Generator(seed).randn(latentShape.reduce((a, b) => a * b, 1));
    const count = this.tokens.length;
    const shares = Array.from({ length: count }, () => new Float64Array(count));
    const finest = layers.reduce((best, layer) => Math.min(best, layer.level), Infinity);
    const side = this.latentSide / 2 ** finest;
    const sums = Array.from({ length: count }, () => new Float32Array(side * side));
    let recorded = 0;
    tf.tidy(() => {
      const embeds = textEncoder.embedTokens(ids, { tokenIds: this.tokenIds, rows: this.rowsTensor });
      const context = textEncoder.forward({ inputIds: ids, inputsEmbeds: embeds }).lastHiddenState;
      const z0 = vae.scaleLatents(this.posterior(null, false).mean);
      const eps = tf.tensor4d(noise, latentShape);
      for (const t of timesteps) {
        const recorder = new AttentionRecorder(layers, 0, positions);
        unet.forward(this.scheduler.addNoise(z0, eps, [t]) as tf.Tensor4D, [t], context, { controller: recorder });
        for (const record of recorder.records) {
          record.maps.forEach((mapTensor, token) => {
            const map: Mask = { width: record.width, height: record.height, data: mapTensor.dataSync() as Float32Array };
            const total = map.data.reduce((s, v) => s + v, 0);
            this.masks.forEach((full, j) => {
              const mask = resizeBilinear(full, record.width, record.height);
              let inside = 0;
              for (let k = 0; k < map.data.length; k++) inside += map.data[k]! * mask.data[k]!;
              shares[token]![j]! += total > 0 ? inside / total : 0;
            });
            const resized = resizeBilinear(map, side, side);
            for (let k = 0; k < resized.data.length; k++) sums[token]![k]! += resized.data[k]!;
          });
          recorded++;
        }
        recorder.dispose();
      }
    });
    const mass: AttentionMass[] = this.tokens.map((token, i) => {
      const perMask = Array.from(shares[i]!, (s) => s / recorded);
      return { token, own: perMask[i]!, perMask };
    });
    const maps: TokenAttentionMap[] = this.tokens.map((token, i) => ({ token, map: { width: side, height: side, data: sums[i]!.map((v) => v / recorded) } }));
    return { maps, mass };
  }

  /** Writes the learned rows into the text encoder's table (before generating with the plain pipeline or saving). */
  syncRowsToTable(): void {
    this.pipeline.textEncoder.setTokenEmbeddings(this.tokenIds, this.rowsTensor);
  }

  private get rowsTensor(): tf.Tensor2D {
    return this.rows as tf.Tensor as tf.Tensor2D;
  }

  rowsData(): Float32Array {
    return Float32Array.from(this.rows.dataSync() as Float32Array);
  }

  setRows(data: Float32Array): void {
    if (data.length !== this.rows.size) throw new Error(`placeholder rows: expected ${this.rows.size} values, got ${data.length}`);
    tf.tidy(() => this.rows.assign(tf.tensor(data, this.rows.shape)));
  }

  dispose(): void {
    this.rows.dispose();
    for (const p of this.posteriors.values()) tf.dispose([p.mean, p.logvar, p.std]);
    for (const m of this.layerMasks.values()) m.dispose();
    this.posteriors.clear();
    this.layerMasks.clear();
  }

  private position(ids: readonly number[], instance: number): number {
    const position = ids.indexOf(this.tokenIds[instance]!);
    if (position < 0) throw new Error(`${this.tokens[instance]} does not fit in the ${ids.length}-token prompt; use fewer instances`);
    return position;
  }

  /** The regression target of the model's parametrisation (tiny-sd2 and SD2.1-768 predict v). */
  private target(z0: tf.Tensor4D, eps: tf.Tensor4D, timesteps: number[]): tf.Tensor4D {
    const type = this.scheduler.predictionType;
    if (type === 'epsilon') return eps;
    if (type === 'v_prediction') return this.scheduler.getVelocity(z0, eps, timesteps) as tf.Tensor4D;
    return z0;
  }

  /** The VAE posterior of the training image (masked by one instance in separate sampling, maybe flipped), encoded once. */
  private posterior(maskedInstance: number | null, flip: boolean): LatentDistribution {
    const key = `${maskedInstance ?? 'all'}:${flip}`;
    const cached = this.posteriors.get(key);
    if (cached) return cached;
    const posterior = tf.tidy(() => {
      let image: tf.Tensor4D = this.image;
      if (maskedInstance !== null) {
        const mask = this.masks[maskedInstance]!;
        image = tf.mul(image, tf.tensor4d(mask.data, [1, mask.height, mask.width, 1]));
      }
      if (flip) image = tf.reverse(image, 2);
      const p = this.pipeline.vae.encode(image);
      return { mean: tf.keep(p.mean), logvar: tf.keep(p.logvar), std: tf.keep(p.std) };
    });
    this.posteriors.set(key, posterior);
    return posterior;
  }

  private classPosterior(index: number): LatentDistribution {
    const key = `class:${index}`;
    const cached = this.posteriors.get(key);
    if (cached) return cached;
    const posterior = tf.tidy(() => {
      const p = this.pipeline.vae.encode(this.classImages[index]!);
      return { mean: tf.keep(p.mean), logvar: tf.keep(p.logvar), std: tf.keep(p.std) };
    });
    this.posteriors.set(key, posterior);
    return posterior;
  }

  /** m: the union of the shown instances' masks, nearest-downsampled to the latent grid, [1, h, w, 1]. */
  private reconstructionMask(instances: number[], flip: boolean): tf.Tensor4D {
    let union = unionMask(instances.map((i) => this.masks[i]!));
    if (flip) union = flipHorizontal(union);
    const small = resizeNearest(union, this.latentSide, this.latentSide);
    return tf.tensor4d(small.data, [1, small.height, small.width, 1]);
  }

  /** M_i at a map's resolution: bilinear for MIFO's terms, binary nearest for Break-a-Scene's. */
  private layerMask(instance: number, flip: boolean, height: number, width: number, binary: boolean): tf.Tensor2D {
    const key = `${binary ? 'binary' : 'soft'}:${instance}:${flip}:${height}x${width}`;
    const cached = this.layerMasks.get(key);
    if (cached) return cached;
    let mask = this.masks[instance]!;
    if (flip) mask = flipHorizontal(mask);
    const resized = binary ? binarize(resizeNearest(mask, width, height)) : resizeBilinear(mask, width, height);
    const tensor = tf.keep(tf.tensor2d(resized.data, [height, width]));
    this.layerMasks.set(key, tensor);
    return tensor;
  }

}

/** M_i at a map's resolution: (instance, height, width, binary) -> [height, width]. */
export type LayerMaskLookup = (instance: number, height: number, width: number, binary: boolean) => tf.Tensor2D;

/**
 * L_attn for the maps of one UNet call, `records[*].maps[k]` belonging to `instances[k]`. MIFO: Σ_layers Σ_instances
 * λ·ℓ(head-averaged map, bilinear mask). Break-a-Scene: per resolution, the heads of all its layers averaged jointly,
 * then λ·Σ_instances ℓ against the binary nearest mask.
 */
export function attentionLoss(term: NonNullable<AttentionTerm>, alpha: number, records: LayerMaps[], instances: number[], maskAt: LayerMaskLookup): tf.Scalar {
  return tf.tidy(() => {
    const losses: tf.Scalar[] = [];
    if (term.kind === 'bas') {
      for (const group of groupByResolution(records)) {
        const { height, width } = group[0]!;
        instances.forEach((instance, k) => losses.push(attentionTermLoss('bas', jointHeadMean(group, k), maskAt(instance, height, width, true), alpha)));
      }
    } else {
      for (const record of records) {
        instances.forEach((instance, k) => losses.push(attentionTermLoss(term.kind, record.maps[k]!, maskAt(instance, record.height, record.width, false), alpha)));
      }
    }
    if (losses.length === 0) throw new Error('the attention loss found no maps in the chosen layers');
    return tf.mul(tf.addN(losses), term.weight) as tf.Scalar;
  });
}
