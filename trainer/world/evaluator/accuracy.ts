// Measures the evaluator against the renderer's ground truth: seeded scenes are rendered, every object is
// requested with its true attributes and its true (mask) box, and the evaluator's readings are compared.
import type { RgbImage } from '../image.ts';
import { renderScene } from '../render.ts';
import { sampleScene, type SampleOptions } from '../sampler.ts';
import { isRareObject, type Box } from '../scene.ts';
import { evaluateScene, type ObjectRequest } from './evaluate.ts';
import { worldReference } from './reference.ts';

export interface AccuracyOptions {
  /** scene seeds to render */
  seeds: readonly number[];
  /** render size (64 or 128) */
  size: number;
  sampleOptions?: SampleOptions;
  /** applied to every render before judging it (e.g. a degradation) */
  transform?: (image: RgbImage, seed: number) => RgbImage;
}

export interface AccuracyReport {
  scenes: number;
  /** plain-shape objects judged */
  objects: number;
  found: number;
  shape: number;
  colour: number;
  texture: number;
  /** rare objects judged and recognised */
  rareObjects: number;
  rareFound: number;
  iouMean: number;
  /** share of found objects whose box IoU exceeds 0.8 */
  iouAbove08: number;
  leakageMean: number;
  leakageMax: number;
  /** "true -> seen" counts of wrong shape and texture readings */
  shapeConfusions: Record<string, number>;
  textureConfusions: Record<string, number>;
  seconds: number;
}

export function measureAccuracy(options: AccuracyOptions): AccuracyReport {
  worldReference();
  const start = performance.now();
  let objects = 0;
  let found = 0;
  let shape = 0;
  let colour = 0;
  let texture = 0;
  let rareObjects = 0;
  let rareFound = 0;
  const ious: number[] = [];
  const leakages: number[] = [];
  const shapeConfusions: Record<string, number> = {};
  const textureConfusions: Record<string, number> = {};
  for (const seed of options.seeds) {
    const scene = sampleScene(seed, options.sampleOptions);
    const rendered = renderScene(scene, options.size);
    const requests: ObjectRequest[] = scene.objects.map((object, i) => ({
      shape: object.shape,
      colour: object.colour,
      texture: object.texture,
      box: rendered.boxes[i] as Box,
    }));
    const clean: RgbImage = { width: options.size, height: options.size, data: rendered.image };
    const results = evaluateScene(options.transform ? options.transform(clean, seed) : clean, requests);
    results.forEach((result, i) => {
      const object = scene.objects[i]!;
      leakages.push(result.leakage.score);
      if (result.iou !== null) ious.push(result.iou);
      if (isRareObject(object)) {
        rareObjects++;
        if (result.found) rareFound++;
        return;
      }
      objects++;
      if (result.found) found++;
      if (result.shape.correct) shape++;
      else if (result.found) shapeConfusions[`${object.shape} -> ${result.shape.label}`] = (shapeConfusions[`${object.shape} -> ${result.shape.label}`] ?? 0) + 1;
      if (result.colour.correct) colour++;
      if (result.texture.correct) texture++;
      else if (result.found) textureConfusions[`${object.texture} -> ${result.texture.label}`] = (textureConfusions[`${object.texture} -> ${result.texture.label}`] ?? 0) + 1;
    });
  }
  const mean = (values: number[]) => (values.length > 0 ? values.reduce((a, b) => a + b, 0) / values.length : 0);
  return {
    scenes: options.seeds.length,
    objects,
    found: found / objects,
    shape: shape / objects,
    colour: colour / objects,
    texture: texture / objects,
    rareObjects,
    rareFound: rareObjects > 0 ? rareFound / rareObjects : 1,
    iouMean: mean(ious),
    iouAbove08: ious.filter((v) => v > 0.8).length / Math.max(1, ious.length),
    leakageMean: mean(leakages),
    leakageMax: Math.max(0, ...leakages),
    shapeConfusions,
    textureConfusions,
    seconds: (performance.now() - start) / 1000,
  };
}
