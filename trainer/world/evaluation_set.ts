// Held-out benchmark cases: captions the training split never draws, each with a layout whose boxes a
// box-conditioned generator can be asked to fill, and the matching evaluator requests.
import type { ObjectRequest } from './evaluator/evaluate.ts';
import { sampleScene } from './sampler.ts';
import { captionOf, objectBox, type Scene } from './scene.ts';

export interface EvaluationCase {
  /** the case's seed: drives its caption and layout (and, by convention, the generation seed) */
  seed: number;
  caption: string;
  scene: Scene;
  /** one per object, in caption order, with the layout's box */
  requests: ObjectRequest[];
}

/** Seeds from here on check progress (training previews, interim evaluations); 0.. are the acceptance cases. */
export const VALIDATION_FIRST_SEED = 10_000;

export interface EvaluationSetOptions {
  firstSeed?: number;
  minObjects?: number;
  maxObjects?: number;
}

/** `count` held-out cases with seeds firstSeed, firstSeed + 1, ... (default 0, 1-3 objects). */
export function evaluationSet(count: number, options: EvaluationSetOptions = {}): EvaluationCase[] {
  if (!Number.isInteger(count) || count < 1) throw new Error(`count must be a positive integer, got ${count}`);
  const firstSeed = options.firstSeed ?? 0;
  return Array.from({ length: count }, (_, i) => {
    const seed = firstSeed + i;
    const scene = sampleScene(seed, { split: 'heldout', minObjects: options.minObjects ?? 1, maxObjects: options.maxObjects ?? 3 });
    return {
      seed,
      caption: captionOf(scene),
      scene,
      requests: scene.objects.map((object) => ({ shape: object.shape, colour: object.colour, texture: object.texture, box: objectBox(object) })),
    };
  });
}
