// The evaluator's reference set: descriptors of objects in seeded renders of the world (a seed range no benchmark
// or test uses), labelled by the renderer's ground truth. Shapes and textures are classified by distance-weighted
// nearest neighbours among these references in standardised feature space; rare objects by the nearest colour
// composition. Built once per process, deterministically, in a few seconds.
import { degradeImage, generationLikeDegradation, randomDegradation } from '../degrade.ts';
import { COLOUR_NAMES, RARE_NAMES, SHAPE_NAMES, TEXTURE_NAMES, type RareName, type ShapeName, type TextureName } from '../definitions.ts';
import { Rng } from '../random.ts';
import { renderScene } from '../render.ts';
import { sampleScene } from '../sampler.ts';
import { isRareObject, objectColours, type Scene } from '../scene.ts';
import { regionGeometry, shapeFeatures, textureFeatures } from './features.ts';
import { minStrayArea, objectRegions, segment, type Region, type Segmentation } from './segmentation.ts';

/** Seeds of reference scenes start here; tests and benchmarks draw far below it. */
export const REFERENCE_SEED_BASE = 2_000_000_000;
/** the generation-like copy of a reference scene draws its degradation apart from the degraded copy's */
const GENERATION_LIKE_SEED_OFFSET = 0x6e6c;
const REFERENCE_SCENES_64 = 260;
const REFERENCE_SCENES_128 = 100;
const NEIGHBOURS = 7;

export interface Classification<T extends string> {
  label: T;
  confidence: number;
  /** probability of every label */
  probabilities: Record<T, number>;
}

class NearestNeighbours<T extends string> {
  private readonly mean: Float64Array;
  private readonly scale: Float64Array;
  private readonly points: Float64Array[];

  constructor(
    private readonly labels: readonly T[],
    features: number[][],
    private readonly sampleLabels: T[],
  ) {
    if (features.length === 0) throw new Error('nearest neighbours need at least one reference');
    const dims = features[0]!.length;
    this.mean = new Float64Array(dims);
    this.scale = new Float64Array(dims);
    for (const f of features) for (let d = 0; d < dims; d++) this.mean[d]! += f[d]! / features.length;
    for (const f of features) for (let d = 0; d < dims; d++) this.scale[d]! += (f[d]! - this.mean[d]!) ** 2 / features.length;
    for (let d = 0; d < dims; d++) this.scale[d] = 1 / Math.max(1e-3, Math.sqrt(this.scale[d]!));
    this.points = features.map((f) => this.standardise(f));
  }

  private standardise(f: number[]): Float64Array {
    return Float64Array.from(f, (v, d) => (v - this.mean[d]!) * this.scale[d]!);
  }

  classify(features: number[]): Classification<T> {
    const query = this.standardise(features);
    const nearest: { distance: number; label: T }[] = [];
    this.points.forEach((point, index) => {
      let distance = 0;
      for (let d = 0; d < point.length; d++) distance += (point[d]! - query[d]!) ** 2;
      distance = Math.sqrt(distance);
      if (nearest.length < NEIGHBOURS || distance < nearest[nearest.length - 1]!.distance) {
        nearest.push({ distance, label: this.sampleLabels[index]! });
        nearest.sort((a, b) => a.distance - b.distance);
        if (nearest.length > NEIGHBOURS) nearest.pop();
      }
    });
    const votes = Object.fromEntries(this.labels.map((label) => [label, 0])) as Record<T, number>;
    let total = 0;
    for (const { distance, label } of nearest) {
      const weight = 1 / (distance + 0.25);
      votes[label] += weight;
      total += weight;
    }
    // a small floor keeps every label possible, so log-probabilities stay finite when matching requests
    const floor = 0.01;
    const probabilities = Object.fromEntries(
      this.labels.map((label) => [label, (votes[label] / total + floor) / (1 + floor * this.labels.length)]),
    ) as Record<T, number>;
    let best = this.labels[0]!;
    for (const label of this.labels) if (probabilities[label] > probabilities[best]) best = label;
    return { label: best, confidence: probabilities[best], probabilities };
  }
}

export interface RareReference {
  /** per rare object: colour compositions (share of each of its colours) seen in reference renders */
  compositions: Record<RareName, number[][]>;
  /**
   * per rare object and colour: the least share a recognised object must show, half the share that 95% of the
   * references reach (0 for a colour that more than 5% of them lack), so a pink blob is no plimset without its black
   */
  minimumShares: Record<RareName, number[]>;
}

function minimumShares(compositions: number[][]): number[] {
  return compositions[0]!.map((_, colour) => {
    const shares = compositions.map((composition) => composition[colour]!).sort((a, b) => a - b);
    return 0.5 * shares[Math.floor(0.05 * shares.length)]!;
  });
}

export interface Reference {
  shapes: NearestNeighbours<ShapeName>;
  textures: NearestNeighbours<TextureName>;
  rares: RareReference;
}

