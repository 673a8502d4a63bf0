// The analytic judge of the world: given an image and the objects a caption asked for (shape, colour, texture,
// optionally a box), it finds each object among the image's colour regions, classifies its attributes, measures
// the IoU of its box with the requested one and scores leakage (its colour outside its box or on another object,
// its texture on another object).
import { shadeLineDistance, rgbToLab } from '../colour.ts';
import {
  COLOUR_NAMES,
  isColourName,
  isRareName,
  isShapeName,
  isTextureName,
  RARE_OBJECTS,
  type ColourName,
  type RareName,
  type ShapeName,
  type TextureName,
} from '../definitions.ts';
import { checkRgbImage, type RgbImage } from '../image.ts';
import type { Box } from '../scene.ts';
import { rasterizeConvex, regionGeometry, shapeFeatures, textureFeatures, type RegionGeometry } from './features.ts';
import { colourComposition, worldReference, type Classification, type Reference } from './reference.ts';
import { minObjectArea, minStrayArea, objectRegions, segment, type Region, type Segmentation } from './segmentation.ts';

export interface ObjectRequest {
  /** a shape or a rare object's name */
  shape: ShapeName | RareName;
  /** required for shapes; rare objects have fixed colours */
  colour?: ColourName | null;
  /** required for shapes; rare objects have fixed textures */
  texture?: TextureName | null;
  /** the box the object was asked to fill (normalised x0, y0, x1, y1) */
  box?: Box | null;
}

export interface AttributeResult<T extends string> {
  /** what the evaluator sees (null when nothing was found) */
  label: T | null;
  confidence: number;
  /** the seen label equals the requested one */
  correct: boolean;
}

export interface Leakage {
  /** the object's colour in stray regions outside its box, relative to the object's own area (0..1) */
  outsideBox: number;
  /** worst share of another requested object's hull painted in this object's colour, outside this box (0..1) */
  onOthers: number;
  /** the confidence with which another requested object is read as showing this object's (non-plain) texture */
  textureOnOthers: number;
  /** the largest of the three */
  score: number;
}

export interface ObjectEvaluation {
  request: ObjectRequest;
  found: boolean;
  /** detected box, normalised */
  box: Box | null;
  /** IoU of the detected box with the requested box; null without a requested box or detection */
  iou: number | null;
  /** for a rare request: the rare object recognised */
  shape: AttributeResult<ShapeName | RareName>;
  /** for a rare request colour and texture are part of its fixed look: label null, correct when it is recognised */
  colour: AttributeResult<ColourName>;
  texture: AttributeResult<TextureName>;
  leakage: Leakage;
}

export class EvaluatorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EvaluatorError';
  }
}

interface RegionReading {
  geometry: RegionGeometry;
  shape: Classification<ShapeName>;
  texture: Classification<TextureName>;
  colourConfidence: number;
}

interface Detection {
  regions: Region[];
  /** inclusive analysis-pixel bounds */
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  reading: RegionReading | null;
  rareName: RareName | null;
  rareConfidence: number;
}

function checkRequest(request: ObjectRequest, index: number): void {
  const where = `request ${index}`;
  if (isRareName(request.shape)) {
    if (request.colour != null || request.texture != null) throw new EvaluatorError(`${where}: the rare object '${request.shape}' has a fixed look; give no colour or texture`);
  } else if (!isShapeName(request.shape)) {
    throw new EvaluatorError(`${where}: unknown shape ${JSON.stringify(request.shape)}`);
  } else {
    if (!request.colour || !isColourName(request.colour)) throw new EvaluatorError(`${where}: unknown colour ${JSON.stringify(request.colour)}`);
    if (!request.texture || !isTextureName(request.texture)) throw new EvaluatorError(`${where}: unknown texture ${JSON.stringify(request.texture)}`);
  }
  if (request.box != null) {
    const b = request.box;
    if (!Array.isArray(b) || b.length !== 4 || b.some((v) => typeof v !== 'number' || !Number.isFinite(v)) || !(b[2] > b[0] && b[3] > b[1])) {
      throw new EvaluatorError(`${where}: box must be [x0, y0, x1, y1] with x1 > x0 and y1 > y0, got ${JSON.stringify(b)}`);
    }
  }
}

