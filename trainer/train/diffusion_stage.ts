// Stage 2: the CLIPTextModel and UNet2DConditionModel, trained together from scratch on the diffusion loss in the
// latent space of the frozen stage-1 VAE. Captions are dropped to "" at a fixed rate so the same model serves as the
// unconditional branch of classifier-free guidance. An EMA of both networks is what gets exported.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors } from '../io/safetensors.ts';
import { tensorToRgbImages } from '../io/image.ts';
import { AutoencoderKL } from '../models/autoencoder_kl.ts';
import { CLIPTextModel, type CLIPTextConfig } from '../models/clip_text_model.ts';
import { UNet2DConditionModel } from '../models/unet_2d_condition.ts';
import { StableDiffusionPipeline } from '../pipelines/stable_diffusion.ts';
import { ATTENTION_LAYERS_FILE, attentionLayersJson } from '../pipelines/attention_layers_config.ts';
import { GENERATION_CONFIG_FILE, generationConfigJson, SCHEDULER_CLASS_OF_SAMPLER } from '../pipelines/generation_defaults.ts';
import { tf } from '../runtime/backend.ts';
import { DDPMScheduler } from '../schedulers/scheduling_ddpm.ts';
import { DPM_SOLVER_VARIANT } from '../schedulers/scheduling_dpmsolver_multistep.ts';
import { CLIPTokenizer } from '../tokenizer/clip_tokenizer.ts';
import { evaluationSet, VALIDATION_FIRST_SEED } from '../world/evaluation_set.ts';
import { writeClipTokenizer } from '../world/tokenizer_files.ts';
import { worldVocabulary } from '../world/vocabulary.ts';
import type { NamedParameter } from './checkpoint.ts';
import { batchTensor, drawWorldBatch, sliceSamples, type WorldBatch } from './data.ts';
import { ExponentialMovingAverage } from './ema.ts';
import { captionObjectWordPositions, groundingTargets, TokenGroundingController, type GroundedSample, type TokenGrounding } from './grounding.ts';
import { writePreviewGrid } from './preview.ts';
import { DIFFUSERS_VERSION, emphasizedTimestep, sceneOptionsAt, stageFingerprint, timestepEmphasisAt, tokenGroundingAt, type Recipe } from './recipe.ts';
import type { StepLoss, TrainingStage } from './stage.ts';
import { saveVae } from './vae_stage.ts';

/** Seed offsets of the networks' initial weights (the VAE uses recipe.seed itself). */
const TEXT_ENCODER_SEED_OFFSET = 1;
const UNET_SEED_OFFSET = 2;

export interface DiffusionModels {
  tokenizer: CLIPTokenizer;
  textEncoder: CLIPTextModel;
  unet: UNet2DConditionModel;
  vae: AutoencoderKL;
}

/** Writes the world's CLIP tokenizer folder and returns the text-encoder config that goes with it. */
export function writeWorldTokenizer(dir: string, recipe: Recipe): CLIPTextConfig & Record<string, unknown> {
  const build = writeClipTokenizer(dir, worldVocabulary(), { headroom: recipe.textEncoder.headroom, modelMaxLength: recipe.textEncoder.maxLength });
  const tokenizer = CLIPTokenizer.fromPretrained(dir);
  const t = recipe.textEncoder;
  return {
    architectures: ['CLIPTextModel'],
    model_type: 'clip_text_model',
    vocab_size: build.textEncoderVocabSize,
    hidden_size: t.hidden_size,
    intermediate_size: t.intermediate_size,
    projection_dim: t.hidden_size,
    num_hidden_layers: t.num_hidden_layers,
    num_attention_heads: t.num_attention_heads,
    max_position_embeddings: t.maxLength,
    hidden_act: t.hidden_act,
    layer_norm_eps: 1e-5,
    attention_dropout: 0,
    dropout: 0,
    initializer_range: 0.02,
    initializer_factor: 1,
    bos_token_id: tokenizer.bosTokenId,
    eos_token_id: tokenizer.eosTokenId,
    pad_token_id: tokenizer.padTokenId,
    torch_dtype: 'float32',
  };
}

/** Fresh text encoder and UNet (seeded from the recipe) next to the trained VAE folder. */
export function createDiffusionModels(recipe: Recipe, tokenizerDir: string, vaeDir: string): DiffusionModels & { textEncoderConfig: Record<string, unknown> } {
  const textEncoderConfig = writeWorldTokenizer(tokenizerDir, recipe);
  const tokenizer = CLIPTokenizer.fromPretrained(tokenizerDir);
  const textEncoder = CLIPTextModel.fromConfig(textEncoderConfig);
  textEncoder.store.initialize(recipe.seed + TEXT_ENCODER_SEED_OFFSET);
  const unet = new UNet2DConditionModel(recipe.unet);
  unet.store.initialize(recipe.seed + UNET_SEED_OFFSET);
  const vae = AutoencoderKL.fromPretrained(vaeDir).model;
  return { tokenizer, textEncoder, unet, vae, textEncoderConfig };
}

