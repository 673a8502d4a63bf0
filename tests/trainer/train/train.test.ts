// The default-model recipe on a tiny config: each stage lowers its loss, an interrupted run resumes bit for bit,
// and the exported folder loads as a StableDiffusionPipeline and generates.
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { writePng } from '../../../trainer/io/image.ts';
import { SafetensorsFile } from '../../../trainer/io/safetensors.ts';
import { AutoencoderKL } from '../../../trainer/models/autoencoder_kl.ts';
import { CLIPTextModel } from '../../../trainer/models/clip_text_model.ts';
import { UNet2DConditionModel } from '../../../trainer/models/unet_2d_condition.ts';
import { StableDiffusionPipeline } from '../../../trainer/pipelines/stable_diffusion.ts';
import { initRuntime, tf } from '../../../trainer/runtime/backend.ts';
import { createDiffusionModels, diffusionTrainingStage, type DiffusionModels } from '../../../trainer/train/diffusion_stage.ts';
import { caseImageFile, evaluateGeneration, evaluateReconstruction, generatedImages, measureCeiling, savedImages, timeGeneration } from '../../../trainer/train/evaluate.ts';
import { readStageCheckpointState } from '../../../trainer/train/checkpoint.ts';
import { LossLog } from '../../../trainer/train/log.ts';
import { readTrainingRecord, renderModelCard } from '../../../trainer/train/model_card.ts';
import { selectAttentionLayers } from '../../../trainer/models/attention_layers.ts';
import { layersByOrder } from '../../../trainer/synth/layers.ts';
import { emphasizedTimestep, firstEmphasisDifference, firstScheduleDifference, learningRateFactor, parseRecipe, readRecipe, RecipeError, sceneOptionsAt, stageFingerprint, timestepEmphasisAt, tokenGroundingAt, type Recipe } from '../../../trainer/train/recipe.ts';
import { SAME_COLOUR_GAP } from '../../../trainer/world/sampler.ts';
import { runStage, STABLE_CHECKPOINT_DIR, type TrainingStage } from '../../../trainer/train/stage.ts';
import { continueFromExport, exportCheckpoint, finalVaeDir, rewindToStableCheckpoint, trainDefaultModel, vaeModelDir } from '../../../trainer/train/train.ts';
import { createVae, latentScalingFactor, psnr, saveVae, vaeTrainingStage } from '../../../trainer/train/vae_stage.ts';
import { Generator } from '../../../trainer/util/random.ts';
import { SHAPE_NAMES } from '../../../trainer/world/definitions.ts';
import { evaluationSet } from '../../../trainer/world/evaluation_set.ts';
import { judgeScene } from '../../../trainer/world/evaluator/evaluate.ts';
import { renderScene } from '../../../trainer/world/render.ts';
import { buildClipTokenizerFiles } from '../../../trainer/world/tokenizer_files.ts';
import { worldVocabulary } from '../../../trainer/world/vocabulary.ts';

const tinyRecipePath = resolve(import.meta.dirname, '../../../trainer/train/configs/tiny.json');
const defaultRecipePath = resolve(import.meta.dirname, '../../../trainer/train/configs/default.json');
const wideRecipePath = resolve(import.meta.dirname, '../../../trainer/train/configs/wide16.json');

function tinyRecipe(changes: (recipe: Recipe) => void = () => {}): Recipe {
  const recipe = readRecipe(tinyRecipePath);
  changes(recipe);
  return recipe;
}

/** The stage's loss on one fixed batch (same scenes, noise and timesteps every call). */
function fixedBatchLoss(stage: TrainingStage): number {
  const prepared = stage.prepareStep(new Generator(12345), 0);
  const value = tf.tidy(() => prepared.lossFn({ start: 0, size: stage.settings.batch }).loss.dataSync()[0]!);
  prepared.dispose();
  return value;
}

/** A fresh text encoder and UNet next to an untrained (saved) VAE, for stage-2 tests that need no VAE quality. */
function modelsOnUntrainedVae(recipe: Recipe, name: string): DiffusionModels {
  const vaeDir = join(scratch, `${name}-vae`);
  const vae = createVae(recipe.vae.config, recipe.seed);
  saveVae(vaeDir, vae, latentScalingFactor(vae, recipe, 8), 'F32');
  vae.store.dispose();
  return createDiffusionModels(recipe, join(scratch, `${name}-tokenizer`), vaeDir);
}

function disposeDiffusion(models: DiffusionModels, stages: { ema: { dispose(): void } }[]): void {
  for (const stage of stages) stage.ema.dispose();
  models.textEncoder.dispose();
  models.unet.store.dispose();
  models.vae.store.dispose();
}

function readTensors(path: string): Map<string, Float32Array> {
  const file = SafetensorsFile.open(path);
  try {
    return new Map(file.keys().map((key) => [key, file.readFloat32(key).data]));
  } finally {
    file.close();
  }
}

function checkpointTensors(workDir: string, stage: 'vae' | 'decoder' | 'diffusion'): Map<string, Float32Array> {
  const dir = join(workDir, stage, 'checkpoint');
  const state = JSON.parse(readFileSync(join(dir, 'checkpoint.json'), 'utf8')) as { tensors: string };
  return readTensors(join(dir, state.tensors));
}

function withoutTimes(workDir: string): unknown[] {
  return new LossLog(join(workDir, 'loss.jsonl')).records().map(({ seconds: _seconds, ...rest }) => rest);
}

let scratch: string;
before(async () => {
  await initRuntime();
  scratch = mkdtempSync(join(tmpdir(), 'mifo-train-'));
});
after(() => rmSync(scratch, { recursive: true, force: true }));

test('PSNR of 8-bit images: off by one everywhere is 48.13 dB, one full-scale error in four values 6.02 dB', () => {
  const a = new Uint8Array([10, 20, 30, 40]);
  assert.ok(Math.abs(psnr(a, a.map((v) => v + 1)) - 48.1308) < 1e-3);
  assert.ok(Math.abs(psnr(new Uint8Array(4), Uint8Array.from([0, 0, 0, 255])) - 6.0206) < 1e-3);
});

