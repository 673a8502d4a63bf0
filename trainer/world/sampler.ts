// Seeded scene sampling: which objects (attributes), where (layout), on what background, and the train/held-out
// split of captions. Sampling never renders, so caption sets and box layouts are cheap to draw on their own.
import type { BackgroundSpec } from './backgrounds.ts';
import {
  BACKGROUND_NAMES,
  BACKGROUNDS,
  COLOUR_NAMES,
  RARE_NAMES,
  RARE_OBJECTS,
  SHAPE_NAMES,
  TEXTURE_NAMES,
  type BackgroundName,
  type ColourName,
  type RareName,
  type ShapeName,
  type TextureName,
} from './definitions.ts';
import { hashString, Rng } from './random.ts';
import { objectColours, objectPhrase, SceneError, type Box, type Scene, type SceneObject } from './scene.ts';
import { rotatedExtent } from './shapes.ts';

export type Split = 'train' | 'heldout' | 'all';

export interface SampleOptions {
  minObjects?: number;
  maxObjects?: number;
  /** which captions may be drawn: 'train' never yields a held-out caption, 'heldout' only those (default 'all') */
  split?: Split;
  /** chance that a scene with 2+ objects holds a similar pair (same shape and colour, other texture) */
  similarPairProbability?: number;
  /** chance that an object slot holds a rare composite object */
  rareProbability?: number;
  /**
   * relative chances of the plain shapes (1 for a shape not named): training may draw the shapes a model finds hard
   * more often; the held-out sets never set it
   */
  shapeWeights?: ShapeWeights;
  /**
   * gap between the bounding discs of objects that share a colour, as a share of the image side (default
   * SAME_COLOUR_GAP): training may hold such objects further apart; the held-out sets never set it
   */
  sameColourGap?: number;
  /**
   * factor on the diameters of objects in scenes of two or more objects (default 1): training may draw crowded scenes
   * with larger objects, whose shapes a 64x64 model resolves better; the held-out sets never set it
   */
  multiObjectScale?: number;
}

export type ShapeWeights = Partial<Record<ShapeName, number>>;

/** The options by which training may draw scenes unlike the held-out sets (recipe's shapeEmphasis). */
export type SceneEmphasisOptions = Pick<SampleOptions, 'shapeWeights' | 'sameColourGap' | 'multiObjectScale'>;

/** Checks shape weights: known shapes, finite non-negative numbers, at least one shape left with a chance. */
export function checkShapeWeights(weights: ShapeWeights, where = 'shapeWeights'): void {
  for (const [shape, weight] of Object.entries(weights)) {
    if (!(SHAPE_NAMES as readonly string[]).includes(shape)) throw new SceneError(`${where}: unknown shape '${shape}' (shapes: ${SHAPE_NAMES.join(', ')})`);
    if (typeof weight !== 'number' || !Number.isFinite(weight) || weight < 0) throw new SceneError(`${where}.${shape} must be a finite number ≥ 0, got ${JSON.stringify(weight)}`);
  }
  if (SHAPE_NAMES.every((shape) => (weights[shape] ?? 1) === 0)) throw new SceneError(`${where}: every shape has weight 0`);
}

export const DEFAULT_SIMILAR_PAIR_PROBABILITY = 0.4;
export const DEFAULT_RARE_PROBABILITY = 0.06;
/** One caption in this many (by a hash of its object set and background) is held out of training. */
export const HELDOUT_MODULUS = 10;

/** Bounding-disc diameter range by object count: fewer objects are drawn larger. */
const SIZE_RANGES: Record<number, [number, number]> = {
  1: [0.4, 0.62],
  2: [0.32, 0.48],
  3: [0.28, 0.4],
  4: [0.26, 0.36],
};
const MAX_ROTATION = 30;
const EDGE_MARGIN = 0.02;
/** Objects sharing a colour keep this gap between bounding discs, so they never touch. */
export const SAME_COLOUR_GAP = 0.04;
/** A wider gap leaves too little room for 4 objects of one colour. */
export const MAX_SAME_COLOUR_GAP = 0.2;

export function checkSameColourGap(gap: number, where = 'sameColourGap'): void {
  if (typeof gap !== 'number' || !Number.isFinite(gap) || gap < 0 || gap > MAX_SAME_COLOUR_GAP) {
    throw new SceneError(`${where} must be a number from 0 to ${MAX_SAME_COLOUR_GAP}, got ${JSON.stringify(gap)}`);
  }
}
/** Larger factors leave four objects too little room (layouts would shrink them back). */
export const MAX_MULTI_OBJECT_SCALE = 1.4;

