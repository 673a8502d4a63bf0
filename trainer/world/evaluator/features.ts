// Geometric and surface descriptors of one region, all invariant to position, scale and rotation.
// Shape: convexity (solidity), holes, the radial profile's harmonics (3-fold triangle, 4-fold square/cross/diamond,
// 5-fold star, 6-fold hexagon), its min/max ratio, fill of the circumscribed disc, elongation, the number and
// size of concavities (star 5, cross 4, heart and moon 1), how far the hull's centre is from the shape's, and
// the convex and concave corners of a polygon fitted to the outline (triangle 3, square 4, hexagon 6, star 5+5).
// Texture: lightness contrast, spread and bimodality of the shade along the region's colour line, roughness, fit of a linear ramp,
// orientation coherence (stripes) and the count and size of minority-shade blobs (dots, checks).
import { rgbToLab, shadeLineDistance } from '../colour.ts';
import type { Region } from './segmentation.ts';

export interface RegionGeometry {
  /** filled silhouette (holes filled) in a padded crop */
  width: number;
  height: number;
  /** crop origin in image pixels */
  left: number;
  top: number;
  mask: Uint8Array;
  filled: Uint8Array;
  /** convex hull of the filled silhouette, pixel corners, counter-clockwise */
  hull: [number, number][];
}

export function regionGeometry(region: Region, imageSize: number): RegionGeometry {
  const left = region.x0 - 1;
  const top = region.y0 - 1;
  const width = region.x1 - region.x0 + 3;
  const height = region.y1 - region.y0 + 3;
  const mask = new Uint8Array(width * height);
  for (const p of region.pixels) {
    const x = p % imageSize;
    const y = (p - x) / imageSize;
    mask[(y - top) * width + (x - left)] = 1;
  }
  // flood the outside from the padded border; whatever is neither mask nor outside is a hole
  const outside = new Uint8Array(width * height);
  const stack: number[] = [0];
  outside[0] = 1;
  while (stack.length > 0) {
    const i = stack.pop()!;
    const x = i % width;
    const y = (i - x) / width;
    const neighbours = [x > 0 ? i - 1 : -1, x < width - 1 ? i + 1 : -1, y > 0 ? i - width : -1, y < height - 1 ? i + width : -1];
    for (const j of neighbours) {
      if (j >= 0 && !outside[j] && !mask[j]) {
        outside[j] = 1;
        stack.push(j);
      }
    }
  }
  const filled = Uint8Array.from(outside, (o) => 1 - o);
  return { width, height, left, top, mask, filled, hull: convexHull(filled, width, height) };
}

/** Convex hull (Andrew's monotone chain) of the corners of the set pixels of a mask. */
function convexHull(mask: Uint8Array, width: number, height: number): [number, number][] {
  const points: [number, number][] = [];
  for (let y = 0; y < height; y++) {
    // only the leftmost and rightmost pixel of each row can carry hull corners
    let first = -1;
    let last = -1;
    for (let x = 0; x < width; x++) {
      if (mask[y * width + x]) {
        if (first < 0) first = x;
        last = x;
      }
    }
    if (first < 0) continue;
    points.push([first, y], [first, y + 1], [last + 1, y], [last + 1, y + 1]);
  }
  points.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const cross = (o: [number, number], a: [number, number], b: [number, number]) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const lower: [number, number][] = [];
  for (const p of points) {
    while (lower.length >= 2 && cross(lower[lower.length - 2]!, lower[lower.length - 1]!, p) <= 0) lower.pop();
    lower.push(p);
  }
  const upper: [number, number][] = [];
  for (let i = points.length - 1; i >= 0; i--) {
    const p = points[i]!;
    while (upper.length >= 2 && cross(upper[upper.length - 2]!, upper[upper.length - 1]!, p) <= 0) upper.pop();
    upper.push(p);
  }
  return [...lower.slice(0, -1), ...upper.slice(0, -1)];
}

