// The acceptance measurements of the default model: text-to-image on held-out captions judged by the world's
// evaluator, VAE reconstruction PSNR on held-out scenes, and the wall time of one generation.
import type { RgbImage } from '../io/image.ts';
import { tensorToRgbImages } from '../io/image.ts';
import type { StableDiffusionPipeline } from '../pipelines/stable_diffusion.ts';
import type { SamplerName } from '../pipelines/generation_defaults.ts';
import { tf } from '../runtime/backend.ts';
import { join } from 'node:path';
import { readRgb } from '../world/image.ts';
import { evaluationSet, type EvaluationCase } from '../world/evaluation_set.ts';
import { judgeScene, type ObjectEvaluation } from '../world/evaluator/evaluate.ts';
import { isRareObject } from '../world/scene.ts';
import { renderScene } from '../world/render.ts';
import { heldOutScenes, measureReconstruction, reconstruct, type ReconstructionReport } from './vae_stage.ts';

export interface GenerationSettings {
  steps: number;
  guidance: number;
  /** diffusers' guidance_rescale (0: plain classifier-free guidance) */
  guidanceRescale: number;
  sampler: SamplerName;
}

export interface CaseResult {
  seed: number;
  caption: string;
  /** every requested object found with the right shape and colour */
  shapeAndColour: boolean;
  /** ... and the right texture */
  allAttributes: boolean;
  /** object-sized regions that no request took (extra objects, or fragments of one) */
  unclaimedRegions: number;
  objects: ObjectScore[];
}

export interface ObjectScore {
  /** "red striped circle", or a rare object's name */
  request: string;
  /** the requested shape, or the rare object's name */
  requestedShape: string;
  rare: boolean;
  found: boolean;
  box: ObjectEvaluation['box'];
  /** what the evaluator read (null when not found) */
  shape: string | null;
  colour: string | null;
  texture: string | null;
  shapeCorrect: boolean;
  colourCorrect: boolean;
  textureCorrect: boolean;
}

export interface GenerationReport {
  cases: number;
  settings: GenerationSettings;
  /** share of images in which every requested object is found with the right shape and colour (the acceptance figure) */
  shapeAndColourRate: number;
  /** share of images in which every requested object also has the right texture */
  allAttributesRate: number;
  /** share of images with every requested object of the right shape and colour and no other object (nor a fragment) */
  exactRate: number;
  objects: number;
  /** per requested object: found, right shape, right colour, right texture (not found counts as wrong) */
  foundRate: number;
  shapeAccuracy: number;
  colourAccuracy: number;
  /** plain-shape objects only (rare objects have a fixed look) */
  textureAccuracy: number;
  /** by the number of objects in an image: its images, their shape-and-colour rate, and the share of their objects drawn in the right shape (how a crowd costs each object) */
  byObjectCount: { objects: number; images: number; shapeAndColourRate: number; shapeAccuracy: number }[];
  /** per requested shape (rare objects by name): objects asked for, read with the right shape, and what else was read */
  byShape: { shape: string; objects: number; shapeCorrect: number; misreadAs: Record<string, number> }[];
  results: CaseResult[];
}

function describeRequest(e: ObjectEvaluation): string {
  const r = e.request;
  return isRareObject(r) ? r.shape : `${r.colour} ${r.texture} ${r.shape}`;
}

/** Where a judged run keeps the image of a case (`--out` of scripts/eval-default-model.ts). */
export function caseImageFile(dir: string, seed: number): string {
  return join(dir, `case-${String(seed).padStart(3, '0')}.png`);
}

/** The image of each held-out case: drawn by a pipeline, or read back from a run that kept its images. */
export type CaseImages = (testCase: EvaluationCase) => Promise<RgbImage>;

export function generatedImages(pipeline: StableDiffusionPipeline, settings: GenerationSettings): CaseImages {
  return async (testCase) => {
    const generated = await pipeline.generate({ ...settings, prompt: testCase.caption, seed: testCase.seed });
    const image = tensorToRgbImages(generated.images)[0]!;
    tf.dispose([generated.images, generated.latents]);
    return image;
  };
}

/** The images a run wrote with its cases (so a changed evaluator can judge the same images again). */
export function savedImages(dir: string): CaseImages {
  return (testCase) => readRgb(caseImageFile(dir, testCase.seed));
}

/** Judges each case's image without boxes: text-to-image decides the layout, so an object counts as found when a region of its colour is there. */
async function judgeCases(images: CaseImages, cases: readonly EvaluationCase[], onImage?: (index: number, image: RgbImage, result: CaseResult) => Promise<void> | void): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  for (const [index, testCase] of cases.entries()) {
    const image = await images(testCase);
    const { objects: evaluations, unclaimedRegions } = judgeScene(image, testCase.requests.map((request) => ({ ...request, box: null })));
    const result: CaseResult = {
      seed: testCase.seed,
      caption: testCase.caption,
      shapeAndColour: evaluations.every((e) => e.found && e.shape.correct && e.colour.correct),
      allAttributes: evaluations.every((e) => e.found && e.shape.correct && e.colour.correct && e.texture.correct),
      unclaimedRegions,
      objects: evaluations.map((e) => ({
        request: describeRequest(e),
        requestedShape: e.request.shape,
        rare: isRareObject(e.request),
        found: e.found,
        box: e.box,
        shape: e.shape.label,
        colour: e.colour.label,
        texture: e.texture.label,
        shapeCorrect: e.found && e.shape.correct,
        colourCorrect: e.found && e.colour.correct,
        textureCorrect: e.found && e.texture.correct,
      })),
    };
    results.push(result);
    await onImage?.(index, image, result);
  }
  return results;
}

