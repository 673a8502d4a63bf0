// Mask refinement by clustering (reference `_build_self_masks`, `_cluster_self_maps`, `_obtain_cross_masks`,
// `_fix_zero_masks`): from the running means of the self-attention maps and of the subjects' leading-token
// cross-attention maps, cluster pixels by their self-attention rows, give each cluster to the subject whose soft
// cross-attention map covers it best, and fall back to a subject's box when its mask comes out empty.
import { Generator } from '../util/random.ts';

const EPSILON = 1e-5;

export interface KMeansOptions {
  clusters: number;
  /** random restarts; the best by inertia wins */
  inits: number;
  maxIterations: number;
  /** stop when the mean centre shift (Euclidean) falls below this */
  tolerance: number;
  seed: number;
}

export interface KMeansResult {
  /** cluster of each point */
  labels: Int32Array;
  /** [clusters, dim] */
  centers: Float32Array;
  /** sum of squared distances to the assigned centres */
  inertia: number;
}

function assign(points: Float32Array, n: number, dim: number, centers: Float64Array, k: number, labels: Int32Array): number {
  let inertia = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bestDistance = Infinity;
    const offset = i * dim;
    for (let c = 0; c < k; c++) {
      let distance = 0;
      const centerOffset = c * dim;
      for (let d = 0; d < dim; d++) {
        const diff = points[offset + d]! - centers[centerOffset + d]!;
        distance += diff * diff;
      }
      if (distance < bestDistance) {
        bestDistance = distance;
        best = c;
      }
    }
    labels[i] = best;
    inertia += bestDistance;
  }
  return inertia;
}

function lloyd(points: Float32Array, n: number, dim: number, start: Float64Array, options: KMeansOptions): KMeansResult {
  const k = options.clusters;
  let centers = start;
  const labels = new Int32Array(n);
  for (let iteration = 0; iteration < options.maxIterations; iteration++) {
    assign(points, n, dim, centers, k, labels);
    const sums = new Float64Array(k * dim);
    const counts = new Int32Array(k);
    for (let i = 0; i < n; i++) {
      const c = labels[i]!;
      counts[c]!++;
      for (let d = 0; d < dim; d++) sums[c * dim + d]! += points[i * dim + d]!;
    }
    let shift = 0;
    for (let c = 0; c < k; c++) {
      let squared = 0;
      for (let d = 0; d < dim; d++) {
        // An empty cluster keeps its centre.
        const value = counts[c]! > 0 ? sums[c * dim + d]! / counts[c]! : centers[c * dim + d]!;
        const diff = value - centers[c * dim + d]!;
        squared += diff * diff;
        sums[c * dim + d] = value;
      }
      shift += Math.sqrt(squared);
    }
    centers = sums;
    if (shift / k < options.tolerance) break;
  }
  const inertia = assign(points, n, dim, centers, k, labels);
  return { labels, centers: Float32Array.from(centers), inertia };
}

/**
 * Lloyd's k-means on n points of `dim` values (row-major), Euclidean. Without `initialCenters`, `inits` restarts from
 * k distinct random points drawn from a generator seeded with `seed`; with them, one run warm-started there.
 */
export function kmeans(points: Float32Array, n: number, dim: number, options: KMeansOptions, initialCenters?: Float32Array): KMeansResult {
  const k = options.clusters;
  if (points.length !== n * dim) throw new Error(`k-means: ${points.length} values for ${n} points of ${dim}`);
  if (!Number.isInteger(k) || k < 2 || k >= n) throw new Error(`k-means needs 2 ≤ clusters < points, got ${k} clusters for ${n} points`);
  if (initialCenters) {
    if (initialCenters.length !== k * dim) throw new Error(`k-means: ${initialCenters.length} initial centre values for ${k}x${dim}`);
    return lloyd(points, n, dim, Float64Array.from(initialCenters), options);
  }
  if (!Number.isInteger(options.inits) || options.inits < 1) throw new Error(`k-means needs at least one init, got ${options.inits}`);
  const generator = new Generator(options.seed);
  let best: KMeansResult | null = null;
  for (let init = 0; init < options.inits; init++) {
    const indices = Array.from({ length: n }, (_, i) => i);
    const start = new Float64Array(k * dim);
    for (let c = 0; c < k; c++) {
      const pick = c + generator.randint(n - c);
      [indices[c], indices[pick]] = [indices[pick]!, indices[c]!];
      for (let d = 0; d < dim; d++) start[c * dim + d] = points[indices[c]! * dim + d]!;
    }
    const result = lloyd(points, n, dim, start, options);
    if (!best || result.inertia < best.inertia) best = result;
  }
  return best!;
}

/** Self-attention map [n queries, n keys] with each key column divided by its maximum over queries. */
export function normalizeSelfMap(selfMap: Float32Array, n: number): Float32Array {
  if (selfMap.length !== n * n) throw new Error(`self map has ${selfMap.length} values for ${n}x${n}`);
  const max = new Float32Array(n).fill(-Infinity);
  for (let q = 0; q < n; q++) for (let k = 0; k < n; k++) max[k] = Math.max(max[k]!, selfMap[q * n + k]!);
  const out = new Float32Array(n * n);
  for (let q = 0; q < n; q++) for (let k = 0; k < n; k++) out[q * n + k] = selfMap[q * n + k]! / (max[k]! + EPSILON);
  return out;
}