function polygonArea(polygon: [number, number][]): number {
  let sum = 0;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) sum += polygon[j]![0] * polygon[i]![1] - polygon[i]![0] * polygon[j]![1];
  return Math.abs(sum) / 2;
}

/** Pixels whose centres lie inside a convex polygon given counter-clockwise or clockwise. */
export function rasterizeConvex(polygon: [number, number][], width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height);
  const n = polygon.length;
  let orientation = 0;
  for (let i = 0, j = n - 1; i < n; j = i++) orientation += polygon[j]![0] * polygon[i]![1] - polygon[i]![0] * polygon[j]![1];
  const sign = orientation >= 0 ? 1 : -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const px = x + 0.5;
      const py = y + 0.5;
      let inside = true;
      for (let i = 0, j = n - 1; i < n && inside; j = i++) {
        const a = polygon[j]!;
        const b = polygon[i]!;
        if (sign * ((b[0] - a[0]) * (py - a[1]) - (b[1] - a[1]) * (px - a[0])) < -1e-9) inside = false;
      }
      if (inside) out[y * width + x] = 1;
    }
  }
  return out;
}

/** Sizes of the 8-connected components of the set pixels of a mask. */
function componentSizes(mask: Uint8Array, width: number, height: number): number[] {
  const seen = new Uint8Array(mask.length);
  const sizes: number[] = [];
  const stack: number[] = [];
  for (let start = 0; start < mask.length; start++) {
    if (!mask[start] || seen[start]) continue;
    let size = 0;
    seen[start] = 1;
    stack.push(start);
    while (stack.length > 0) {
      const i = stack.pop()!;
      size++;
      const x = i % width;
      const y = (i - x) / width;
      for (let dy = -1; dy <= 1; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= height) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          if (xx < 0 || xx >= width) continue;
          const j = yy * width + xx;
          if (mask[j] && !seen[j]) {
            seen[j] = 1;
            stack.push(j);
          }
        }
      }
    }
    sizes.push(size);
  }
  return sizes;
}

/**
 * Outer boundary of a filled mask as a closed polygon through the midpoints of its pixel edges (which turns
 * staircases into straight diagonals), walked clockwise on screen with the region on the right-hand side.
 */
export function traceBoundary(mask: Uint8Array, width: number, height: number): [number, number][] {
  const filled = (x: number, y: number) => x >= 0 && y >= 0 && x < width && y < height && mask[y * width + x] === 1;
  let start = -1;
  for (let i = 0; i < mask.length && start < 0; i++) if (mask[i]) start = i;
  if (start < 0) return [];
  const sx = start % width;
  const sy = (start - sx) / width;
  const steps = [
    [1, 0],
    [0, 1],
    [-1, 0],
    [0, -1],
  ] as const;
  // pixels ahead-right and ahead-left of corner (x, y) when facing each direction
  const aheadRight = [
    [0, 0],
    [-1, 0],
    [-1, -1],
    [0, -1],
  ] as const;
  const aheadLeft = [
    [0, -1],
    [0, 0],
    [-1, 0],
    [-1, -1],
  ] as const;
  const polygon: [number, number][] = [];
  let x = sx;
  let y = sy;
  let direction = 0;
  const limit = 4 * (width + 1) * (height + 1);
  for (let step = 0; step < limit; step++) {
    const left = filled(x + aheadLeft[direction]![0], y + aheadLeft[direction]![1]);
    const right = filled(x + aheadRight[direction]![0], y + aheadRight[direction]![1]);
    direction = left ? (direction + 3) % 4 : right ? direction : (direction + 1) % 4;
    polygon.push([x + steps[direction]![0] / 2, y + steps[direction]![1] / 2]);
    x += steps[direction]![0];
    y += steps[direction]![1];
    // the start corner touches only one region pixel, so the walk passes it once
    if (x === sx && y === sy) break;
  }
  return polygon;
}