export function diffusionParameters(models: DiffusionModels): NamedParameter[] {
  return [
    ...models.textEncoder.store.keys().map((key) => ({ name: `text_encoder.${key}`, variable: models.textEncoder.store.get(key) })),
    ...models.unet.store.keys().map((key) => ({ name: `unet.${key}`, variable: models.unet.store.get(key) })),
  ];
}

export function diffusionTrainingStage(recipe: Recipe, models: DiffusionModels, modelDir: string): TrainingStage & { ema: ExponentialMovingAverage } {
  const settings = recipe.diffusion;
  const { tokenizer, textEncoder, unet, vae } = models;
  const parameters = diffusionParameters(models);
  const ema = new ExponentialMovingAverage(parameters, settings.emaDecay);
  const scheduler = new DDPMScheduler(recipe.scheduler);
  const latentSide = recipe.world.imageSize / vae.scaleFactor;
  const latentShape: [number, number, number, number] = [settings.batch, latentSide, latentSide, unet.inChannels];
  const latentSize = latentShape.reduce((a, b) => a * b, 1);
  const previewCases = evaluationSet(settings.previewCaptions, { firstSeed: VALIDATION_FIRST_SEED });
  return {
    name: 'diffusion',
    fingerprint: stageFingerprint(recipe, 'diffusion'),
    settings,
    parameters,
    ema,
    shapeEmphasis: settings.shapeEmphasis,
    prepareStep(generator, step) {
      const grounding = tokenGroundingAt(settings.shapeEmphasis, step);
      const sceneOptions = sceneOptionsAt(settings.shapeEmphasis, step);
      const batch = drawWorldBatch(generator, recipe.world, settings.batch, recipe.world.imageSize, sceneOptions, { masks: grounding !== null });
      const captions = batch.captions.map((caption) => (generator.random() < settings.captionDropout ? '' : caption));
      const posteriorNoise = generator.randn(latentSize);
      const band = timestepEmphasisAt(settings.shapeEmphasis, step);
      const timesteps = Array.from({ length: settings.batch }, () => emphasizedTimestep(generator.random(), scheduler.numTrainTimesteps, band));
      const noise = generator.randn(latentSize);
      const ids = tokenizer.encodeBatch(captions, { padding: 'max_length', truncation: true }).inputIds;
      const groundingInputs = grounding ? groundingBatch(grounding, batch, captions, ids, timesteps, tokenizer, latentSide) : null;
      const inputs = tf.tidy(() => {
        const posterior = vae.encode(batchTensor(batch));
        const latents = vae.scaleLatents(AutoencoderKL.sample(posterior, tf.tensor4d(posteriorNoise, latentShape)));
        const eps = tf.tensor4d(noise, latentShape);
        const noisy = scheduler.addNoise(latents, eps, timesteps) as tf.Tensor4D;
        const target =
          scheduler.predictionType === 'v_prediction'
            ? (scheduler.getVelocity(latents, eps, timesteps) as tf.Tensor4D)
            : scheduler.predictionType === 'epsilon'
              ? eps
              : latents;
        return { noisy, target };
      });
      return {
        lossFn: ({ start, size }): StepLoss => {
          const context = textEncoder.forward({ inputIds: ids.slice(start, start + size) }).lastHiddenState;
          const controller = groundingInputs?.controllerFor(start, size) ?? null;
          const prediction = unet.forward(sliceSamples(inputs.noisy, start, size), timesteps.slice(start, start + size), context, controller ? { controller } : {});
          const diffusionLoss = tf.mean(tf.square(tf.sub(prediction, sliceSamples(inputs.target, start, size)))) as tf.Scalar;
          if (!controller) return { loss: diffusionLoss, terms: grounding ? { diffusion: diffusionLoss } : {} };
          const groundingLoss = controller.mean();
          return { loss: tf.add(diffusionLoss, tf.mul(groundingLoss, grounding!.weight)) as tf.Scalar, terms: { diffusion: diffusionLoss, grounding: groundingLoss } };
        },
        dispose: () => {
          tf.dispose([inputs.noisy, inputs.target]);
          groundingInputs?.dispose();
        },
      };
    },
    async preview(dir, step) {
      const pipeline = new StableDiffusionPipeline(modelDir, tokenizer, textEncoder, unet, vae, recipe.scheduler);
      const images = await ema.withAveragedWeights(async () => {
        const out = [];
        for (const testCase of previewCases) {
          const result = await pipeline.generate({
            prompt: testCase.caption,
            seed: testCase.seed,
            steps: settings.previewSteps,
            guidance: settings.previewGuidance,
            sampler: recipe.generation.sampler,
            guidanceRescale: recipe.generation.guidanceRescale,
          });
          out.push(...tensorToRgbImages(result.images));
          tf.dispose([result.images, result.latents]);
        }
        return out;
      });
      await writePreviewGrid(dir, step, images, Math.min(8, images.length), previewCases.map((c) => `seed ${c.seed}: ${c.caption}`));
    },
  };
}

/**
 * The token-grounding targets of a batch at each grounded level's map size, and a controller per micro-batch. A sample
 * is grounded unless its caption was dropped or its timestep is maxTimestep or later; a micro-batch with no grounded
 * word gets no controller.
 */