export function checkMultiObjectScale(scale: number, where = 'multiObjectScale'): void {
  if (typeof scale !== 'number' || !Number.isFinite(scale) || scale < 1 || scale > MAX_MULTI_OBJECT_SCALE) {
    throw new SceneError(`${where} must be a number from 1 to ${MAX_MULTI_OBJECT_SCALE}, got ${JSON.stringify(scale)}`);
  }
}
/** Objects of different colours may overlap: their centres stay at least this share of the summed radii apart. */
const OVERLAP_FACTOR = 0.82;

interface ObjectAttributes {
  shape: ShapeName | RareName;
  colour: ColourName | null;
  texture: TextureName | null;
}

/** Object colours a background allows. */
function allowedColours(background: BackgroundName): ColourName[] {
  const excluded = BACKGROUNDS[background].excludedColours;
  return COLOUR_NAMES.filter((colour) => !excluded.includes(colour));
}

function allowedRares(background: BackgroundName): RareName[] {
  const excluded = BACKGROUNDS[background].excludedColours;
  return RARE_NAMES.filter((name) => RARE_OBJECTS[name].colours.every((colour) => !excluded.includes(colour)));
}

/** Key of a caption independent of object order; the held-out split is a hash of it. */
function captionKey(objects: readonly ObjectAttributes[], background: BackgroundName): string {
  return `${objects.map(objectPhrase).sort().join(' + ')} | ${background}`;
}

export function isHeldOut(objects: readonly ObjectAttributes[], background: BackgroundName): boolean {
  return hashString(captionKey(objects, background)) % HELDOUT_MODULUS === 0;
}

function sameAttributes(a: ObjectAttributes, b: ObjectAttributes): boolean {
  return a.shape === b.shape && a.colour === b.colour && a.texture === b.texture;
}

function sampleAttributes(rng: Rng, count: number, background: BackgroundName, similarPair: boolean, rareProbability: number, shapeWeights: ShapeWeights | undefined): ObjectAttributes[] {
  const colours = allowedColours(background);
  const rares = allowedRares(background);
  const objects: ObjectAttributes[] = [];
  const weights = shapeWeights && SHAPE_NAMES.map((shape) => shapeWeights[shape] ?? 1);
  const drawShape = (): ShapeName => (weights ? SHAPE_NAMES[rng.weightedIndex(weights)]! : rng.pick(SHAPE_NAMES));
  const drawPlain = (): ObjectAttributes => ({ shape: drawShape(), colour: rng.pick(colours), texture: rng.pick(TEXTURE_NAMES) });
  if (similarPair) {
    const first = drawPlain();
    const otherTextures = TEXTURE_NAMES.filter((texture) => texture !== first.texture);
    objects.push(first, { ...first, texture: rng.pick(otherTextures) });
  }
  while (objects.length < count) {
    const unusedRares = rares.filter((name) => !objects.some((o) => o.shape === name));
    const candidate: ObjectAttributes =
      unusedRares.length > 0 && rng.chance(rareProbability) ? { shape: rng.pick(unusedRares), colour: null, texture: null } : drawPlain();
    if (!objects.some((o) => sameAttributes(o, candidate))) objects.push(candidate);
  }
  return rng.shuffle(objects);
}

function sharesColour(a: ObjectAttributes, b: ObjectAttributes): boolean {
  const colours = objectColours(b);
  return objectColours(a).some((colour) => colours.includes(colour));
}