function requestColours(request: ObjectRequest): readonly ColourName[] {
  return isRareName(request.shape) ? RARE_OBJECTS[request.shape].colours : [request.colour!];
}

export function boxIou(a: Box, b: Box): number {
  const ix = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const iy = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const intersection = ix * iy;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - intersection;
  return union > 0 ? intersection / union : 0;
}

class SceneAnalysis {
  readonly segmentation: Segmentation;
  readonly candidates: Region[];
  readonly strayArea: number;
  private readonly readings = new Map<number, RegionReading>();

  constructor(
    image: RgbImage,
    private readonly reference: Reference,
  ) {
    this.segmentation = segment(image);
    this.candidates = objectRegions(this.segmentation);
    this.strayArea = minStrayArea(this.segmentation.size);
  }

  get size(): number {
    return this.segmentation.size;
  }

  read(region: Region): RegionReading {
    let reading = this.readings.get(region.id);
    if (!reading) {
      const geometry = regionGeometry(region, this.size);
      reading = {
        geometry,
        shape: this.reference.shapes.classify(shapeFeatures(geometry)),
        texture: this.reference.textures.classify(textureFeatures(region, geometry, this.segmentation.rgb, this.size)),
        colourConfidence: this.colourConfidence(region),
      };
      this.readings.set(region.id, reading);
    }
    return reading;
  }

  /** Softmax over the mean distance of the region's pixels to every colour's shade line. */
  private colourConfidence(region: Region): number {
    const { rgb } = this.segmentation;
    const sums = new Float64Array(COLOUR_NAMES.length);
    const step = Math.max(1, Math.floor(region.area / 400));
    let count = 0;
    for (let k = 0; k < region.pixels.length; k += step) {
      const o = region.pixels[k]! * 3;
      const lab = rgbToLab(rgb[o]!, rgb[o + 1]!, rgb[o + 2]!);
      for (let c = 0; c < COLOUR_NAMES.length; c++) sums[c]! += shadeLineDistance(c, lab).distance;
      count++;
    }
    const weights = Array.from(sums, (s) => Math.exp(-(s / count) / 4));
    const total = weights.reduce((a, b) => a + b, 0);
    return weights[region.colour]! / total;
  }

  /**
   * Pixel bounds of regions, widened by one pixel on a side where the pixel beyond the edge is at least half
   * object: its colour, unmixed between the object's edge pixel and the pixel further out, leans to the object.
   * Colour labels need nearly pure colour, so without this the box misses the anti-aliased rim.
   */
  detectionBounds(regions: readonly Region[]): { x0: number; y0: number; x1: number; y1: number } {
    const { size, rgb, regionOf } = this.segmentation;
    const ids = new Set(regions.map((r) => r.id));
    const inner = bounds(regions);
    const outer = { ...inner };
    const directions = [
      [-1, 0],
      [1, 0],
      [0, -1],
      [0, 1],
    ] as const;
    for (const region of regions) {
      for (const r of region.pixels) {
        const rx = r % size;
        const ry = (r - rx) / size;
        if (rx !== inner.x0 && rx !== inner.x1 && ry !== inner.y0 && ry !== inner.y1) continue;
        for (const [dx, dy] of directions) {
          const px = rx + dx;
          const py = ry + dy;
          const qx = px + dx;
          const qy = py + dy;
          if (px >= inner.x0 && px <= inner.x1 && py >= inner.y0 && py <= inner.y1) continue;
          if (qx < 0 || qy < 0 || qx >= size || qy >= size) continue;
          const p = py * size + px;
          if (ids.has(regionOf[p]! - 1)) continue;
          const q = qy * size + qx;
          let along = 0;
          let length = 0;
          for (let c = 0; c < 3; c++) {
            const objectMinusOutside = rgb[r * 3 + c]! - rgb[q * 3 + c]!;
            along += (rgb[p * 3 + c]! - rgb[q * 3 + c]!) * objectMinusOutside;
            length += objectMinusOutside * objectMinusOutside;
          }
          // too little contrast to unmix reliably
          if (length < 400 || along / length < 0.5) continue;
          outer.x0 = Math.min(outer.x0, px);
          outer.x1 = Math.max(outer.x1, px);
          outer.y0 = Math.min(outer.y0, py);
          outer.y1 = Math.max(outer.y1, py);
        }
      }
    }
    return outer;
  }

