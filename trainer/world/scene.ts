// A scene is a plain JSON description (background + objects with shape, colour, texture, centre, size, rotation)
// that renders deterministically. This file holds the types, their validation, captions and analytic boxes.
import type { BackgroundSpec } from './backgrounds.ts';
import {
  BACKGROUND_NAMES,
  BACKGROUNDS,
  COLOURS,
  isBackgroundName,
  isColourName,
  isRareName,
  isShapeName,
  isTextureName,
  RARE_OBJECTS,
  TEXTURE_ADJECTIVES,
  type BackgroundName,
  type ColourName,
  type RareName,
  type ShapeName,
  type TextureName,
} from './definitions.ts';
import { rotatedExtent } from './shapes.ts';

/** Normalised box [x0, y0, x1, y1], top-left origin, x1/y1 exclusive edges. */
export type Box = [number, number, number, number];

export interface SceneObject {
  /** a shape name, or a rare object's name */
  shape: ShapeName | RareName;
  /** null for rare objects, whose colours are fixed */
  colour: ColourName | null;
  /** null for rare objects, whose textures are fixed */
  texture: TextureName | null;
  /** centre of the bounding disc, normalised (0..1, top-left origin) */
  center: [number, number];
  /** diameter of the bounding disc as a fraction of the image side */
  size: number;
  /** degrees, clockwise on screen */
  rotation: number;
}

export interface Scene {
  background: BackgroundSpec;
  /** in drawing order (later objects on top) and caption order */
  objects: SceneObject[];
}

export class SceneError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SceneError';
  }
}

export function isRareObject(object: Pick<SceneObject, 'shape'>): boolean {
  return isRareName(object.shape);
}

/** Every named colour an object is painted with (one for a plain shape, several for a rare object). */
export function objectColours(object: Pick<SceneObject, 'shape' | 'colour'>): readonly ColourName[] {
  if (isRareName(object.shape)) return RARE_OBJECTS[object.shape].colours;
  return [object.colour!];
}

/** The words that name one object in a caption, its article left out: ["red", "striped", "circle"], ["zorb"]. */
export function objectWords(object: Pick<SceneObject, 'shape' | 'colour' | 'texture'>): string[] {
  if (isRareName(object.shape)) return [object.shape];
  const adjective = TEXTURE_ADJECTIVES[object.texture!];
  return [object.colour!, ...(adjective ? [adjective] : []), object.shape];
}

/** The caption phrase of one object: "a red striped circle", "an orange star", "a zorb". */
export function objectPhrase(object: Pick<SceneObject, 'shape' | 'colour' | 'texture'>): string {
  const words = objectWords(object);
  const article = !isRareName(object.shape) && /^[aeiou]/.test(words[0]!) ? 'an' : 'a';
  return `${article} ${words.join(' ')}`;
}

/** "a photo of a red striped circle and a blue star on snow" */
export function captionOf(scene: Pick<Scene, 'background' | 'objects'>): string {
  if (scene.objects.length === 0) throw new SceneError('a caption needs at least one object');
  return `a photo of ${scene.objects.map(objectPhrase).join(' and ')} ${BACKGROUNDS[scene.background.kind].phrase}`;
}

export interface CaptionObject {
  shape: ShapeName | RareName;
  colour: ColourName | null;
  texture: TextureName | null;
}

/** Reads a caption of the world's grammar back into its objects and background; anything else is an error. */
export function parseCaption(caption: string): { background: BackgroundName; objects: CaptionObject[] } {
  const prefix = 'a photo of ';
  if (!caption.startsWith(prefix)) throw new SceneError(`caption must start with '${prefix}': ${JSON.stringify(caption)}`);
  const background = BACKGROUND_NAMES.find((name) => caption.endsWith(` ${BACKGROUNDS[name].phrase}`));
  if (!background) throw new SceneError(`caption ends with no known background phrase: ${JSON.stringify(caption)}`);
  const middle = caption.slice(prefix.length, caption.length - BACKGROUNDS[background].phrase.length - 1);
  const textureOfAdjective = new Map(Object.entries(TEXTURE_ADJECTIVES).flatMap(([texture, adjective]) => (adjective ? [[adjective, texture as TextureName]] : [])));
  const objects = middle.split(' and ').map((phrase): CaptionObject => {
    const words = phrase.split(' ');
    const [article, ...rest] = words;
    const fail = () => new SceneError(`cannot read object phrase ${JSON.stringify(phrase)} in ${JSON.stringify(caption)}`);
    if (article !== 'a' && article !== 'an') throw fail();
    let object: CaptionObject;
    if (rest.length === 1 && isRareName(rest[0]!)) {
      object = { shape: rest[0], colour: null, texture: null };
    } else {
      const [colour, ...tail] = rest;
      const shape = tail[tail.length - 1];
      const adjectives = tail.slice(0, -1);
      if (!colour || !isColourName(colour) || !shape || !isShapeName(shape) || adjectives.length > 1) throw fail();
      const texture = adjectives.length === 0 ? 'plain' : textureOfAdjective.get(adjectives[0]!);
      if (!texture) throw fail();
      object = { shape, colour, texture };
    }
    if (objectPhrase(object) !== phrase) throw fail();
    return object;
  });
  return { background, objects };
}