/** Places objects (centre, size, rotation) without rendering; null when no layout was found. */
function sampleLayout(rng: Rng, attributes: ObjectAttributes[], sameColourGap: number, multiObjectScale: number): SceneObject[] | null {
  const [smallest, largest] = SIZE_RANGES[Math.min(4, attributes.length)]!;
  const scale = attributes.length >= 2 ? multiObjectScale : 1;
  const [low, high] = [smallest * scale, largest * scale];
  for (let attempt = 0; attempt < 20; attempt++) {
    const shrink = 0.94 ** attempt;
    const placed: SceneObject[] = [];
    for (const object of attributes) {
      const size = rng.uniform(low, high) * shrink;
      const radius = size / 2;
      let found: SceneObject | null = null;
      for (let tries = 0; tries < 60 && !found; tries++) {
        const center: [number, number] = [
          rng.uniform(radius + EDGE_MARGIN, 1 - radius - EDGE_MARGIN),
          rng.uniform(radius + EDGE_MARGIN, 1 - radius - EDGE_MARGIN),
        ];
        const fits = placed.every((other) => {
          const distance = Math.hypot(center[0] - other.center[0], center[1] - other.center[1]);
          const radii = radius + other.size / 2;
          return sharesColour(object, other) ? distance >= radii + sameColourGap : distance >= OVERLAP_FACTOR * radii;
        });
        if (fits) found = { ...object, center, size, rotation: Math.round(rng.uniform(-MAX_ROTATION, MAX_ROTATION)) };
      }
      if (!found) break;
      placed.push(found);
    }
    if (placed.length === attributes.length) return placed;
  }
  return null;
}

/** A random scene, a pure function of `seed` and the options. */
export function sampleScene(seed: number, options: SampleOptions = {}): Scene {
  const minObjects = options.minObjects ?? 1;
  const maxObjects = options.maxObjects ?? 4;
  if (!Number.isInteger(minObjects) || !Number.isInteger(maxObjects) || minObjects < 1 || maxObjects > 4 || minObjects > maxObjects) {
    throw new SceneError(`object counts must satisfy 1 <= minObjects <= maxObjects <= 4, got ${minObjects}..${maxObjects}`);
  }
  const split = options.split ?? 'all';
  const similarPairProbability = options.similarPairProbability ?? DEFAULT_SIMILAR_PAIR_PROBABILITY;
  const rareProbability = options.rareProbability ?? DEFAULT_RARE_PROBABILITY;
  if (options.shapeWeights) checkShapeWeights(options.shapeWeights);
  const sameColourGap = options.sameColourGap ?? SAME_COLOUR_GAP;
  checkSameColourGap(sameColourGap);
  const multiObjectScale = options.multiObjectScale ?? 1;
  checkMultiObjectScale(multiObjectScale);
  const rng = new Rng(seed);
  for (;;) {
    const kind = rng.pick(BACKGROUND_NAMES);
    const background: BackgroundSpec = { kind, variant: rng.int(0, BACKGROUNDS[kind].variants - 1), seed: rng.nextUint32() };
    const count = rng.int(minObjects, maxObjects);
    const attributes = sampleAttributes(rng, count, kind, count >= 2 && rng.chance(similarPairProbability), rareProbability, options.shapeWeights);
    if (split !== 'all' && isHeldOut(attributes, kind) !== (split === 'heldout')) continue;
    const objects = sampleLayout(rng, attributes, sameColourGap, multiObjectScale);
    if (objects) return { background, objects };
  }
}

/** Whether a scene holds a similar pair: two objects of one shape and colour with different textures. */
export function hasSimilarPair(scene: Scene): boolean {
  return scene.objects.some((a, i) =>
    scene.objects.some((b, j) => j > i && a.colour !== null && a.shape === b.shape && a.colour === b.colour && a.texture !== b.texture),
  );
}

export interface BoxedObject extends ObjectAttributes {
  box: Box;
  /** degrees, default 0 */
  rotation?: number;
}

/** A scene whose objects fill requested boxes (each object scaled to fit its box, centred in it). */
export function sceneFromBoxes(background: BackgroundSpec, objects: readonly BoxedObject[]): Scene {
  return {
    background,
    objects: objects.map((object, index) => {
      const [x0, y0, x1, y1] = object.box;
      if (!(x1 > x0 && y1 > y0)) throw new SceneError(`objects[${index}].box ${JSON.stringify(object.box)} is empty`);
      const rotation = object.rotation ?? 0;
      const [minX, minY, maxX, maxY] = rotatedExtent(object.shape, rotation);
      const radius = Math.min((x1 - x0) / (maxX - minX), (y1 - y0) / (maxY - minY));
      return {
        shape: object.shape,
        colour: object.colour,
        texture: object.texture,
        center: [(x0 + x1) / 2 - ((minX + maxX) / 2) * radius, (y0 + y1) / 2 - ((minY + maxY) / 2) * radius],
        size: 2 * radius,
        rotation,
      };
    }),
  };
}