  normalisedBox(detection: Pick<Detection, 'x0' | 'y0' | 'x1' | 'y1'>): Box {
    const s = this.size;
    return [detection.x0 / s, detection.y0 / s, (detection.x1 + 1) / s, (detection.y1 + 1) / s];
  }

  /**
   * Groups of regions painted only in a rare object's colours that touch (within a small gap) or nest (one's box
   * holds the other's centre, like a ring around a disc): the candidates for that object.
   */
  rareGroups(name: RareName): Region[][] {
    const { regionOf, size } = this.segmentation;
    const colours = RARE_OBJECTS[name].colours;
    const members = this.segmentation.regions.filter(
      (r) => !r.background && r.area >= this.strayArea && colours.includes(COLOUR_NAMES[r.colour]!),
    );
    const memberIndex = new Map(members.map((region, i) => [region.id, i]));
    const parent = members.map((_, i) => i);
    const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i]!)));
    const gap = Math.max(2, Math.round((3 * size) / 128));
    members.forEach((region, i) => {
      for (const p of region.pixels) {
        const x = p % size;
        const y = (p - x) / size;
        for (let yy = Math.max(0, y - gap); yy <= Math.min(size - 1, y + gap); yy++) {
          for (let xx = Math.max(0, x - gap); xx <= Math.min(size - 1, x + gap); xx++) {
            const j = memberIndex.get(regionOf[yy * size + xx]! - 1);
            if (j !== undefined && j !== i) parent[find(i)] = find(j);
          }
        }
      }
    });
    members.forEach((a, i) => {
      members.forEach((b, j) => {
        const cx = (b.x0 + b.x1) / 2;
        const cy = (b.y0 + b.y1) / 2;
        if (i !== j && cx > a.x0 && cx < a.x1 && cy > a.y0 && cy < a.y1) parent[find(i)] = find(j);
      });
    });
    const groups = new Map<number, Region[]>();
    members.forEach((region, i) => {
      const root = find(i);
      groups.set(root, [...(groups.get(root) ?? []), region]);
    });
    const minArea = minObjectArea(size);
    return [...groups.values()].filter((group) => group.reduce((s, r) => s + r.area, 0) >= minArea);
  }

  rareConfidence(name: RareName, group: Region[]): number {
    const composition = colourComposition(group, RARE_OBJECTS[name].colours);
    const minimum = this.reference.rares.minimumShares[name];
    if (composition.some((share, i) => share < minimum[i]!)) return 0;
    let best = Infinity;
    for (const reference of this.reference.rares.compositions[name]) {
      let distance = 0;
      for (let i = 0; i < reference.length; i++) distance += Math.abs(reference[i]! - composition[i]!);
      best = Math.min(best, distance);
    }
    return Math.exp(-best / 0.15);
  }
}

function bounds(regions: readonly Region[]): { x0: number; y0: number; x1: number; y1: number } {
  return {
    x0: Math.min(...regions.map((r) => r.x0)),
    y0: Math.min(...regions.map((r) => r.y0)),
    x1: Math.max(...regions.map((r) => r.x1)),
    y1: Math.max(...regions.map((r) => r.y1)),
  };
}

/** A rare object below this composition confidence is not taken as found. */
const RARE_MIN_CONFIDENCE = 0.2;
/** Weight of the requested box in choosing among same-coloured candidates. */
const BOX_WEIGHT = 2;

export interface SceneEvaluation {
  /** one per request, in request order */
  objects: ObjectEvaluation[];
  /** object-sized regions that no request took: objects nobody asked for, or fragments of one */
  unclaimedRegions: number;
}

/**
 * Evaluates every requested object of one image. Requests are matched to distinct regions; each request's
 * leakage is measured against the others.
 */
export function evaluateScene(image: RgbImage, requests: readonly ObjectRequest[], reference: Reference = worldReference()): ObjectEvaluation[] {
  return judgeScene(image, requests, reference).objects;
}