/**
 * Soft subject maps [S][n] from the mean leading-token cross-attention [n, S]: divide by the max over pixels,
 * sigmoid(10·(x − threshold)), min-max normalise over pixels, then keep only each subject's current mask.
 */
export function softSubjectMaps(crossMap: Float32Array, n: number, current: readonly Uint8Array[], threshold: number): Float32Array[] {
  const count = current.length;
  if (crossMap.length !== n * count) throw new Error(`cross map has ${crossMap.length} values for ${n} pixels x ${count} subjects`);
  return current.map((mask, s) => {
    let max = -Infinity;
    for (let q = 0; q < n; q++) max = Math.max(max, crossMap[q * count + s]!);
    const soft = new Float32Array(n);
    for (let q = 0; q < n; q++) soft[q] = 1 / (1 + Math.exp(-10 * (crossMap[q * count + s]! / (max + EPSILON) - threshold)));
    let low = Infinity;
    let high = -Infinity;
    for (const v of soft) {
      low = Math.min(low, v);
      high = Math.max(high, v);
    }
    for (let q = 0; q < n; q++) soft[q] = ((soft[q]! - low) / (high - low + EPSILON)) * mask[q]!;
    return soft;
  });
}

export interface ClusterAssignment {
  /** subject each cluster goes to */
  subjectOfCluster: Int32Array;
  /** that subject's score for the cluster */
  scoreOfCluster: Float32Array;
  masks: Uint8Array[];
}

/**
 * score(s, k) = Σ soft_s over cluster k / min(Σ soft_s, |k|); each cluster goes to its best subject, and its pixels
 * join that subject's mask when the score reaches `threshold` (otherwise they become background). A zero
 * denominator scores 0.
 */
export function assignClusters(labels: Int32Array, clusters: number, soft: readonly Float32Array[], threshold: number): ClusterAssignment {
  const n = labels.length;
  const clusterArea = new Float64Array(clusters);
  for (const label of labels) clusterArea[label]!++;
  const subjectOfCluster = new Int32Array(clusters);
  const scoreOfCluster = new Float32Array(clusters).fill(-Infinity);
  soft.forEach((map, s) => {
    const intersection = new Float64Array(clusters);
    let area = 0;
    for (let q = 0; q < n; q++) {
      intersection[labels[q]!]! += map[q]!;
      area += map[q]!;
    }
    for (let c = 0; c < clusters; c++) {
      const denominator = Math.min(area, clusterArea[c]!);
      const score = denominator > 0 ? intersection[c]! / denominator : 0;
      if (score > scoreOfCluster[c]!) {
        scoreOfCluster[c] = score;
        subjectOfCluster[c] = s;
      }
    }
  });
  const masks = soft.map((_, s) => {
    const mask = new Uint8Array(n);
    for (let q = 0; q < n; q++) {
      const c = labels[q]!;
      if (subjectOfCluster[c] === s && scoreOfCluster[c]! >= threshold) mask[q] = 1;
    }
    return mask;
  });
  return { subjectOfCluster, scoreOfCluster, masks };
}

/** An empty subject mask becomes its box, and that box is cut out of the other masks (in subject order). */
export function fixEmptyMasks(masks: readonly Uint8Array[], boxes: readonly Uint8Array[]): { masks: Uint8Array[]; fixed: number[] } {
  const out = masks.map((m) => m.slice());
  const fixed: number[] = [];
  out.forEach((mask, j) => {
    if (mask.some((v) => v !== 0)) return;
    fixed.push(j);
    const box = boxes[j]!;
    out.forEach((other, k) => {
      if (k === j) other.set(box);
      else for (let q = 0; q < other.length; q++) if (box[q]) other[q] = 0;
    });
  });
  return { masks: out, fixed };
}

export interface RefineOptions {
  clustersPerSubject: number;
  /** minimum cluster score for a cluster to join a subject (self_mask_threshold) */
  selfMaskThreshold: number;
  /** the sigmoid's centre on the max-normalised cross maps (cross_mask_threshold) */
  crossMaskThreshold: number;
  kmeans: Omit<KMeansOptions, 'clusters'>;
}

export interface RefineInput {
  /** running mean of head-averaged self-attention [n, n] on the map grid */
  selfMap: Float32Array;
  /** running mean of head-averaged cross-attention of each subject's leading token [n, S] */
  crossMap: Float32Array;
  /** pixels on the map grid */
  n: number;
  /** the masks in use (boxes at the first refinement, the previous refined masks after) */
  current: readonly Uint8Array[];
  /** the boxes on the map grid */
  boxes: readonly Uint8Array[];
  /** centres of the previous refinement of this sample: warm start, a single run */
  centers?: Float32Array;
}

export interface RefineResult {
  masks: Uint8Array[];
  centers: Float32Array;
  labels: Int32Array;
  /** subjects whose mask came out empty and fell back to their box */
  fellBack: number[];
}

export function refineMasks(input: RefineInput, options: RefineOptions): RefineResult {
  const { n } = input;
  const clusters = options.clustersPerSubject * input.current.length;
  const normalized = normalizeSelfMap(input.selfMap, n);
  const { labels, centers } = kmeans(normalized, n, n, { ...options.kmeans, clusters }, input.centers);
  const soft = softSubjectMaps(input.crossMap, n, input.current, options.crossMaskThreshold);
  const { masks } = assignClusters(labels, clusters, soft, options.selfMaskThreshold);
  const fixed = fixEmptyMasks(masks, input.boxes);
  return { masks: fixed.masks, centers, labels, fellBack: fixed.fixed };
}