/** For a region at analysis size, the ground-truth object covering most of it (index), or -1. */
function groundTruthOwner(region: Region, segmentation: Segmentation, masks: Uint8Array[], renderSize: number): { owner: number; share: number } {
  const counts = new Array(masks.length).fill(0);
  const { size } = segmentation;
  for (const p of region.pixels) {
    const x = p % size;
    const y = (p - x) / size;
    const q = Math.floor((y * renderSize) / size) * renderSize + Math.floor((x * renderSize) / size);
    masks.forEach((mask, index) => {
      if (mask[q]) counts[index]++;
    });
  }
  let owner = -1;
  let best = 0;
  counts.forEach((count, index) => {
    if (count > best) {
      best = count;
      owner = index;
    }
  });
  return { owner, share: best / region.area };
}

/** Share of each of `colours` among the pixels of `regions` (in the order of `colours`). */
export function colourComposition(regions: readonly Region[], colours: readonly string[]): number[] {
  const areas = colours.map((name) => regions.filter((r) => COLOUR_NAMES[r.colour] === name).reduce((s, r) => s + r.area, 0));
  const total = areas.reduce((s, a) => s + a, 0);
  return areas.map((a) => (total > 0 ? a / total : 0));
}

interface ReferenceRows {
  shapeFeatures: number[][];
  shapeLabels: ShapeName[];
  textureFeatures: number[][];
  textureLabels: TextureName[];
  compositions: Record<RareName, number[][]>;
}

/** Adds the descriptors of every object of a rendered scene that the segmentation recovered. */
function collect(rows: ReferenceRows, scene: Scene, masks: Uint8Array[], renderSize: number, segmentation: Segmentation): void {
  const owners = segmentation.regions
    .filter((region) => !region.background && region.area >= minStrayArea(segmentation.size))
    .map((region) => ({ region, ...groundTruthOwner(region, segmentation, masks, renderSize) }));
  const candidates = new Set(objectRegions(segmentation));
  scene.objects.forEach((object, index) => {
    const mine = owners.filter((o) => o.owner === index && o.share >= 0.6);
    if (isRareObject(object)) {
      if (mine.length > 0) rows.compositions[object.shape as RareName].push(colourComposition(mine.map((o) => o.region), objectColours(object)));
      return;
    }
    const own = mine.filter((o) => COLOUR_NAMES[o.region.colour] === object.colour && candidates.has(o.region));
    if (own.length === 0) return;
    const { region } = own.reduce((a, b) => (b.region.area > a.region.area ? b : a));
    const geometry = regionGeometry(region, segmentation.size);
    rows.shapeFeatures.push(shapeFeatures(geometry));
    rows.shapeLabels.push(object.shape as ShapeName);
    rows.textureFeatures.push(textureFeatures(region, geometry, segmentation.rgb, segmentation.size));
    rows.textureLabels.push(object.texture!);
  });
}

function buildReference(): Reference {
  const rows: ReferenceRows = {
    shapeFeatures: [],
    shapeLabels: [],
    textureFeatures: [],
    textureLabels: [],
    compositions: Object.fromEntries(RARE_NAMES.map((name) => [name, [] as number[][]])) as Record<RareName, number[][]>,
  };
  const jobs = [
    ...Array.from({ length: REFERENCE_SCENES_64 }, (_, i) => ({ seed: REFERENCE_SEED_BASE + i, size: 64 })),
    ...Array.from({ length: REFERENCE_SCENES_128 }, (_, i) => ({ seed: REFERENCE_SEED_BASE + 100_000 + i, size: 128 })),
  ];
  for (const { seed, size } of jobs) {
    // rare objects are drawn more often here than in training scenes, so each has enough references
    const scene = sampleScene(seed, { rareProbability: 0.2 });
    const rendered = renderScene(scene, size);
    const clean = { width: size, height: size, data: rendered.image };
    // every scene is kept three times: as rendered, degraded, and as a model might draw it, so imperfect images are
    // read right too
    const degraded = degradeImage(clean, randomDegradation(new Rng(seed)), seed);
    const drawn = degradeImage(clean, generationLikeDegradation(new Rng(seed + GENERATION_LIKE_SEED_OFFSET)), seed + GENERATION_LIKE_SEED_OFFSET);
    for (const image of [clean, degraded, drawn]) collect(rows, scene, rendered.masks, size, segment(image));
  }
  for (const name of RARE_NAMES) {
    if (rows.compositions[name].length === 0) throw new Error(`internal error: no reference render of the rare object '${name}'`);
  }
  return {
    shapes: new NearestNeighbours(SHAPE_NAMES, rows.shapeFeatures, rows.shapeLabels),
    textures: new NearestNeighbours(TEXTURE_NAMES, rows.textureFeatures, rows.textureLabels),
    rares: {
      compositions: rows.compositions,
      minimumShares: Object.fromEntries(RARE_NAMES.map((name) => [name, minimumShares(rows.compositions[name])])) as Record<RareName, number[]>,
    },
  };
}

let cached: Reference | null = null;

/** The reference set, built on first use. */
export function worldReference(): Reference {
  cached ??= buildReference();
  return cached;
}