/** Judges one image per held-out case (caption and seed from evaluationSet, 1-3 objects); `settings` say how the images were drawn. */
export async function evaluateGeneration(
  images: CaseImages,
  count: number,
  settings: GenerationSettings,
  options: {
    /** 0 for the acceptance cases; another range (e.g. 10,000) checks progress without looking at them */
    firstSeed?: number;
    onImage?: (index: number, image: RgbImage, result: CaseResult) => Promise<void> | void;
  } = {},
): Promise<GenerationReport> {
  const results = await judgeCases(images, evaluationSet(count, { firstSeed: options.firstSeed ?? 0 }), options.onImage);
  const objects = results.flatMap((r) => r.objects);
  const plain = objects.filter((o) => !o.rare);
  const rate = (items: unknown[], hits: number) => (items.length === 0 ? 0 : hits / items.length);
  const counts = [...new Set(results.map((r) => r.objects.length))].sort();
  return {
    cases: results.length,
    settings,
    shapeAndColourRate: rate(results, results.filter((r) => r.shapeAndColour).length),
    allAttributesRate: rate(results, results.filter((r) => r.allAttributes).length),
    exactRate: rate(results, results.filter((r) => r.shapeAndColour && r.unclaimedRegions === 0).length),
    objects: objects.length,
    foundRate: rate(objects, objects.filter((o) => o.found).length),
    shapeAccuracy: rate(objects, objects.filter((o) => o.shapeCorrect).length),
    colourAccuracy: rate(objects, objects.filter((o) => o.colourCorrect).length),
    textureAccuracy: rate(plain, plain.filter((o) => o.textureCorrect).length),
    byObjectCount: counts.map((n) => {
      const subset = results.filter((r) => r.objects.length === n);
      const subsetObjects = subset.flatMap((r) => r.objects);
      return {
        objects: n,
        images: subset.length,
        shapeAndColourRate: rate(subset, subset.filter((r) => r.shapeAndColour).length),
        shapeAccuracy: rate(subsetObjects, subsetObjects.filter((o) => o.shapeCorrect).length),
      };
    }),
    byShape: [...new Set(objects.map((o) => o.requestedShape))].sort().map((shape) => {
      const asked = objects.filter((o) => o.requestedShape === shape);
      const misreadAs: Record<string, number> = {};
      for (const o of asked) {
        if (o.shapeCorrect) continue;
        const seen = o.found ? (o.shape ?? 'unknown') : 'not found';
        misreadAs[seen] = (misreadAs[seen] ?? 0) + 1;
      }
      return { shape, objects: asked.length, shapeCorrect: asked.filter((o) => o.shapeCorrect).length, misreadAs };
    }),
    results,
  };
}

/** What the judge gives where generation cannot be the cause: the cases' own scenes, as rendered and through the VAE. */
export interface CeilingReport {
  cases: number;
  /** share of cases whose render has every object found with the right shape and colour (the judge's own accuracy) */
  rendersRate: number;
  /** ... of their VAE reconstructions: the best a generator in this latent space could score */
  reconstructionsRate: number;
}

export async function measureCeiling(pipeline: StableDiffusionPipeline, count: number, firstSeed: number): Promise<CeilingReport> {
  const size = pipeline.defaultSize;
  const cases = evaluationSet(count, { firstSeed });
  const renders: RgbImage[] = cases.map((c) => ({ width: size, height: size, data: renderScene(c.scene, size, { masks: false }).image }));
  const reconstructions = reconstruct(pipeline.vae, renders);
  const index = new Map(cases.map((c, i) => [c.seed, i]));
  const rate = async (images: RgbImage[]) => {
    const results = await judgeCases(async (c) => images[index.get(c.seed)!]!, cases);
    return results.filter((r) => r.shapeAndColour).length / results.length;
  };
  return { cases: count, rendersRate: await rate(renders), reconstructionsRate: await rate(reconstructions) };
}

/** VAE reconstruction PSNR on `count` held-out scenes (seeds 0.., 1-4 objects) at the model's image size. */
export function evaluateReconstruction(pipeline: StableDiffusionPipeline, count: number): ReconstructionReport {
  return measureReconstruction(pipeline.vae, heldOutScenes(count, pipeline.defaultSize, 0));
}

export interface TimingReport {
  runs: number;
  settings: GenerationSettings;
  /** wall time of generate() (text encoding, every UNet call, decoding), milliseconds */
  medianMs: number;
  minMs: number;
  maxMs: number;
}

/** Times `runs` generations after one warm-up run. */
export async function timeGeneration(pipeline: StableDiffusionPipeline, runs: number, settings: GenerationSettings): Promise<TimingReport> {
  const prompt = 'a photo of a red striped circle and a blue star on snow';
  const once = async (seed: number) => {
    const started = performance.now();
    const result = await pipeline.generate({ ...settings, prompt, seed });
    result.images.dataSync();
    const elapsed = performance.now() - started;
    tf.dispose([result.images, result.latents]);
    return elapsed;
  };
  await once(0);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(await once(i + 1));
  const sorted = [...times].sort((a, b) => a - b);
  return { runs, settings, medianMs: sorted[Math.floor(sorted.length / 2)]!, minMs: sorted[0]!, maxMs: sorted[sorted.length - 1]! };
}