describe('recipe files', () => {
  for (const path of [defaultRecipePath, wideRecipePath]) test(`${basename(path)} parses and fits the 40 MB budget of the embedded model in fp16`, () => {
    const recipe = readRecipe(path);
    const vocabSize = buildClipTokenizerFiles(worldVocabulary(), { headroom: recipe.textEncoder.headroom }).textEncoderVocabSize;
    const parameters = (specs: Map<string, { torchShape: number[] }>) => [...specs.values()].reduce((n, s) => n + s.torchShape.reduce((a, b) => a * b, 1), 0);
    const t = recipe.textEncoder;
    const textEncoder = CLIPTextModel.fromConfig({ ...t, vocab_size: vocabSize, max_position_embeddings: t.maxLength });
    const total = parameters(textEncoder.store.specs) + parameters(new UNet2DConditionModel(recipe.unet).store.specs) + parameters(new AutoencoderKL(recipe.vae.config).store.specs);
    assert.ok(2 * total < 40e6, `${total} parameters take ${(2 * total) / 1e6} MB in fp16`);
    // its attention layers exist in its UNet, and the mask maps share one resolution
    const unet = new UNet2DConditionModel(recipe.unet);
    const vaeFactor = 2 ** (recipe.vae.config.block_out_channels.length - 1);
    const { learning, synthesis } = recipe.attentionLayers;
    assert.ok(learning && synthesis, 'the recipe names its attention layers');
    for (const selection of [learning.phase1, learning.phase2]) assert.ok(selectAttentionLayers(unet.attentionLayers, selection, vaeFactor).length > 0);
    layersByOrder(unet.attentionLayers, synthesis.lossLayers, 'loss layers');
    assert.equal(new Set(layersByOrder(unet.attentionLayers, synthesis.mapLayers, 'map layers').map((l) => l.level)).size, 1);
  });

  test('mistakes are refused with the field named', () => {
    const raw = JSON.parse(readFileSync(tinyRecipePath, 'utf8'));
    assert.throws(() => parseRecipe({ ...raw, vae: { ...raw.vae, crop: 5 } }), /vae.crop and world.imageSize must be multiples/);
    assert.throws(() => parseRecipe({ ...raw, diffusion: { ...raw.diffusion, captionDropuot: 0.1 } }), /unknown field\(s\): captionDropuot/);
    assert.throws(() => parseRecipe({ ...raw, unet: { ...raw.unet, cross_attention_dim: 64 } }), /cross_attention_dim/);
    assert.throws(() => parseRecipe({ ...raw, diffusion: { ...raw.diffusion, optimizer: { ...raw.diffusion.optimizer, schedule: 'linear' } } }), RecipeError);
    const withOptimizer = (changes: object) => ({ ...raw, diffusion: { ...raw.diffusion, optimizer: { ...raw.diffusion.optimizer, ...changes } } });
    assert.throws(() => parseRecipe(withOptimizer({ schedule: 'warmup_stable_decay' })), /decaySteps belongs to the "warmup_stable_decay" schedule/);
    assert.throws(() => parseRecipe(withOptimizer({ decaySteps: 2 })), /decaySteps belongs to the "warmup_stable_decay" schedule/);
    assert.throws(() => parseRecipe(withOptimizer({ schedule: 'warmup_stable_decay', decaySteps: 4 })), /diffusion: optimizer.warmupSteps \+ decaySteps \(5\) exceed steps \(4\)/);
    assert.equal(parseRecipe(withOptimizer({ schedule: 'warmup_stable_decay', decaySteps: 3 })).diffusion.optimizer.decaySteps, 3);
    const { generation, ...withoutGeneration } = raw;
    assert.throws(() => parseRecipe(withoutGeneration), /recipe.generation must be an object/);
    assert.throws(() => parseRecipe({ ...raw, generation: { ...generation, sampler: 'euler' } }), /generation.sampler must be one of ddim, dpm-solver\+\+, got "euler"/);
    assert.throws(() => parseRecipe({ ...raw, generation: { ...generation, guidanceRescale: 2 } }), /generation.guidanceRescale must be in \[0, 1\], got 2/);
    const emphasis = (entries: unknown) => ({ ...raw, diffusion: { ...raw.diffusion, shapeEmphasis: entries } });
    assert.throws(() => parseRecipe(emphasis([{ fromStep: 2, weights: { hexagonn: 2 } }])), /diffusion.shapeEmphasis\[0\]\.weights: unknown shape 'hexagonn'/);
    assert.throws(() => parseRecipe(emphasis([{ fromStep: 2, weights: {} }, { fromStep: 2, weights: {} }])), /shapeEmphasis\[1\]\.fromStep must be after the previous entry's \(2\), got 2/);
    assert.throws(() => parseRecipe(emphasis([{ fromStep: 1, weights: { star: 2 }, share: 0.5 }])), /unknown field\(s\): share/);
    assert.throws(() => parseRecipe(emphasis({ fromStep: 1 })), /shapeEmphasis must be a list/);
    assert.throws(() => parseRecipe(emphasis([{ fromStep: 1, weights: {}, sameColourGap: 0.5 }])), /shapeEmphasis\[0\]\.sameColourGap must be a number from 0 to 0.2, got 0.5/);
    assert.deepEqual(parseRecipe(emphasis([{ fromStep: 1, weights: {}, sameColourGap: 0.1 }])).diffusion.shapeEmphasis, [{ fromStep: 1, weights: {}, sameColourGap: 0.1 }]);
    assert.throws(() => parseRecipe(emphasis([{ fromStep: 1, weights: {}, multiObjectScale: 2 }])), /shapeEmphasis\[0\]\.multiObjectScale must be a number from 1 to 1.4, got 2/);
    assert.deepEqual(parseRecipe(emphasis([{ fromStep: 1, weights: {}, multiObjectScale: 1.2 }])).diffusion.shapeEmphasis, [{ fromStep: 1, weights: {}, multiObjectScale: 1.2 }]);
    const grounding = (tokenGrounding: unknown) => emphasis([{ fromStep: 1, weights: {}, tokenGrounding }]);
    assert.deepEqual(parseRecipe(grounding({ weight: 0.5, levels: [1, 0], maxTimestep: 800 })).diffusion.shapeEmphasis[0]!.tokenGrounding, { weight: 0.5, levels: [0, 1], maxTimestep: 800 });
    assert.throws(() => parseRecipe(grounding({ weight: 0, levels: [0], maxTimestep: 800 })), /tokenGrounding.weight must be positive, got 0/);
    assert.throws(() => parseRecipe(grounding({ weight: 1, levels: [2], maxTimestep: 800 })), /tokenGrounding.levels must list distinct UNet levels in 0..1, got \[2\]/);
    assert.throws(() => parseRecipe(grounding({ weight: 1, levels: [0, 0], maxTimestep: 800 })), /distinct UNet levels/);
    assert.throws(() => parseRecipe(grounding({ weight: 1, levels: [], maxTimestep: 800 })), /distinct UNet levels/);
    assert.throws(() => parseRecipe(grounding({ weight: 1, levels: [0], maxTimestep: 1001 })), /maxTimestep must be an integer in 1..1000, got 1001/);
    assert.throws(() => parseRecipe(grounding({ weight: 1, levels: [0], maxTimestep: 800, layers: [1] })), /unknown field\(s\): layers/);
    const band = (timesteps: unknown) => emphasis([{ fromStep: 1, weights: {}, timesteps }]);
    assert.deepEqual(parseRecipe(band({ from: 450, to: 1000, weight: 2 })).diffusion.shapeEmphasis[0]!.timesteps, { from: 450, to: 1000, weight: 2 });
    assert.throws(() => parseRecipe(band({ from: 450, to: 1001, weight: 2 })), /timesteps.to must be an integer in 451..1000 \(after from\), got 1001/);
    assert.throws(() => parseRecipe(band({ from: 600, to: 600, weight: 2 })), /timesteps.to must be an integer in 601..1000/);
    assert.throws(() => parseRecipe(band({ from: -1, to: 600, weight: 2 })), /timesteps.from must be an integer in 0..999, got -1/);
    assert.throws(() => parseRecipe(band({ from: 400, to: 600, weight: 0 })), /timesteps.weight must be positive, got 0/);
    assert.throws(() => parseRecipe(band({ from: 400, to: 600 })), /timesteps.weight/);
    assert.throws(() => parseRecipe(band({ from: 400, to: 600, weight: 2, shape: 'x' })), /unknown field\(s\): shape/);
    assert.deepEqual(parseRecipe(raw).diffusion.shapeEmphasis, []);
    // like a warm-up-stable length, an emphasis is checked against the steps taken, not fingerprinted
    assert.equal(stageFingerprint(parseRecipe(emphasis([{ fromStep: 1, weights: { star: 2 } }])), 'diffusion'), stageFingerprint(parseRecipe(raw), 'diffusion'));
    // sampling settings and attention layers are chosen after training: changing them leaves the checkpoints valid
    const resampled = parseRecipe({ ...raw, generation: { ...generation, sampler: 'ddim', steps: 50 } });
    assert.equal(stageFingerprint(resampled, 'diffusion'), stageFingerprint(parseRecipe(raw), 'diffusion'));
    const layered = parseRecipe({ ...raw, attentionLayers: { synthesis: { lossLayers: [1], mapLayers: [1] } } });
    assert.deepEqual(layered.attentionLayers, { learning: null, synthesis: { lossLayers: [1], mapLayers: [1] } });
    assert.equal(stageFingerprint(layered, 'diffusion'), stageFingerprint(parseRecipe(raw), 'diffusion'));
    assert.throws(() => parseRecipe({ ...raw, attentionLayers: { synthesis: { lossLayers: [1] } } }), (error: Error) => error instanceof RecipeError && /recipe.attentionLayers: synthesis lacks 'mapLayers'/.test(error.message));
  });

  test('learning-rate schedules: linear warm-up from 0, then constant or cosine down to minFactor', () => {
    const optimizer = { ...tinyRecipe().vae.optimizer, warmupSteps: 10, minFactor: 0.1 };
    assert.equal(learningRateFactor(optimizer, 0, 110), 0);
    assert.equal(learningRateFactor(optimizer, 5, 110), 0.5);
    assert.equal(learningRateFactor({ ...optimizer, schedule: 'constant_with_warmup' }, 80, 110), 1);
    assert.equal(learningRateFactor(optimizer, 10, 110), 1);
    assert.ok(Math.abs(learningRateFactor(optimizer, 60, 110) - 0.55) < 1e-12);
    assert.ok(Math.abs(learningRateFactor(optimizer, 110, 110) - 0.1) < 1e-12);
  });

  test('warm-up, stable, decay: constant until the last decaySteps, then linear down to minFactor', () => {
    const optimizer = { ...tinyRecipe().vae.optimizer, schedule: 'warmup_stable_decay' as const, warmupSteps: 10, minFactor: 0.2, decaySteps: 40 };
    assert.equal(learningRateFactor(optimizer, 5, 110), 0.5);
    assert.equal(learningRateFactor(optimizer, 10, 110), 1);
    assert.equal(learningRateFactor(optimizer, 69, 110), 1);
    assert.equal(learningRateFactor(optimizer, 70, 110), 1);
    assert.ok(Math.abs(learningRateFactor(optimizer, 90, 110) - 0.6) < 1e-12);
    assert.ok(Math.abs(learningRateFactor(optimizer, 110, 110) - 0.2) < 1e-12);
  });

  test('two schedules are compared over the steps already taken', () => {
    const constant = { ...tinyRecipe().vae.optimizer, schedule: 'constant_with_warmup' as const, warmupSteps: 10 };
    const decaying = { ...constant, schedule: 'warmup_stable_decay' as const, decaySteps: 20 };
    assert.equal(firstScheduleDifference({ optimizer: constant, totalSteps: 100 }, { optimizer: decaying, totalSteps: 100 }, 100), 81);
    assert.equal(firstScheduleDifference({ optimizer: constant, totalSteps: 100 }, { optimizer: decaying, totalSteps: 100 }, 81), null);
    assert.equal(firstScheduleDifference({ optimizer: decaying, totalSteps: 100 }, { optimizer: decaying, totalSteps: 150 }, 100), 81);
    assert.equal(firstScheduleDifference({ optimizer: constant, totalSteps: 100 }, { optimizer: { ...constant, warmupSteps: 5 }, totalSteps: 100 }, 50), 1);
  });
});

test('shape emphases are compared over the steps already taken, by the scenes they give', () => {
  const hexagons = [{ fromStep: 10, weights: { hexagon: 3 } }];
  assert.deepEqual(sceneOptionsAt(hexagons, 9), {});
  assert.deepEqual(sceneOptionsAt(hexagons, 10), { shapeWeights: { hexagon: 3 } });
  assert.deepEqual(sceneOptionsAt([...hexagons, { fromStep: 20, weights: {}, sameColourGap: 0.1 }], 25), { shapeWeights: {}, sameColourGap: 0.1 });
  assert.equal(firstEmphasisDifference([], hexagons, 10), null);
  assert.equal(firstEmphasisDifference([], hexagons, 11), 10);
  assert.equal(firstEmphasisDifference(hexagons, [{ fromStep: 5, weights: { hexagon: 3 } }], 100), 5);
  // a weight of 1 is no emphasis, nor the world's own gap; an entry that repeats the settings changes nothing
  assert.equal(firstEmphasisDifference([], [{ fromStep: 0, weights: { star: 1 }, sameColourGap: SAME_COLOUR_GAP }], 100), null);
  assert.equal(firstEmphasisDifference(hexagons, [...hexagons, { fromStep: 30, weights: { hexagon: 3 } }], 100), null);
  assert.equal(firstEmphasisDifference(hexagons, [...hexagons, { fromStep: 30, weights: { hexagon: 2 } }], 100), 30);
  assert.equal(firstEmphasisDifference(hexagons, [...hexagons, { fromStep: 40, weights: { hexagon: 3 }, sameColourGap: 0.1 }], 100), 40);
  assert.equal(firstEmphasisDifference(hexagons, [...hexagons, { fromStep: 40, weights: { hexagon: 3 }, sameColourGap: 0.1 }], 40), null);
  const larger = [...hexagons, { fromStep: 50, weights: { hexagon: 3 }, multiObjectScale: 1.2 }];
  assert.deepEqual(sceneOptionsAt(larger, 50), { shapeWeights: { hexagon: 3 }, multiObjectScale: 1.2 });
  assert.equal(firstEmphasisDifference(hexagons, larger, 100), 50);
  assert.equal(firstEmphasisDifference(hexagons, [...hexagons, { fromStep: 50, weights: { hexagon: 3 }, multiObjectScale: 1 }], 100), null);
  // the loss counts too: a grounding term, or another weight for it, is a difference from its step on
  const grounded = [...hexagons, { fromStep: 60, weights: { hexagon: 3 }, tokenGrounding: { weight: 0.5, levels: [0, 1], maxTimestep: 800 } }];
  assert.deepEqual(tokenGroundingAt(grounded, 59), null);
  assert.deepEqual(tokenGroundingAt(grounded, 60), { weight: 0.5, levels: [0, 1], maxTimestep: 800 });
  assert.equal(firstEmphasisDifference(hexagons, grounded, 60), null);
  assert.equal(firstEmphasisDifference(hexagons, grounded, 61), 60);
  assert.equal(firstEmphasisDifference(grounded, [...hexagons, { ...grounded[1]!, tokenGrounding: { weight: 1, levels: [0, 1], maxTimestep: 800 } }], 100), 60);
  // and so does a timestep band, unless its weight leaves the timesteps alike
  const banded = [...hexagons, { fromStep: 70, weights: { hexagon: 3 }, timesteps: { from: 500, to: 900, weight: 2 } }];
  assert.equal(timestepEmphasisAt(banded, 69), null);
  assert.deepEqual(timestepEmphasisAt(banded, 70), { from: 500, to: 900, weight: 2 });
  assert.equal(firstEmphasisDifference(hexagons, banded, 70), null);
  assert.equal(firstEmphasisDifference(hexagons, banded, 71), 70);
  assert.equal(firstEmphasisDifference(hexagons, [...hexagons, { fromStep: 70, weights: { hexagon: 3 }, timesteps: { from: 500, to: 900, weight: 1 } }], 100), null);
});

test('a timestep band is drawn weight times as often as each other timestep, one uniform draw per timestep', () => {
  // without a band (or with weight 1) a draw is the generator's randint
  for (const u of [0, 0.123, 0.5, 0.9999]) {
    assert.equal(emphasizedTimestep(u, 1000, null), Math.floor(u * 1000));
    assert.equal(emphasizedTimestep(u, 1000, { from: 200, to: 400, weight: 1 }), Math.floor(u * 1000));
  }
  // 10 timesteps, [2, 4) three times as often: the line is 2 + 6 + 6 = 14 long
  const band = { from: 2, to: 4, weight: 3 };
  const counts = new Array<number>(10).fill(0);
  for (let i = 0; i < 1400; i++) counts[emphasizedTimestep((i + 0.5) / 1400, 10, band)]! += 1;
  assert.deepEqual(counts, [100, 100, 300, 300, 100, 100, 100, 100, 100, 100]);
  assert.equal(emphasizedTimestep(0, 10, band), 0);
  assert.equal(emphasizedTimestep(1 - 1e-12, 10, band), 9);
  // a band that reaches the last timestep, and one that starts at the first
  const upper = new Array<number>(4).fill(0);
  for (let i = 0; i < 500; i++) upper[emphasizedTimestep((i + 0.5) / 500, 4, { from: 2, to: 4, weight: 1.5 })]! += 1;
  assert.deepEqual(upper, [100, 100, 150, 150]);
  const lower = new Array<number>(4).fill(0);
  for (let i = 0; i < 350; i++) lower[emphasizedTimestep((i + 0.5) / 350, 4, { from: 0, to: 1, weight: 0.5 })]! += 1;
  assert.deepEqual(lower, [50, 100, 100, 100]);
});

test('fingerprints: a step count that shapes the learning rate (cosine) counts; the length and decay of a warm-up-stable schedule do not', () => {
  const base = tinyRecipe((r) => (r.diffusion.optimizer.schedule = 'constant_with_warmup'));
  const longer = tinyRecipe((r) => {
    r.diffusion.optimizer.schedule = 'constant_with_warmup';
    r.vae.steps += 10;
    r.diffusion.steps += 10;
    r.diffusion.logEvery += 1;
  });
  assert.equal(base.vae.optimizer.schedule, 'cosine');
  assert.notEqual(stageFingerprint(longer, 'vae'), stageFingerprint(base, 'vae'));
  // a finished VAE's output is fixed: the later stages do not see its step count
  assert.equal(stageFingerprint(longer, 'decoder'), stageFingerprint(base, 'decoder'));
  assert.equal(stageFingerprint(longer, 'diffusion'), stageFingerprint(base, 'diffusion'));
  const decaying = tinyRecipe((r) => (r.diffusion.optimizer = { ...r.diffusion.optimizer, schedule: 'warmup_stable_decay', minFactor: 0.1, decaySteps: 2 }));
  assert.equal(stageFingerprint(decaying, 'diffusion'), stageFingerprint(base, 'diffusion'));
});

describe('training stages lower their loss', () => {
  test('VAE: reconstruction loss on a fixed batch falls', async () => {
    const recipe = tinyRecipe((r) => {
      r.vae.steps = 100;
      r.vae.previewEvery = 0;
      r.vae.checkpointEvery = 100;
      r.vae.optimizer.schedule = 'constant_with_warmup';
      r.vae.optimizer.learningRate = 3e-3;
    });
    const vae = createVae(recipe.vae.config, recipe.seed);
    const stage = vaeTrainingStage(recipe, vae);
    const before = fixedBatchLoss(stage);
    const dir = join(scratch, 'vae-loss');
    await runStage(stage, { dir, log: new LossLog(join(scratch, 'vae-loss.jsonl')), generator: new Generator(1) });
    const afterTraining = fixedBatchLoss(stage);
    assert.ok(afterTraining < 0.7 * before, `VAE loss ${before} -> ${afterTraining}`);
    vae.store.dispose();
  });

  test('text encoder + UNet: diffusion loss on a fixed batch falls', async () => {
    const recipe = tinyRecipe((r) => {
      r.diffusion.steps = 60;
      r.diffusion.previewEvery = 0;
      r.diffusion.checkpointEvery = 60;
      r.diffusion.optimizer.learningRate = 3e-3;
    });
    const models = modelsOnUntrainedVae(recipe, 'diffusion-loss');
    const stage = diffusionTrainingStage(recipe, models, join(scratch, 'unused'));
    const before = fixedBatchLoss(stage);
    // the previews run at the end of the stage only, with the EMA weights swapped in and out again
    await runStage(stage, { dir: join(scratch, 'diffusion-loss'), log: new LossLog(join(scratch, 'diffusion-loss.jsonl')), generator: new Generator(2) });
    const afterTraining = fixedBatchLoss(stage);
    assert.ok(afterTraining < 0.95 * before, `diffusion loss ${before} -> ${afterTraining}`);
    assert.ok(existsSync(join(scratch, 'diffusion-loss', 'previews', 'step-000060.png')));
    disposeDiffusion(models, [stage]);
  });

  test("token grounding joins the loss from its step on, draws the same batch, and training lowers it", async () => {
    const tokenGrounding = { weight: 2, levels: [0, 1], maxTimestep: 1000 };
    const recipe = tinyRecipe((r) => {
      r.diffusion.steps = 30;
      r.diffusion.previewEvery = 0;
      r.diffusion.checkpointEvery = 30;
      r.diffusion.captionDropout = 0;
      r.diffusion.optimizer.learningRate = 3e-3;
      r.diffusion.shapeEmphasis = [{ fromStep: 1, weights: {}, tokenGrounding }];
    });
    const models = modelsOnUntrainedVae(recipe, 'grounding');
    const stage = diffusionTrainingStage(recipe, models, join(scratch, 'unused'));
    const termsAt = (step: number, of: TrainingStage = stage) => {
      const prepared = of.prepareStep(new Generator(12345), step);
      const values = tf.tidy(() => {
        const { loss, terms } = prepared.lossFn({ start: 0, size: recipe.diffusion.batch });
        return { loss: loss.dataSync()[0]!, ...Object.fromEntries(Object.entries(terms).map(([name, term]) => [name, term.dataSync()[0]!])) };
      });
      prepared.dispose();
      return values as { loss: number; diffusion?: number; grounding?: number };
    };
    const without = termsAt(0);
    const withGrounding = termsAt(1);
    assert.deepEqual(Object.keys(without), ['loss']);
    // the same scenes, noise and timesteps: the diffusion term is the loss of step 0
    assert.ok(Math.abs(withGrounding.diffusion! - without.loss) < 1e-6 * without.loss, `${withGrounding.diffusion} vs ${without.loss}`);
    assert.ok(withGrounding.grounding! > 0 && withGrounding.grounding! < 1, `grounding ${withGrounding.grounding}`);
    assert.ok(Math.abs(withGrounding.loss - (withGrounding.diffusion! + 2 * withGrounding.grounding!)) < 1e-5);
    await runStage(stage, { dir: join(scratch, 'grounding'), log: new LossLog(join(scratch, 'grounding.jsonl')), generator: new Generator(3) });
    const records = new LossLog(join(scratch, 'grounding.jsonl')).records();
    assert.ok(records.some((r) => typeof r.grounding === 'number' && typeof r.diffusion === 'number'), 'the log holds both terms');
    const trained = termsAt(1);
    assert.ok(trained.grounding! < 0.9 * withGrounding.grounding!, `grounding ${withGrounding.grounding} -> ${trained.grounding}`);
    // no grounded word (every sample at maxTimestep or later): the loss is the diffusion term alone
    const late = diffusionTrainingStage(
      { ...recipe, diffusion: { ...recipe.diffusion, shapeEmphasis: [{ fromStep: 1, weights: {}, tokenGrounding: { ...tokenGrounding, maxTimestep: 1 } }] } },
      models,
      join(scratch, 'unused'),
    );
    const ungrounded = termsAt(1, late);
    assert.deepEqual(Object.keys(ungrounded).sort(), ['diffusion', 'loss']);
    assert.equal(ungrounded.loss, ungrounded.diffusion);
    disposeDiffusion(models, [stage, late]);
  });
});

test('a batch split into micro-batches takes the same steps as the whole batch (gradient accumulation)', async () => {
  const recipe = tinyRecipe((r) => {
    r.vae.steps = 2;
    r.vae.batch = 3;
    r.vae.previewEvery = 0;
  });
  const trainWith = async (microBatch: number) => {
    const vae = createVae(recipe.vae.config, recipe.seed);
    const stage = vaeTrainingStage(recipe, vae);
    const name = `micro-${microBatch}`;
    await runStage(stage, { dir: join(scratch, name), log: new LossLog(join(scratch, `${name}.jsonl`)), generator: new Generator(7), microBatch });
    const weights = new Map(stage.parameters.map((p) => [p.name, p.variable.dataSync() as Float32Array]));
    const records = new LossLog(join(scratch, `${name}.jsonl`)).records();
    vae.store.dispose();
    return { weights, losses: records.map((r) => r.loss), gradNorms: records.map((r) => r.gradNorm) };
  };
  const whole = await trainWith(3);
  const split = await trainWith(1);
  assert.equal(whole.losses.length, 2);
  for (const [i, loss] of whole.losses.entries()) assert.ok(Math.abs(loss - split.losses[i]!) < 1e-5 * loss, `step ${i + 1}: loss ${loss} vs ${split.losses[i]}`);
  // AdamW hides a wrongly scaled gradient; its norm before clipping does not
  for (const [i, norm] of whole.gradNorms.entries()) assert.ok(Math.abs(norm - split.gradNorms[i]!) < 1e-4 * norm, `step ${i + 1}: gradient norm ${norm} vs ${split.gradNorms[i]}`);
  let largest = 0;
  for (const [name, values] of whole.weights) {
    const other = split.weights.get(name)!;
    for (let i = 0; i < values.length; i++) largest = Math.max(largest, Math.abs(values[i]! - other[i]!));
  }
  // two AdamW steps at lr 1e-3 move a weight by up to ~2e-3; accumulation may only reorder float sums
  assert.ok(largest < 2e-5, `weights differ by up to ${largest}`);
});

describe('resume and export', () => {
  // a log record every other step, so the stops below fall between records
  const recipe = tinyRecipe((r) => {
    for (const stage of [r.vae, r.decoder, r.diffusion]) stage.logEvery = 2;
    r.attentionLayers = { learning: null, synthesis: { lossLayers: [3, 5], mapLayers: [5] } };
  });
  let straight: string;
  /** a copy of the straight run's work folder without its stage-2 checkpoint: stage 2 starts afresh on its VAE */
  const startStageTwo = (name: string) => {
    const dir = join(scratch, name);
    cpSync(straight, dir, { recursive: true });
    rmSync(join(dir, 'diffusion', 'checkpoint'), { recursive: true });
    return { workDir: dir, outDir: join(dir, 'model') };
  };

  test('an uninterrupted run trains both stages, logs every other step and exports a loadable pipeline', async () => {
    straight = join(scratch, 'straight');
    const out = join(straight, 'model');
    const result = await trainDefaultModel(recipe, { workDir: straight, outDir: out });
    assert.deepEqual(result, { completed: true, vaeStep: 4, decoderStep: 2, diffusionStep: 4 });
    const records = new LossLog(join(straight, 'loss.jsonl')).records();
    assert.deepEqual(
      records.map((r) => `${r.stage}:${r.step}`),
      ['vae:2', 'vae:4', 'decoder:2', 'diffusion:2', 'diffusion:4'],
    );
    assert.ok(records.every((r) => Number.isFinite(r.loss) && r.loss > 0));
    assert.ok(existsSync(join(straight, 'vae', 'previews', 'step-000002.png')));
    assert.ok(existsSync(join(straight, 'diffusion', 'previews', 'step-000004.png')));

    const unet = SafetensorsFile.open(join(out, 'unet', 'diffusion_pytorch_model.safetensors'));
    assert.ok(unet.keys().every((key) => unet.info(key).dtype === 'F16'));
    unet.close();
    const pipeline = StableDiffusionPipeline.fromPretrained(out);
    assert.equal(pipeline.defaultSize, recipe.world.imageSize);
    assert.equal(pipeline.tokenize(['a photo of a red circle on snow'])[0]!.length, recipe.textEncoder.maxLength);
    // the folder names the recipe's sampler and settings, and text-to-image defaults to them
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'model_index.json'), 'utf8')).scheduler, ['diffusers', 'DPMSolverMultistepScheduler']);
    assert.deepEqual(pipeline.generationDefaults, recipe.generation);
    assert.deepEqual(pipeline.attentionLayers, recipe.attentionLayers);
    const prompt = 'a photo of a red striped circle on snow';
    const generated = await pipeline.generate({ prompt, seed: 1 });
    assert.equal(generated.timesteps.length, recipe.generation.steps);
    assert.deepEqual(generated.images.shape, [1, 32, 32, 3]);
    assert.ok((generated.images.dataSync() as Float32Array).every((v) => v >= 0 && v <= 1));
    const { sampler, steps, guidance, guidanceRescale } = recipe.generation;
    const explicit = await pipeline.generate({ prompt, seed: 1, sampler, steps, guidance, guidanceRescale });
    const withDdim = await pipeline.generate({ prompt, seed: 1, sampler: 'ddim' });
    assert.deepEqual(explicit.images.dataSync(), generated.images.dataSync());
    assert.notDeepEqual(withDdim.images.dataSync(), generated.images.dataSync());
    tf.dispose([generated, explicit, withDdim].flatMap((result) => [result.images, result.latents]));

    const drawing = { steps: 2, guidance: 3, guidanceRescale: 0, sampler: 'ddim' as const };
    const kept = join(straight, 'judged');
    mkdirSync(kept);
    const judged = await evaluateGeneration(generatedImages(pipeline, drawing), 3, drawing, { onImage: (_, image, result) => writePng(caseImageFile(kept, result.seed), image) });
    // the kept images judged again give the same verdicts
    assert.deepEqual(await evaluateGeneration(savedImages(kept), 3, drawing), judged);
    assert.equal(judged.cases, 3);
    assert.deepEqual(judged.results.map((r) => r.caption), evaluationSet(3).map((c) => c.caption));
    assert.equal(judged.objects, evaluationSet(3).reduce((n, c) => n + c.requests.length, 0));
    // every requested object is counted under its shape once, right or misread
    assert.equal(judged.byShape.reduce((n, b) => n + b.objects, 0), judged.objects);
    for (const b of judged.byShape) assert.equal(b.shapeCorrect + Object.values(b.misreadAs).reduce((n, k) => n + k, 0), b.objects);
    assert.ok(judged.exactRate <= judged.shapeAndColourRate);
    for (const rate of [judged.shapeAndColourRate, judged.exactRate, judged.foundRate, judged.shapeAccuracy, judged.colourAccuracy, judged.textureAccuracy]) {
      assert.ok(rate >= 0 && rate <= 1);
    }
    // the ceiling judges the cases' own renders (and their reconstructions) exactly as generated images are judged
    const ceiling = await measureCeiling(pipeline, 3, 0);
    const size = pipeline.defaultSize;
    const renderedRight = evaluationSet(3).filter((c) =>
      judgeScene({ width: size, height: size, data: renderScene(c.scene, size, { masks: false }).image }, c.requests.map((r) => ({ ...r, box: null }))).objects.every((e) => e.found && e.shape.correct && e.colour.correct),
    );
    assert.deepEqual([ceiling.cases, ceiling.rendersRate], [3, renderedRight.length / 3]);
    assert.ok(ceiling.reconstructionsRate >= 0 && ceiling.reconstructionsRate <= 1);
    const reconstruction = evaluateReconstruction(pipeline, 4);
    assert.equal(reconstruction.images, 4);
    assert.ok(reconstruction.pooledPsnr <= reconstruction.meanPsnr && reconstruction.worstPsnr <= reconstruction.meanPsnr);
    const timing = await timeGeneration(pipeline, 2, { steps: 2, guidance: 3, guidanceRescale: 0.7, sampler: 'dpm-solver++' as const });
    assert.ok(timing.minMs > 0 && timing.minMs <= timing.medianMs && timing.medianMs <= timing.maxMs);
    pipeline.dispose();
  });

  test('a run stopped three times (mid-VAE, mid-decoder, mid-diffusion) ends with exactly the same weights, moments, EMA and log', async () => {
    const resumed = join(scratch, 'resumed');
    const out = join(resumed, 'model');
    const first = await trainDefaultModel(recipe, { workDir: resumed, outDir: out, maxSteps: 3 });
    assert.deepEqual(first, { completed: false, vaeStep: 3, decoderStep: 2, diffusionStep: 0 });
    assert.ok(!existsSync(vaeModelDir(resumed)));
    const second = await trainDefaultModel(recipe, { workDir: resumed, outDir: out, maxSteps: 2 });
    assert.deepEqual(second, { completed: false, vaeStep: 4, decoderStep: 1, diffusionStep: 0 });
    assert.ok(existsSync(vaeModelDir(resumed)) && !existsSync(finalVaeDir(resumed)));
    let calls = 0;
    const third = await trainDefaultModel(recipe, { workDir: resumed, outDir: out, shouldStop: () => ++calls > 3 });
    assert.deepEqual(third, { completed: false, vaeStep: 4, decoderStep: 2, diffusionStep: 2 });
    // the split planned on the run's first step travels with the checkpoint, so a resumed run sums the same way
    assert.deepEqual(readStageCheckpointState(join(resumed, 'diffusion', 'checkpoint'))!.microBatches, [recipe.diffusion.batch]);
    const fourth = await trainDefaultModel(recipe, { workDir: resumed, outDir: out });
    assert.equal(fourth.completed, true);

    for (const stage of ['vae', 'decoder', 'diffusion'] as const) {
      const a = checkpointTensors(straight, stage);
      const b = checkpointTensors(resumed, stage);
      assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
      for (const [key, values] of a) assert.ok(Buffer.from(values.buffer).equals(Buffer.from(b.get(key)!.buffer)), `${stage} ${key} differs after resuming`);
    }
    assert.deepEqual(withoutTimes(resumed), withoutTimes(straight));
    assert.ok(readFileSync(join(out, 'unet', 'diffusion_pytorch_model.safetensors')).equals(readFileSync(join(straight, 'model', 'unet', 'diffusion_pytorch_model.safetensors'))));
  });

  test('a stop requested from the event loop (a Ctrl-C handler) takes effect after the current step', async () => {
    const quiet = tinyRecipe((r) => (r.vae.previewEvery = 0));
    let stopRequested = false;
    const result = await trainDefaultModel(quiet, {
      workDir: join(scratch, 'signalled'),
      outDir: join(scratch, 'signalled', 'model'),
      // like a signal: the flag is set by a later turn of the event loop, not by the step itself
      onStep: () => void setImmediate(() => (stopRequested = true)),
      shouldStop: () => stopRequested,
    });
    assert.deepEqual([result.completed, result.vaeStep, result.diffusionStep], [false, 1, 0]);
  });

  test('a stage under a constant rate can be extended and given a decay; steps already decayed keep their rates', async () => {
    const dir = join(scratch, 'decayed');
    cpSync(straight, dir, { recursive: true });
    // as a checkpoint written before checkpoints kept their schedule
    const statePath = join(dir, 'diffusion', 'checkpoint', 'checkpoint.json');
    const { schedule, ...legacy } = JSON.parse(readFileSync(statePath, 'utf8')) as { schedule?: unknown };
    assert.ok(schedule);
    writeFileSync(statePath, JSON.stringify(legacy));
    const decaying = (steps: number, decaySteps: number) =>
      tinyRecipe((r) => {
        for (const stage of [r.vae, r.decoder, r.diffusion]) stage.logEvery = 2;
        r.diffusion.steps = steps;
        r.diffusion.optimizer = { ...r.diffusion.optimizer, schedule: 'warmup_stable_decay', decaySteps };
      });
    const options = { workDir: dir, outDir: join(dir, 'model') };
    // 4 steps at the constant rate; 8 steps decaying over the last 3 leave them as they were: steps 5-7 are taken
    assert.equal((await trainDefaultModel(decaying(8, 3), { ...options, maxSteps: 3 })).diffusionStep, 7);
    // step 7 decayed, which a decay over the last 3 of 10 steps would not have
    await assert.rejects(trainDefaultModel(decaying(10, 3), options), /gives step 7 another learning rate than the checkpoint's 7 steps were taken with/);
    const finished = await trainDefaultModel(decaying(8, 3), options);
    assert.deepEqual([finished.completed, finished.diffusionStep], [true, 8]);
    const rates = new LossLog(join(dir, 'loss.jsonl')).records().filter((r) => r.stage === 'diffusion').map((r) => r.lr);
    const rate = recipe.diffusion.optimizer.learningRate;
    assert.deepEqual(rates.slice(0, 3), [rate, rate, rate]);
    assert.ok(Math.abs(rates[3]! - rate / 3) < 1e-15, `the last step's rate is ${rates[3]}, expected a third of ${rate}`);
  });

  test('the checkpoint where the decay begins is kept; going back to it with more steps equals the longer run', async () => {
    const wsd = (steps: number) =>
      tinyRecipe((r) => {
        for (const stage of [r.vae, r.decoder, r.diffusion]) stage.logEvery = 2;
        r.diffusion.steps = steps;
        r.diffusion.previewEvery = 0;
        r.diffusion.optimizer = { ...r.diffusion.optimizer, schedule: 'warmup_stable_decay', decaySteps: 2 };
      });
    const rewound = startStageTwo('wsd-rewound');
    assert.throws(() => rewindToStableCheckpoint(rewound.workDir), /has not reached the start of its decay/);
    assert.equal((await trainDefaultModel(wsd(6), rewound)).diffusionStep, 6);
    assert.equal(readStageCheckpointState(join(rewound.workDir, 'diffusion', STABLE_CHECKPOINT_DIR))!.step, 4);
    assert.deepEqual(rewindToStableCheckpoint(rewound.workDir), { from: 6, to: 4, keptAs: join(rewound.workDir, 'diffusion', 'checkpoint-decayed-s6') });
    assert.equal(readStageCheckpointState(join(rewound.workDir, 'diffusion', 'checkpoint-decayed-s6'))!.step, 6);
    assert.throws(() => rewindToStableCheckpoint(rewound.workDir), /stage 2 is at step 4, not past the start of its decay \(step 4\)/);
    assert.deepEqual(await trainDefaultModel(wsd(8), rewound), { completed: true, vaeStep: 4, decoderStep: 2, diffusionStep: 8 });

    const longer = startStageTwo('wsd-longer');
    await trainDefaultModel(wsd(8), longer);
    const a = checkpointTensors(longer.workDir, 'diffusion');
    const b = checkpointTensors(rewound.workDir, 'diffusion');
    for (const [key, values] of a) assert.ok(Buffer.from(values.buffer).equals(Buffer.from(b.get(key)!.buffer)), `${key} differs after going back`);
    assert.deepEqual(withoutTimes(rewound.workDir), withoutTimes(longer.workDir));
  });

  test('a shape emphasis added at the checkpoint equals having it from the start; one that changes steps taken is refused', async () => {
    const onlyHexagons = Object.fromEntries(SHAPE_NAMES.map((shape) => [shape, shape === 'hexagon' ? 1 : 0]));
    const emphasised = (shapeEmphasis: Recipe['diffusion']['shapeEmphasis']) =>
      tinyRecipe((r) => {
        for (const stage of [r.vae, r.decoder, r.diffusion]) stage.logEvery = 2;
        r.diffusion.steps = 6;
        r.diffusion.previewEvery = 0;
        r.diffusion.shapeEmphasis = shapeEmphasis;
      });
    const fromThree = emphasised([{ fromStep: 3, weights: onlyHexagons }]);
    const fromStart = startStageTwo('emphasis-from-start');
    await trainDefaultModel(fromThree, fromStart);
    const added = startStageTwo('emphasis-added');
    assert.equal((await trainDefaultModel(emphasised([]), { ...added, maxSteps: 3 })).diffusionStep, 3);
    assert.equal(readStageCheckpointState(join(added.workDir, 'diffusion', 'checkpoint'))!.shapeEmphasis, undefined);
    await assert.rejects(trainDefaultModel(emphasised([{ fromStep: 2, weights: onlyHexagons }]), added), /shapeEmphasis draws the scenes of step 3 otherwise than the checkpoint's 3 steps were drawn with/);
    assert.equal((await trainDefaultModel(fromThree, added)).diffusionStep, 6);
    assert.deepEqual(readStageCheckpointState(join(added.workDir, 'diffusion', 'checkpoint'))!.shapeEmphasis, fromThree.diffusion.shapeEmphasis);
    const a = checkpointTensors(fromStart.workDir, 'diffusion');
    const b = checkpointTensors(added.workDir, 'diffusion');
    for (const [key, values] of a) assert.ok(Buffer.from(values.buffer).equals(Buffer.from(b.get(key)!.buffer)), `${key} differs when the emphasis is added on resume`);
    assert.deepEqual(withoutTimes(added.workDir), withoutTimes(fromStart.workDir));
    // the emphasis reaches the data: without it the same run ends elsewhere
    const plain = startStageTwo('emphasis-none');
    await trainDefaultModel(emphasised([]), plain);
    const c = checkpointTensors(plain.workDir, 'diffusion');
    assert.ok([...a].some(([key, values]) => !Buffer.from(values.buffer).equals(Buffer.from(c.get(key)!.buffer))), 'the emphasis changed nothing');
    // the weights of the steps taken are kept: dropping the emphasis is refused
    await assert.rejects(trainDefaultModel(emphasised([]), added), /draws the scenes of step 4 otherwise/);
  });

  test('the latest checkpoint exports on demand; a changed recipe is refused', async () => {
    const out = join(scratch, 'exported');
    assert.equal(await exportCheckpoint(recipe, straight, out), 4);
    assert.ok(readFileSync(join(out, 'unet', 'diffusion_pytorch_model.safetensors')).equals(readFileSync(join(straight, 'model', 'unet', 'diffusion_pytorch_model.safetensors'))));
    const changed = tinyRecipe((r) => (r.diffusion.captionDropout = 0.5));
    await assert.rejects(exportCheckpoint(changed, straight, out), /written under another recipe/);
  });

  test('a run whose work folder is gone goes on from its export: weights carry over, moments are primed without moving them', async () => {
    const exported = join(scratch, 'exported');
    const longer = (changes: (r: Recipe) => void = () => {}) =>
      tinyRecipe((r) => {
        for (const stage of [r.vae, r.decoder, r.diffusion]) stage.logEvery = 2;
        r.attentionLayers = recipe.attentionLayers;
        r.diffusion.steps = 6;
        r.diffusion.previewEvery = 0;
        changes(r);
      });
    const workDir = join(scratch, 'continued');
    const messages: string[] = [];
    assert.equal(await continueFromExport(longer(), exported, workDir, { primeSteps: 3, onMessage: (m) => messages.push(m) }), 4);
    assert.deepEqual(messages, ['diffusion: optimizer moments from 3 of 3 batches']);
    const state = readStageCheckpointState(join(workDir, 'diffusion', 'checkpoint'))!;
    assert.deepEqual([state.step, state.optimizerSteps, state.emaSteps], [4, 3, 4]);
    const tensors = checkpointTensors(workDir, 'diffusion');
    const unet = UNet2DConditionModel.fromPretrained(join(exported, 'unet')).model;
    const textEncoder = CLIPTextModel.fromPretrained(join(exported, 'text_encoder'));
    for (const [prefix, store] of [['unet', unet.store], ['text_encoder', textEncoder.store]] as const) {
      for (const key of store.keys()) {
        // compared as numbers: a step at learning rate 0 may turn a zero weight's sign
        const exportedWeight = store.get(key).dataSync() as Float32Array;
        const equal = (name: string) => tensors.get(name)!.every((v, i) => v === exportedWeight[i]);
        assert.ok(equal(`param/${prefix}.${key}`), `${prefix}.${key} is not the exported weight`);
        assert.ok(equal(`ema/${prefix}.${key}`), `the EMA of ${prefix}.${key} is not the exported weight`);
      }
    }
    unet.store.dispose();
    textEncoder.dispose();
    assert.ok([...tensors].some(([key, values]) => key.startsWith('adam_v/') && values.some((v) => v > 0)), 'the moments were not primed');
    await assert.rejects(continueFromExport(longer(), exported, workDir, { primeSteps: 1 }), /has a stage-2 checkpoint already/);
    await assert.rejects(continueFromExport(longer((r) => (r.diffusion.captionDropout = 0.5)), exported, join(scratch, 'continued-other'), { primeSteps: 1 }), /was trained under another recipe/);

    const out = join(workDir, 'model');
    assert.deepEqual(await trainDefaultModel(longer(), { workDir, outDir: out }), { completed: true, vaeStep: 4, decoderStep: 2, diffusionStep: 6 });
    assert.ok(!existsSync(join(workDir, 'vae')), 'stage 1 ran again');
    assert.deepEqual(new LossLog(join(workDir, 'loss.jsonl')).records().map((r) => `${r.stage}:${r.step}`), ['diffusion:6']);
    const source = readTrainingRecord(exported)!;
    const training = readTrainingRecord(out)!;
    assert.deepEqual(training.continuedFrom, { model: exported, exportedAt: source.exportedAt, stages: source.stages });
    assert.deepEqual(training.stages.slice(0, 2), source.stages.slice(0, 2));
    assert.equal(training.stages[2]!.step, 6);
    assert.ok(training.stages[2]!.minutes > source.stages[2]!.minutes);
    assert.match(renderModelCard(training, { model: out, engine: 'test engine' }, 'npx tsx scripts/eval-default-model.ts --card'), /Stage 2 went on from an exported model at step 4 \(/);

    // the steps before the export keep their rates: a decay reaching back past it is refused
    const decayingEarly = longer((r) => (r.diffusion.optimizer = { ...r.diffusion.optimizer, schedule: 'warmup_stable_decay', decaySteps: 4 }));
    const early = join(scratch, 'continued-early-decay');
    await continueFromExport(decayingEarly, exported, early, { primeSteps: 1 });
    await assert.rejects(trainDefaultModel(decayingEarly, { workDir: early, outDir: join(early, 'model') }), /gives step 4 another learning rate/);
  });

  test('the export records how far each stage trained; the model card states the figures and the bars', () => {
    const training = readTrainingRecord(join(scratch, 'exported'))!;
    assert.deepEqual(training.recipe, recipe);
    assert.deepEqual(
      training.stages.map((s) => [s.stage, s.step, s.steps, s.batch]),
      [['vae', 4, 4, recipe.vae.batch], ['decoder', 2, 2, recipe.decoder.batch], ['diffusion', 4, 4, recipe.diffusion.batch]],
    );
    assert.ok(training.stages.every((s) => s.minutes > 0));

    const settings = { steps: 25, guidance: 5, guidanceRescale: 0.7, sampler: 'dpm-solver++' as const };
    const generation = {
      cases: 200, settings, shapeAndColourRate: 0.715, allAttributesRate: 0.4, exactRate: 0.6, objects: 400, foundRate: 0.9, shapeAccuracy: 0.8, colourAccuracy: 0.85, textureAccuracy: 0.5,
      byObjectCount: [{ objects: 1, images: 67, shapeAndColourRate: 0.9, shapeAccuracy: 0.925 }],
      byShape: [{ shape: 'ring', objects: 40, shapeCorrect: 31, misreadAs: { moon: 7, 'not found': 2 } }, { shape: 'star', objects: 38, shapeCorrect: 38, misreadAs: {} as Record<string, number> }],
      results: [],
    };
    const report = { model: 'm', engine: 'test engine', generation, ceiling: { cases: 200, rendersRate: 0.995, reconstructionsRate: 0.98 }, psnr: { images: 200, meanPsnr: 27.5, pooledPsnr: 27, worstPsnr: 20 }, timing: { runs: 5, settings, medianMs: 3200, minMs: 3000, maxMs: 3500 } };
    const card = renderModelCard(training, report, 'npx tsx scripts/eval-default-model.ts --card');
    assert.match(card, /Trained to the end of its recipe/);
    assert.match(card, /\| diffusion \| 4 of 4 \| \d+ \|/);
    assert.match(card, /right shape and colour ≥ 70\.0%: 71\.5%, met/);
    assert.match(card, /\| \.\.\. of the 67 images with 1 object\(s\) \(their objects of the right shape\) \| 90\.0% \(92\.5%\) \|/);
    assert.match(card, /\| images with every object of the right shape and colour and nothing else \(no extra object, no fragment\) \| 60\.0% \|/);
    assert.match(card, /PSNR ≥ 28 dB: 27\.50 dB, \*\*not met\*\*/);
    assert.match(card, /< 5 s: 3\.20 s, met/);
    assert.match(card, /25 DPM-Solver\+\+\(2M\) steps, guidance 5 rescaled by 0\.7\)/);
    assert.match(card, /\| ring \| 31 of 40 \| moon 7, not found 2 \|/);
    assert.match(card, /in 99\.5% of the renders and 98\.0% of their VAE reconstructions/);
    // the tiny recipe's sampling defaults
    assert.match(card, /\| sampling defaults \| DPM-Solver\+\+\(2M\), 3 steps, guidance 4 rescaled by 0\.5 \(scheduler\/ and generation_config\.json\); box-controlled synthesis samples with DDIM \|/);
    assert.match(card, /\| star \| 38 of 38 \| - \|/);
    assert.match(card, /Command: `npx tsx scripts\/eval-default-model.ts --card`/);
    assert.match(card, /Recipe `trainer\/train\/configs\/tiny\.json` \("tiny-test"\); the stages/);
    const renamed = { ...training, recipe: { ...training.recipe, name: 'an experiment' } };
    assert.match(renderModelCard(renamed, report, 'x'), /Recipe "an experiment" \(no file of trainer\/train\/configs\/; its whole text is in training\.json\)/);
    assert.doesNotMatch(card, /training scenes draw/);
    assert.match(card, /\| attention layers \| box control: losses ℓ 3,5, maps ℓ 5 \(attention_layers\.json/);
    const learning = { phase1: { kind: 'cross' as const, places: ['up' as const], resolution: { strides: [4, 8] } }, phase2: { kind: 'cross' as const, places: ['down' as const, 'up' as const], resolution: { strides: [4] } } };
    const grounded = { ...training, recipe: { ...training.recipe, attentionLayers: { learning, synthesis: null } } };
    assert.match(renderModelCard(grounded, report, 'x'), /\| attention layers \| learning: phase 1 cross up @ 1\/4, 1\/8, phase 2 cross down\+up @ 1\/4 \(attention_layers/);
    const bounded = { ...training, recipe: { ...training.recipe, attentionLayers: { learning: null, synthesis: { lossLayers: [3, 5], mapLayers: [5], boundedLayers: [0, 1, 5] } } } };
    assert.match(renderModelCard(bounded, report, 'x'), /\| attention layers \| box control: losses ℓ 3,5, maps ℓ 5, bounded ℓ 0,1,5 \(attention_layers/);
    const plain = { ...training, recipe: { ...training.recipe, attentionLayers: { learning: null, synthesis: null } } };
    assert.doesNotMatch(renderModelCard(plain, report, 'x'), /attention layers/);
    const emphasised = { ...training, recipe: { ...training.recipe, diffusion: { ...training.recipe.diffusion, shapeEmphasis: [{ fromStep: 3, weights: { hexagon: 3, star: 2 } }] } } };
    assert.match(renderModelCard(emphasised, report, 'x'), /From stage-2 step 3 on, the training scenes draw hexagon 3x, star 2x as often as the other shapes\./);
    const spaced = { ...training, recipe: { ...training.recipe, diffusion: { ...training.recipe.diffusion, shapeEmphasis: [{ fromStep: 3, weights: {}, sameColourGap: 0.1 }] } } };
    assert.match(renderModelCard(spaced, report, 'x'), /From stage-2 step 3 on, the training scenes draw every shape alike, and keep objects of one colour 0\.1 of the image side apart\./);
    const larger = { ...training, recipe: { ...training.recipe, diffusion: { ...training.recipe.diffusion, shapeEmphasis: [{ fromStep: 3, weights: { hexagon: 3 }, sameColourGap: 0.1, multiObjectScale: 1.2 }] } } };
    assert.match(
      renderModelCard(larger, report, 'x'),
      /From stage-2 step 3 on, the training scenes draw hexagon 3x as often as the other shapes, keep objects of one colour 0\.1 of the image side apart, and draw the objects of scenes with two or more 1\.2x the world's size\./,
    );
    const tokenGrounding = { weight: 0.5, levels: [0, 1], maxTimestep: 800 };
    const groundedWords = { ...training, recipe: { ...training.recipe, diffusion: { ...training.recipe.diffusion, shapeEmphasis: [{ fromStep: 3, weights: {}, tokenGrounding }] } } };
    assert.match(renderModelCard(groundedWords, report, 'x'), /draw every shape alike\. The loss adds 0\.5 x the token-grounding term .* of UNet levels 0, 1, for timesteps below 800\./);
    const unfinished = { ...training, stages: training.stages.map((s) => (s.stage === 'diffusion' ? { ...s, step: 3 } : s)) };
    assert.match(renderModelCard(unfinished, report, 'x'), /Work in progress:.*step 3 of 4/);
  });
});