function pointSegmentDistance(p: [number, number], a: [number, number], b: [number, number]): number {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const lengthSquared = dx * dx + dy * dy;
  if (lengthSquared === 0) return Math.hypot(p[0] - a[0], p[1] - a[1]);
  const t = Math.max(0, Math.min(1, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / lengthSquared));
  return Math.hypot(p[0] - a[0] - t * dx, p[1] - a[1] - t * dy);
}

/** Douglas-Peucker simplification of an open chain; keeps both ends. */
function simplifyChain(points: [number, number][], tolerance: number): [number, number][] {
  if (points.length <= 2) return points;
  const first = points[0]!;
  const last = points[points.length - 1]!;
  let farthest = 0;
  let index = 0;
  for (let i = 1; i < points.length - 1; i++) {
    const distance = pointSegmentDistance(points[i]!, first, last);
    if (distance > farthest) {
      farthest = distance;
      index = i;
    }
  }
  if (farthest <= tolerance) return [first, last];
  return [...simplifyChain(points.slice(0, index + 1), tolerance).slice(0, -1), ...simplifyChain(points.slice(index), tolerance)];
}

/** Convex and concave corners of the polygon fitted to a closed boundary within `tolerance` pixels. */
export function polygonCorners(boundary: [number, number][], tolerance: number): { convex: number; concave: number } {
  if (boundary.length < 3) return { convex: 0, concave: 0 };
  // split the loop at the vertex farthest from the first one, simplify both halves
  const origin = boundary[0]!;
  let far = 0;
  let farDistance = -1;
  boundary.forEach((p, i) => {
    const distance = Math.hypot(p[0] - origin[0], p[1] - origin[1]);
    if (distance > farDistance) {
      farDistance = distance;
      far = i;
    }
  });
  const polygon = [
    ...simplifyChain(boundary.slice(0, far + 1), tolerance).slice(0, -1),
    ...simplifyChain([...boundary.slice(far), origin], tolerance).slice(0, -1),
  ];
  let convex = 0;
  let concave = 0;
  const n = polygon.length;
  for (let i = 0; i < n; i++) {
    const a = polygon[(i + n - 1) % n]!;
    const b = polygon[i]!;
    const c = polygon[(i + 1) % n]!;
    // the boundary runs clockwise on screen (y down), so a convex corner turns right: positive cross product
    const cross = (b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0]);
    if (cross > 0) convex++;
    else if (cross < 0) concave++;
  }
  return { convex, concave };
}

const PROFILE_BINS = 64;

