// Training data: an endless stream of rendered world scenes with their captions, drawn from the training split of
// captions. Every draw goes through the run's Generator, so a resumed run sees exactly the scenes it would have.
import { tf } from '../runtime/backend.ts';
import type { Generator } from '../util/random.ts';
import { REFERENCE_SEED_BASE } from '../world/evaluator/reference.ts';
import { renderScene } from '../world/render.ts';
import { sampleScene, type SceneEmphasisOptions } from '../world/sampler.ts';
import { captionOf, type Scene } from '../world/scene.ts';
import type { WorldRecipe } from './recipe.ts';

export interface WorldBatch {
  /** NHWC [count, side, side, 3] in [-1, 1] */
  pixels: Float32Array;
  side: number;
  captions: string[];
  /** the scene seeds drawn */
  seeds: number[];
  scenes: Scene[];
  /** with `masks`: each scene's instance masks (1 where an object is the visible one), crop × crop, in object order */
  masks?: Uint8Array[][];
}

/** Scene seeds stay below the evaluator's reference seeds, so the judge never saw a training image. */
const TRAINING_SEED_LIMIT = REFERENCE_SEED_BASE;

/** Renders `count` training scenes at world.imageSize; with `crop`, a random crop × crop window of each. */
export function drawWorldBatch(
  generator: Generator,
  world: WorldRecipe,
  count: number,
  crop = world.imageSize,
  sceneOptions: SceneEmphasisOptions = {},
  options: { masks?: boolean } = {},
): WorldBatch {
  const size = world.imageSize;
  if (!Number.isInteger(crop) || crop < 1 || crop > size) throw new Error(`crop must be an integer in 1..${size}, got ${crop}`);
  const pixels = new Float32Array(count * crop * crop * 3);
  const captions: string[] = [];
  const seeds: number[] = [];
  const scenes: Scene[] = [];
  const masks: Uint8Array[][] = [];
  for (let b = 0; b < count; b++) {
    const seed = generator.randint(TRAINING_SEED_LIMIT);
    const scene = sampleScene(seed, { split: 'train', minObjects: world.minObjects, maxObjects: world.maxObjects, ...sceneOptions });
    const rendered = renderScene(scene, size, { masks: options.masks === true });
    const x0 = crop < size ? generator.randint(size - crop + 1) : 0;
    const y0 = crop < size ? generator.randint(size - crop + 1) : 0;
    const base = b * crop * crop * 3;
    for (let y = 0; y < crop; y++) {
      for (let x = 0; x < crop * 3; x++) {
        pixels[base + y * crop * 3 + x] = rendered.image[(y0 + y) * size * 3 + x0 * 3 + x]! / 127.5 - 1;
      }
    }
    if (options.masks) masks.push(rendered.masks.map((mask) => cropPlane(mask, size, x0, y0, crop)));
    captions.push(captionOf(scene));
    seeds.push(seed);
    scenes.push(scene);
  }
  return { pixels, side: crop, captions, seeds, scenes, ...(options.masks ? { masks } : {}) };
}

function cropPlane(plane: Uint8Array, size: number, x0: number, y0: number, crop: number): Uint8Array {
  if (crop === size) return plane;
  const out = new Uint8Array(crop * crop);
  for (let y = 0; y < crop; y++) out.set(plane.subarray((y0 + y) * size + x0, (y0 + y) * size + x0 + crop), y * crop);
  return out;
}

export function batchTensor(batch: WorldBatch): tf.Tensor4D {
  return tf.tensor4d(batch.pixels, [batch.captions.length, batch.side, batch.side, 3]);
}

/** Samples [start, start + size) of a batch-first tensor; the tensor itself when that is all of it. */
export function sliceSamples<T extends tf.Tensor>(batch: T, start: number, size: number): T {
  if (start === 0 && size === batch.shape[0]) return batch;
  return tf.slice(batch, start, size) as T;
}