function groundingBatch(
  grounding: TokenGrounding,
  batch: WorldBatch,
  captions: readonly string[],
  ids: readonly number[][],
  timesteps: readonly number[],
  tokenizer: CLIPTokenizer,
  latentSide: number,
): { controllerFor(start: number, size: number): TokenGroundingController | null; dispose(): void } {
  const keys = ids[0]!.length;
  const side = batch.side;
  const samples = batch.scenes.map((scene, b): GroundedSample | null => {
    if (captions[b] === '' || timesteps[b]! >= grounding.maxTimestep) return null;
    const positions = captionObjectWordPositions(tokenizer, scene.objects, ids[b]!);
    return {
      objects: scene.objects.map((_, i) => ({ positions: positions[i]!, mask: { width: side, height: side, data: Float32Array.from(batch.masks![b]![i]!) } })),
    };
  });
  const perSide = grounding.levels.map((level) => {
    const targets = groundingTargets(samples, keys, latentSide / 2 ** level);
    return {
      side: targets.side,
      weights: targets.tokenWeights,
      tokenMasks: tf.tensor3d(targets.tokenMasks, [samples.length, targets.side * targets.side, keys]),
      tokenWeights: tf.tensor2d(targets.tokenWeights, [samples.length, keys]),
    };
  });
  const levels = new Set(grounding.levels);
  return {
    controllerFor(start, size) {
      if (!perSide[0]!.weights.subarray(start * keys, (start + size) * keys).some((w) => w > 0)) return null;
      const targets = new Map(perSide.map((t) => [t.side, { tokenMasks: sliceSamples(t.tokenMasks, start, size), tokenWeights: sliceSamples(t.tokenWeights, start, size) }]));
      return new TokenGroundingController(levels, targets);
    },
    dispose: () => tf.dispose(perSide.flatMap((t) => [t.tokenMasks, t.tokenWeights])),
  };
}

/**
 * Writes the diffusers pipeline folder: model_index.json, scheduler, tokenizer, text_encoder, unet and vae, with the
 * EMA weights of the text encoder and UNet, all in `dtype`, generation_config.json with the recipe's sampling settings
 * and, when the recipe names them, attention_layers.json.
 */
export async function exportPipeline(
  outDir: string,
  recipe: Recipe,
  models: DiffusionModels & { textEncoderConfig: Record<string, unknown> },
  ema: ExponentialMovingAverage | null,
  dtype: 'F32' | 'F16' = 'F16',
): Promise<void> {
  mkdirSync(outDir, { recursive: true });
  const json = (path: string, value: unknown) => {
    mkdirSync(join(outDir, path, '..'), { recursive: true });
    writeFileSync(join(outDir, path), `${JSON.stringify(value, null, 2)}\n`);
  };
  const schedulerClass = SCHEDULER_CLASS_OF_SAMPLER[recipe.generation.sampler];
  json('model_index.json', {
    _class_name: 'StableDiffusionPipeline',
    _diffusers_version: DIFFUSERS_VERSION,
    _name_or_path: recipe.name,
    feature_extractor: [null, null],
    requires_safety_checker: false,
    safety_checker: [null, null],
    scheduler: ['diffusers', schedulerClass],
    text_encoder: ['transformers', 'CLIPTextModel'],
    tokenizer: ['transformers', 'CLIPTokenizer'],
    unet: ['diffusers', 'UNet2DConditionModel'],
    vae: ['diffusers', 'AutoencoderKL'],
  });
  // the noise schedule is the one trained with; box-controlled synthesis reads it for DDIM whatever the class
  const solverVariant = recipe.generation.sampler === 'dpm-solver++' ? DPM_SOLVER_VARIANT : {};
  json('scheduler/scheduler_config.json', { _class_name: schedulerClass, _diffusers_version: DIFFUSERS_VERSION, ...recipe.scheduler, ...solverVariant });
  json(GENERATION_CONFIG_FILE, generationConfigJson(recipe.generation));
  const attentionLayers = attentionLayersJson(recipe.attentionLayers);
  if (attentionLayers) json(ATTENTION_LAYERS_FILE, attentionLayers);
  else rmSync(join(outDir, ATTENTION_LAYERS_FILE), { force: true });
  writeWorldTokenizer(join(outDir, 'tokenizer'), recipe);
  const torchDtype = dtype === 'F16' ? 'float16' : 'float32';
  json('text_encoder/config.json', { ...models.textEncoderConfig, torch_dtype: torchDtype });
  json('unet/config.json', { _class_name: 'UNet2DConditionModel', _diffusers_version: DIFFUSERS_VERSION, ...recipe.unet });
  const write = () => {
    writeSafetensors(join(outDir, 'text_encoder', 'model.safetensors'), models.textEncoder.store.stateDict({ dtype }));
    writeSafetensors(join(outDir, 'unet', 'diffusion_pytorch_model.safetensors'), models.unet.store.stateDict({ dtype }));
  };
  if (ema) await ema.withAveragedWeights(write);
  else write();
  saveVae(join(outDir, 'vae'), models.vae, models.vae.scalingFactor, dtype);
}