export function shapeFeatures(geometry: RegionGeometry): number[] {
  const { width, height, mask, filled, hull } = geometry;
  let area = 0;
  let filledArea = 0;
  let sx = 0;
  let sy = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      area += mask[i]!;
      if (!filled[i]) continue;
      filledArea++;
      sx += x + 0.5;
      sy += y + 0.5;
    }
  }
  const cx = sx / filledArea;
  const cy = sy / filledArea;
  let cxx = 0;
  let cyy = 0;
  let cxy = 0;
  const profile = new Float64Array(PROFILE_BINS);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (!filled[y * width + x]) continue;
      const dx = x + 0.5 - cx;
      const dy = y + 0.5 - cy;
      cxx += dx * dx;
      cyy += dy * dy;
      cxy += dx * dy;
      const bin = Math.min(PROFILE_BINS - 1, Math.floor(((Math.atan2(dy, dx) + Math.PI) / (2 * Math.PI)) * PROFILE_BINS));
      const distance = Math.hypot(dx, dy) + 0.5;
      if (distance > profile[bin]!) profile[bin] = distance;
    }
  }
  // the smallest shapes leave some bins without a pixel centre; borrow the neighbours' mean
  for (let b = 0; b < PROFILE_BINS; b++) {
    if (profile[b] === 0) profile[b] = (profile[(b + PROFILE_BINS - 1) % PROFILE_BINS]! + profile[(b + 1) % PROFILE_BINS]!) / 2;
  }
  let profileSum = 0;
  let maxRadius = 0;
  for (const r of profile) {
    profileSum += r;
    if (r > maxRadius) maxRadius = r;
  }
  const harmonic = (k: number) => {
    let re = 0;
    let im = 0;
    for (let b = 0; b < PROFILE_BINS; b++) {
      const angle = (2 * Math.PI * k * (b + 0.5)) / PROFILE_BINS;
      re += profile[b]! * Math.cos(angle);
      im += profile[b]! * Math.sin(angle);
    }
    return Math.hypot(re, im) / profileSum;
  };
  let minSmoothed = Infinity;
  let maxSmoothed = 0;
  for (let b = 0; b < PROFILE_BINS; b++) {
    const r = (profile[(b + PROFILE_BINS - 1) % PROFILE_BINS]! + profile[b]! + profile[(b + 1) % PROFILE_BINS]!) / 3;
    minSmoothed = Math.min(minSmoothed, r);
    maxSmoothed = Math.max(maxSmoothed, r);
  }
  const trace = cxx + cyy;
  const determinantTerm = Math.sqrt(Math.max(0, (cxx - cyy) ** 2 + 4 * cxy * cxy));
  const elongation = Math.sqrt(Math.max(0, (trace - determinantTerm) / (trace + determinantTerm)));

  const hullArea = polygonArea(hull);
  const hullRaster = rasterizeConvex(hull, width, height);
  const deficiency = new Uint8Array(width * height);
  let hx = 0;
  let hy = 0;
  let hullCount = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      if (!hullRaster[i]) continue;
      hullCount++;
      hx += x + 0.5;
      hy += y + 0.5;
      if (!filled[i]) deficiency[i] = 1;
    }
  }
  const concavitySizes = componentSizes(deficiency, width, height).filter((size) => size >= Math.max(3, 0.012 * hullArea));
  const holeSizes = componentSizes(
    Uint8Array.from(filled, (f, i) => (f && !mask[i] ? 1 : 0)),
    width,
    height,
  ).filter((size) => size >= Math.max(3, 0.04 * filledArea));
  const meanRadius = profileSum / PROFILE_BINS;
  const corners = polygonCorners(traceBoundary(filled, width, height), Math.max(0.8, 0.08 * meanRadius));
  return [
    filledArea / hullArea,
    (filledArea - area) / filledArea,
    Math.min(holeSizes.length, 2) / 2,
    harmonic(2),
    harmonic(3),
    harmonic(4),
    harmonic(5),
    harmonic(6),
    minSmoothed / maxSmoothed,
    filledArea / (Math.PI * maxRadius * maxRadius),
    elongation,
    Math.min(concavitySizes.length, 6) / 6,
    concavitySizes.length > 0 ? Math.max(...concavitySizes) / hullArea : 0,
    hullCount > 0 ? Math.hypot(hx / hullCount - cx, hy / hullCount - cy) / meanRadius : 0,
    Math.min(corners.convex, 14) / 14,
    Math.min(corners.concave, 8) / 8,
  ];
}

function quantile(sorted: Float64Array, q: number): number {
  const position = (sorted.length - 1) * q;
  const low = Math.floor(position);
  const high = Math.min(sorted.length - 1, low + 1);
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (position - low);
}

/**
 * Texture descriptors of a region from the analysed RGB image: the shade of each interior pixel is its position
 * along the region colour's shade line (0 primary .. 1 secondary).
 */