/** The box the object's painted pixels occupy, from its exact geometry (no rendering), clipped to the image. */
export function objectBox(object: SceneObject): Box {
  const [minX, minY, maxX, maxY] = rotatedExtent(object.shape, object.rotation);
  const radius = object.size / 2;
  const clip = (value: number) => Math.min(1, Math.max(0, value));
  return [
    clip(object.center[0] + minX * radius),
    clip(object.center[1] + minY * radius),
    clip(object.center[0] + maxX * radius),
    clip(object.center[1] + maxY * radius),
  ];
}

function expectNumber(value: unknown, what: string, low: number, high: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < low || value > high) {
    throw new SceneError(`${what} must be a number in [${low}, ${high}], got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Checks an untrusted scene description (parsed JSON) and returns it typed; bad input gets a clear error. */
export function parseScene(input: unknown): Scene {
  if (typeof input !== 'object' || input === null) throw new SceneError('a scene must be an object');
  const raw = input as Record<string, unknown>;
  const background = raw.background as Record<string, unknown> | undefined;
  if (typeof background !== 'object' || background === null) throw new SceneError('scene.background is missing');
  const kind = background.kind;
  if (typeof kind !== 'string' || !isBackgroundName(kind)) {
    throw new SceneError(`unknown background kind ${JSON.stringify(kind)}; known: ${Object.keys(BACKGROUNDS).join(', ')}`);
  }
  const variant = background.variant;
  if (!Number.isInteger(variant) || (variant as number) < 0 || (variant as number) >= BACKGROUNDS[kind].variants) {
    throw new SceneError(`background '${kind}' has variants 0..${BACKGROUNDS[kind].variants - 1}, got ${JSON.stringify(variant)}`);
  }
  if (!Number.isInteger(background.seed)) throw new SceneError(`background.seed must be an integer, got ${JSON.stringify(background.seed)}`);
  if (!Array.isArray(raw.objects)) throw new SceneError('scene.objects must be a list');
  const objects = raw.objects.map((item: unknown, index: number): SceneObject => {
    const where = `objects[${index}]`;
    if (typeof item !== 'object' || item === null) throw new SceneError(`${where} must be an object`);
    const o = item as Record<string, unknown>;
    const shape = o.shape;
    if (typeof shape !== 'string' || !(isShapeName(shape) || isRareName(shape))) {
      throw new SceneError(`${where}.shape ${JSON.stringify(shape)} is neither a shape nor a rare object`);
    }
    let colour: ColourName | null = null;
    let texture: TextureName | null = null;
    if (isRareName(shape)) {
      if (o.colour != null || o.texture != null) throw new SceneError(`${where}: the rare object '${shape}' has a fixed look; colour and texture must be null`);
    } else {
      if (typeof o.colour !== 'string' || !isColourName(o.colour)) {
        throw new SceneError(`${where}.colour ${JSON.stringify(o.colour)} is not one of ${Object.keys(COLOURS).join(', ')}`);
      }
      if (typeof o.texture !== 'string' || !isTextureName(o.texture)) {
        throw new SceneError(`${where}.texture ${JSON.stringify(o.texture)} is not one of ${Object.keys(TEXTURE_ADJECTIVES).join(', ')}`);
      }
      colour = o.colour;
      texture = o.texture;
    }
    const center = o.center;
    if (!Array.isArray(center) || center.length !== 2) throw new SceneError(`${where}.center must be [x, y]`);
    return {
      shape,
      colour,
      texture,
      center: [expectNumber(center[0], `${where}.center[0]`, -1, 2), expectNumber(center[1], `${where}.center[1]`, -1, 2)],
      size: expectNumber(o.size, `${where}.size`, 1e-3, 2),
      rotation: expectNumber(o.rotation, `${where}.rotation`, -360, 360),
    };
  });
  return { background: { kind, variant: variant as number, seed: background.seed as number }, objects };
}