/** evaluateScene, plus what the image holds beyond the requests. */
export function judgeScene(image: RgbImage, requests: readonly ObjectRequest[], reference: Reference = worldReference()): SceneEvaluation {
  checkRgbImage(image);
  if (requests.length === 0) throw new EvaluatorError('nothing to evaluate: no requested objects');
  requests.forEach(checkRequest);
  const analysis = new SceneAnalysis(image, reference);
  const detections: (Detection | null)[] = requests.map(() => null);
  const used = new Set<number>();

  // rare objects first: their parts are ordinary colour regions that plain requests must not take
  requests.forEach((request, index) => {
    if (!isRareName(request.shape)) return;
    let best: { group: Region[]; score: number; confidence: number } | null = null;
    for (const group of analysis.rareGroups(request.shape)) {
      if (group.some((r) => used.has(r.id))) continue;
      const confidence = analysis.rareConfidence(request.shape, group);
      if (confidence < RARE_MIN_CONFIDENCE) continue;
      const box = request.box ? boxIou(request.box, analysis.normalisedBox(bounds(group))) : 0;
      const score = Math.log(confidence) + BOX_WEIGHT * box;
      if (!best || score > best.score) best = { group, score, confidence };
    }
    if (!best) return;
    for (const region of best.group) used.add(region.id);
    detections[index] = { regions: best.group, ...analysis.detectionBounds(best.group), reading: null, rareName: request.shape, rareConfidence: best.confidence };
  });

  // plain shapes: greedy one-to-one assignment by how well each region fits each request
  const pairs: { request: number; region: Region; score: number }[] = [];
  requests.forEach((request, index) => {
    if (isRareName(request.shape)) return;
    for (const region of analysis.candidates) {
      if (used.has(region.id) || COLOUR_NAMES[region.colour] !== request.colour) continue;
      const reading = analysis.read(region);
      const box = request.box ? boxIou(request.box, analysis.normalisedBox(region)) : 0;
      const score =
        Math.log(reading.shape.probabilities[request.shape as ShapeName]) + Math.log(reading.texture.probabilities[request.texture!]) + BOX_WEIGHT * box;
      pairs.push({ request: index, region, score });
    }
  });
  pairs.sort((a, b) => b.score - a.score);
  for (const pair of pairs) {
    if (detections[pair.request] || used.has(pair.region.id)) continue;
    used.add(pair.region.id);
    detections[pair.request] = { regions: [pair.region], ...analysis.detectionBounds([pair.region]), reading: analysis.read(pair.region), rareName: null, rareConfidence: 0 };
  }
  // a plain request with no region of its colour: with a box, report what fills the box instead
  requests.forEach((request, index) => {
    if (detections[index] || isRareName(request.shape) || !request.box) return;
    let best: Region | null = null;
    let bestIou = 0.1;
    for (const region of analysis.candidates) {
      if (used.has(region.id)) continue;
      const iou = boxIou(request.box, analysis.normalisedBox(region));
      if (iou > bestIou) {
        best = region;
        bestIou = iou;
      }
    }
    if (!best) return;
    used.add(best.id);
    detections[index] = { regions: [best], ...analysis.detectionBounds([best]), reading: analysis.read(best), rareName: null, rareConfidence: 0 };
  });

  return {
    objects: requests.map((_, index) => describe(analysis, requests, detections, index)),
    unclaimedRegions: analysis.candidates.filter((region) => !used.has(region.id)).length,
  };
}

/** Evaluates one requested object; `others` are the rest of the caption's objects (for leakage and matching). */
export function evaluateObject(
  image: RgbImage,
  request: ObjectRequest,
  others: readonly ObjectRequest[] = [],
  reference: Reference = worldReference(),
): ObjectEvaluation {
  return evaluateScene(image, [request, ...others], reference)[0]!;
}