export function textureFeatures(region: Region, geometry: RegionGeometry, rgb: Uint8Array, imageSize: number): number[] {
  const { width, height, left, top, mask } = geometry;
  // interior: the region eroded by one pixel, away from edges blended with the background
  const interior = new Uint8Array(width * height);
  let interiorCount = 0;
  for (let y = 1; y < height - 1; y++) {
    for (let x = 1; x < width - 1; x++) {
      const i = y * width + x;
      if (mask[i] && mask[i - 1] && mask[i + 1] && mask[i - width] && mask[i + width]) {
        interior[i] = 1;
        interiorCount++;
      }
    }
  }
  const use = interiorCount >= 12 ? interior : mask;
  const shade = new Float64Array(width * height).fill(NaN);
  const values: number[] = [];
  const lightness: number[] = [];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      if (!use[i]) continue;
      const o = ((top + y) * imageSize + left + x) * 3;
      const lab = rgbToLab(rgb[o]!, rgb[o + 1]!, rgb[o + 2]!);
      const t = shadeLineDistance(region.colour, lab).position;
      shade[i] = t;
      values.push(t);
      lightness.push(lab[0]);
    }
  }
  const sorted = Float64Array.from(values).sort();
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  const spread = Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / values.length);
  const low = quantile(sorted, 0.1);
  const high = quantile(sorted, 0.9);
  const contrast = high - low;
  const middle = (low + high) / 2;
  const minorityIsHigh = values.filter((v) => v > middle).length <= values.length / 2;
  const minority = new Uint8Array(width * height);
  let minorityCount = 0;
  let roughSum = 0;
  let roughCount = 0;
  let gxx = 0;
  let gyy = 0;
  let gxy = 0;
  // least-squares plane t = a + b x + c y through the shades
  let n = 0;
  let mx = 0;
  let my = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const t = shade[y * width + x]!;
      if (Number.isNaN(t)) continue;
      n++;
      mx += x;
      my += y;
    }
  }
  mx /= n;
  my /= n;
  let sxx = 0;
  let syy = 0;
  let sxy = 0;
  let sxt = 0;
  let syt = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      const t = shade[i]!;
      if (Number.isNaN(t)) continue;
      if (minorityIsHigh ? t > middle : t <= middle) {
        minority[i] = 1;
        minorityCount++;
      }
      const dx = x - mx;
      const dy = y - my;
      sxx += dx * dx;
      syy += dy * dy;
      sxy += dx * dy;
      sxt += dx * (t - mean);
      syt += dy * (t - mean);
      const right = x + 1 < width ? shade[i + 1]! : NaN;
      const below = y + 1 < height ? shade[i + width]! : NaN;
      if (!Number.isNaN(right)) {
        roughSum += Math.abs(right - t);
        roughCount++;
      }
      if (!Number.isNaN(below)) {
        roughSum += Math.abs(below - t);
        roughCount++;
      }
      if (!Number.isNaN(right) && !Number.isNaN(below)) {
        const gx = right - t;
        const gy = below - t;
        gxx += gx * gx;
        gyy += gy * gy;
        gxy += gx * gy;
      }
    }
  }
  const determinant = sxx * syy - sxy * sxy;
  let rampFit = 0;
  const totalVariance = spread * spread * values.length;
  if (determinant > 1e-9 && totalVariance > 1e-9) {
    const b = (sxt * syy - syt * sxy) / determinant;
    const c = (syt * sxx - sxt * sxy) / determinant;
    rampFit = Math.min(1, (b * sxt + c * syt) / totalVariance);
  }
  const tensorTrace = gxx + gyy;
  const coherence = tensorTrace > 1e-9 ? Math.sqrt((gxx - gyy) ** 2 + 4 * gxy * gxy) / tensorTrace : 0;
  const blobSizes = componentSizes(minority, width, height).filter((size) => size >= 2);
  const meanBlob = blobSizes.length > 0 ? blobSizes.reduce((s, v) => s + v, 0) / blobSizes.length : 0;
  const sortedLightness = Float64Array.from(lightness).sort();
  return [
    // in Lab lightness units, scaled to about 0..1: a plain object stays low however noisy its shade positions
    (quantile(sortedLightness, 0.9) - quantile(sortedLightness, 0.1)) / 30,
    spread,
    contrast,
    minorityCount / values.length,
    roughCount > 0 ? roughSum / roughCount / (contrast + 0.05) : 0,
    rampFit,
    coherence,
    Math.log1p(blobSizes.length),
    meanBlob / values.length,
  ];
}
