// Colour segmentation of an image of the world: every pixel near a shade line gets that named colour, regions grow
// into touching pixels a little further from their colour's line (hysteresis, as Canny's edges), pinholes are closed,
// thin structures (anti-aliased seams between two colours, background specks) are removed by a 2x2 opening, and each
// colour's connected components become regions. Regions that hug the image border over a long stretch or cover a
// large part of the frame are background (objects are drawn inside the frame).
import { COLOUR_GROW_DISTANCE, COLOUR_MATCH_DISTANCE, nearestColours, NO_COLOUR } from '../colour.ts';
import { checkRgbImage, resizeBilinear, type RgbImage } from '../image.ts';

/** Square images up to this side are analysed as they are; others are resized to it. */
export const MAX_ANALYSIS_SIZE = 128;
export const MIN_IMAGE_SIZE = 32;

/** Smallest region that can be an object (a small star at 64x64 covers about 75 pixels). */
export function minObjectArea(size: number): number {
  return Math.max(8, Math.round(40 * (size / 128) ** 2));
}

/** Smallest region counted as stray colour (leakage). */
export function minStrayArea(size: number): number {
  return Math.max(4, Math.round(8 * (size / 128) ** 2));
}

export interface Region {
  id: number;
  /** index into COLOUR_NAMES */
  colour: number;
  area: number;
  /** pixel indices (y * size + x) of the region */
  pixels: Int32Array;
  /** inclusive pixel bounds */
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  /** pixels on the image border */
  borderPixels: number;
  /** large or long on the border: part of the background */
  background: boolean;
}

export interface Segmentation {
  size: number;
  rgb: Uint8Array;
  /** per pixel: region id + 1, or 0 */
  regionOf: Int32Array;
  /** per pixel: colour after the opening, or NO_COLOUR */
  labels: Uint8Array;
  regions: Region[];
}

/**
 * Pixels within COLOUR_MATCH_DISTANCE of their nearest colour's line take that colour; from them, each colour spreads
 * (4-connected) into pixels whose nearest colour it is, within COLOUR_GROW_DISTANCE.
 */
function labelWithGrowth(rgb: Uint8Array, size: number): Uint8Array {
  const { nearest, distance } = nearestColours(rgb, size * size);
  const labels = new Uint8Array(size * size).fill(NO_COLOUR);
  const queue = new Int32Array(size * size);
  let tail = 0;
  for (let i = 0; i < labels.length; i++) {
    if (distance[i]! > COLOUR_MATCH_DISTANCE) continue;
    labels[i] = nearest[i]!;
    queue[tail++] = i;
  }
  const spread = (j: number, colour: number) => {
    if (labels[j] !== NO_COLOUR || nearest[j] !== colour || distance[j]! > COLOUR_GROW_DISTANCE) return;
    labels[j] = colour;
    queue[tail++] = j;
  };
  for (let head = 0; head < tail; head++) {
    const i = queue[head]!;
    const x = i % size;
    const colour = labels[i]!;
    if (x > 0) spread(i - 1, colour);
    if (x < size - 1) spread(i + 1, colour);
    if (i >= size) spread(i - size, colour);
    if (i + size < labels.length) spread(i + size, colour);
  }
  return labels;
}

/** Gives an unlabelled pixel the colour of at least three of its four neighbours (closes pinholes from noise). */
function fillPinholes(labels: Uint8Array, size: number): Uint8Array {
  const out = Uint8Array.from(labels);
  for (let y = 1; y < size - 1; y++) {
    for (let x = 1; x < size - 1; x++) {
      const i = y * size + x;
      if (labels[i] !== NO_COLOUR) continue;
      const around = [labels[i - 1]!, labels[i + 1]!, labels[i - size]!, labels[i + size]!];
      for (const candidate of around) {
        if (candidate !== NO_COLOUR && around.filter((label) => label === candidate).length >= 3) {
          out[i] = candidate;
          break;
        }
      }
    }
  }
  return out;
}

/** Keeps a pixel's colour only where a 2x2 block of that colour covers it (morphological opening per colour). */
function openLabels(labels: Uint8Array, size: number): Uint8Array {
  const opened = new Uint8Array(labels.length).fill(NO_COLOUR);
  for (let y = 0; y + 1 < size; y++) {
    for (let x = 0; x + 1 < size; x++) {
      const i = y * size + x;
      const label = labels[i]!;
      if (label === NO_COLOUR || labels[i + 1] !== label || labels[i + size] !== label || labels[i + size + 1] !== label) continue;
      opened[i] = opened[i + 1] = opened[i + size] = opened[i + size + 1] = label;
    }
  }
  return opened;
}

export function segment(image: RgbImage): Segmentation {
  checkRgbImage(image);
  if (image.width < MIN_IMAGE_SIZE || image.height < MIN_IMAGE_SIZE) {
    throw new Error(`images smaller than ${MIN_IMAGE_SIZE}x${MIN_IMAGE_SIZE} cannot be judged, got ${image.width}x${image.height}`);
  }
  const native = image.width === image.height && image.width <= MAX_ANALYSIS_SIZE;
  const size = native ? image.width : MAX_ANALYSIS_SIZE;
  const { data: rgb } = native ? image : resizeBilinear(image, size, size);
  const labels = openLabels(fillPinholes(labelWithGrowth(rgb, size), size), size);
  const regionOf = new Int32Array(size * size);
  const regions: Region[] = [];
  const stack = new Int32Array(size * size);
  const collected = new Int32Array(size * size);
  for (let start = 0; start < size * size; start++) {
    const colour = labels[start]!;
    if (colour === NO_COLOUR || regionOf[start] !== 0) continue;
    const id = regions.length;
    let top = 0;
    let count = 0;
    stack[top++] = start;
    regionOf[start] = id + 1;
    let x0 = size;
    let y0 = size;
    let x1 = -1;
    let y1 = -1;
    let borderPixels = 0;
    while (top > 0) {
      const i = stack[--top]!;
      collected[count++] = i;
      const x = i % size;
      const y = (i - x) / size;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
      if (x === 0 || y === 0 || x === size - 1 || y === size - 1) borderPixels++;
      // 4-connectivity: objects of one colour that touch at a corner stay apart
      if (x > 0 && labels[i - 1] === colour && regionOf[i - 1] === 0) {
        regionOf[i - 1] = id + 1;
        stack[top++] = i - 1;
      }
      if (x < size - 1 && labels[i + 1] === colour && regionOf[i + 1] === 0) {
        regionOf[i + 1] = id + 1;
        stack[top++] = i + 1;
      }
      if (y > 0 && labels[i - size] === colour && regionOf[i - size] === 0) {
        regionOf[i - size] = id + 1;
        stack[top++] = i - size;
      }
      if (y < size - 1 && labels[i + size] === colour && regionOf[i + size] === 0) {
        regionOf[i + size] = id + 1;
        stack[top++] = i + size;
      }
    }
    const pixels = collected.slice(0, count);
    const background = (borderPixels > 0 && count >= 0.2 * size * size) || borderPixels >= size / 2;
    regions.push({ id, colour, area: count, pixels, x0, y0, x1, y1, borderPixels, background });
  }
  return { size, rgb, regionOf, labels, regions };
}

/** Regions that may be objects: not background, at least minObjectArea pixels. */
export function objectRegions(segmentation: Segmentation): Region[] {
  const minArea = minObjectArea(segmentation.size);
  return segmentation.regions.filter((region) => !region.background && region.area >= minArea);
}
