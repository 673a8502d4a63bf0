// Boxes and subject masks on attention grids. A box is normalised (x0, y0, x1, y1) with the origin at the top left;
// on an h×w grid it covers rows round(y0·h) … round(y1·h)−1 and columns round(x0·w) … round(x1·w)−1, with Python's
// round (half to even), as the reference's `_convert_boxes_to_masks`. Grids are flattened row-major, like the query
// axis of the UNet's attention.

export type Box = readonly [number, number, number, number];

/** One grid's subject masks (1 = in the subject's region) and the background (pixels in no region). */
export interface RegionSet {
  height: number;
  width: number;
  subjects: Uint8Array[];
  background: Uint8Array;
}

/** Python 3's round(): to the nearest integer, exact halves to the even neighbour. */
export function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const fraction = x - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

export function validateBox(box: readonly number[], what = 'box'): Box {
  if (box.length !== 4 || box.some((v) => typeof v !== 'number' || !Number.isFinite(v))) {
    throw new Error(`${what} must be four numbers x0,y0,x1,y1, got ${JSON.stringify(box)}`);
  }
  const [x0, y0, x1, y1] = box as [number, number, number, number];
  if (box.some((v) => v < 0 || v > 1)) throw new Error(`${what} ${box.join(',')} must lie in [0, 1] (normalised, origin top left)`);
  if (!(x1 > x0 && y1 > y0)) throw new Error(`${what} ${box.join(',')} needs x0 < x1 and y0 < y1`);
  return [x0, y0, x1, y1];
}

/** The half-open row and column ranges a box covers on an h×w grid. */
export function boxSpan(box: Box, height: number, width: number): { rows: [number, number]; cols: [number, number] } {
  return {
    rows: [roundHalfEven(box[1] * height), roundHalfEven(box[3] * height)],
    cols: [roundHalfEven(box[0] * width), roundHalfEven(box[2] * width)],
  };
}

export function boxMask(box: Box, height: number, width: number): Uint8Array {
  const mask = new Uint8Array(height * width);
  const { rows, cols } = boxSpan(box, height, width);
  for (let r = rows[0]; r < rows[1]; r++) mask.fill(1, r * width + cols[0], r * width + Math.max(cols[0], cols[1]));
  return mask;
}

export function backgroundOf(subjects: readonly Uint8Array[], size: number): Uint8Array {
  const background = new Uint8Array(size).fill(1);
  for (const mask of subjects) for (let i = 0; i < size; i++) if (mask[i]) background[i] = 0;
  return background;
}

export function boxRegions(boxes: readonly Box[], height: number, width: number): RegionSet {
  const subjects = boxes.map((box) => boxMask(box, height, width));
  return { height, width, subjects, background: backgroundOf(subjects, height * width) };
}

/** torch's nearest-exact resize of a mask: source index floor((i + 0.5)·in/out), clamped. */
export function resizeMaskNearestExact(mask: Uint8Array, height: number, width: number, outHeight: number, outWidth: number): Uint8Array {
  if (mask.length !== height * width) throw new Error(`mask has ${mask.length} pixels, expected ${height}x${width}`);
  if (height === outHeight && width === outWidth) return mask.slice();
  const out = new Uint8Array(outHeight * outWidth);
  const sourceIndex = (i: number, from: number, to: number) => Math.min(Math.floor((i + 0.5) * (from / to)), from - 1);
  for (let r = 0; r < outHeight; r++) {
    const sr = sourceIndex(r, height, outHeight);
    for (let c = 0; c < outWidth; c++) out[r * outWidth + c] = mask[sr * width + sourceIndex(c, width, outWidth)]!;
  }
  return out;
}

export function resizeRegions(masks: readonly Uint8Array[], height: number, width: number, outHeight: number, outWidth: number): RegionSet {
  const subjects = masks.map((m) => resizeMaskNearestExact(m, height, width, outHeight, outWidth));
  return { height: outHeight, width: outWidth, subjects, background: backgroundOf(subjects, outHeight * outWidth) };
}