function describe(analysis: SceneAnalysis, requests: readonly ObjectRequest[], detections: readonly (Detection | null)[], index: number): ObjectEvaluation {
  const request = requests[index]!;
  const detection = detections[index] ?? null;
  const leakage = measureLeakage(analysis, requests, detections, index);
  if (!detection) {
    return {
      request,
      found: false,
      box: null,
      iou: null,
      shape: { label: null, confidence: 0, correct: false },
      colour: { label: null, confidence: 0, correct: false },
      texture: { label: null, confidence: 0, correct: false },
      leakage,
    };
  }
  const box = analysis.normalisedBox(detection);
  const iou = request.box ? boxIou(request.box, box) : null;
  if (detection.rareName) {
    const confidence = detection.rareConfidence;
    return {
      request,
      found: true,
      box,
      iou,
      shape: { label: detection.rareName, confidence, correct: true },
      colour: { label: null, confidence, correct: true },
      texture: { label: null, confidence, correct: true },
      leakage,
    };
  }
  const reading = detection.reading!;
  const colour = COLOUR_NAMES[detection.regions[0]!.colour]!;
  return {
    request,
    found: true,
    box,
    iou,
    shape: { label: reading.shape.label, confidence: reading.shape.confidence, correct: reading.shape.label === request.shape },
    colour: { label: colour, confidence: reading.colourConfidence, correct: colour === request.colour },
    texture: { label: reading.texture.label, confidence: reading.texture.confidence, correct: reading.texture.label === request.texture },
    leakage,
  };
}

function measureLeakage(analysis: SceneAnalysis, requests: readonly ObjectRequest[], detections: readonly (Detection | null)[], index: number): Leakage {
  const { size, labels, regions, regionOf } = analysis.segmentation;
  const request = requests[index]!;
  const detection = detections[index] ?? null;
  const colours = new Set(requestColours(request).map((name) => COLOUR_NAMES.indexOf(name)));
  const boxSource = request.box ?? (detection ? analysis.normalisedBox(detection) : null);
  const inBox = (x: number, y: number) =>
    boxSource !== null && (x + 0.5) / size >= boxSource[0] && (x + 0.5) / size <= boxSource[2] && (y + 0.5) / size >= boxSource[1] && (y + 0.5) / size <= boxSource[3];

  // pixels that legitimately carry this colour: this object, and other requested objects sharing a colour
  const legitimate = new Set<number>();
  detections.forEach((other, j) => {
    if (!other) return;
    if (j === index || requestColours(requests[j]!).some((c) => colours.has(COLOUR_NAMES.indexOf(c)))) for (const r of other.regions) legitimate.add(r.id);
  });
  const stray = (pixel: number) => {
    const id = regionOf[pixel]! - 1;
    return id >= 0 && colours.has(labels[pixel]!) && !legitimate.has(id) && regions[id]!.area >= analysis.strayArea;
  };

  const ownArea = detection ? detection.regions.reduce((s, r) => s + r.area, 0) : 0;
  let strayOutside = 0;
  for (const region of regions) {
    if (!colours.has(region.colour) || legitimate.has(region.id) || region.area < analysis.strayArea) continue;
    for (const p of region.pixels) {
      const x = p % size;
      if (!inBox(x, (p - x) / size)) strayOutside++;
    }
  }
  const outsideBox = Math.min(1, strayOutside / Math.max(ownArea, minObjectArea(size)));

  let onOthers = 0;
  let textureOnOthers = 0;
  detections.forEach((other, j) => {
    if (!other || j === index) return;
    const otherRequest = requests[j]!;
    if (requestColours(otherRequest).some((c) => colours.has(COLOUR_NAMES.indexOf(c)))) return;
    for (const region of other.regions) {
      const geometry = analysis.read(region).geometry;
      const hull = rasterizeConvex(geometry.hull, geometry.width, geometry.height);
      let hullArea = 0;
      let painted = 0;
      for (let y = 0; y < geometry.height; y++) {
        for (let x = 0; x < geometry.width; x++) {
          if (!hull[y * geometry.width + x]) continue;
          const ix = geometry.left + x;
          const iy = geometry.top + y;
          if (ix < 0 || iy < 0 || ix >= size || iy >= size || inBox(ix, iy)) continue;
          hullArea++;
          if (stray(iy * size + ix)) painted++;
        }
      }
      if (hullArea > 0) onOthers = Math.max(onOthers, painted / hullArea);
    }
    if (!isRareName(request.shape) && request.texture !== 'plain' && other.reading && otherRequest.texture !== request.texture && !isRareName(otherRequest.shape)) {
      const seen = other.reading.texture;
      if (seen.label === request.texture) textureOnOthers = Math.max(textureOnOthers, seen.confidence);
    }
  });
  return { outsideBox, onOthers, textureOnOthers, score: Math.max(outsideBox, onOthers, textureOnOthers) };
}
