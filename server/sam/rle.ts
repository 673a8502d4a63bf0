// COCO run-length encoding (the format of pycocotools and of SAM's automatic mask generator with output_mode
// 'coco_rle' or 'uncompressed_rle'). Runs alternate 0, 1, 0, … starting with a run of zeros (possibly empty) and walk
// the mask in column-major order. The compressed form packs each count (from the fourth on, as the difference to the
// count two places before) into characters of 5 data bits plus a continuation bit, offset by 48.

export interface CocoRle {
  /** [height, width] */
  size: [number, number];
  /** a compressed string, or the plain list of run lengths */
  counts: string | number[];
}

export class RleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RleError';
  }
}

/** A count never needs more than 32 bits here (masks are limited to 2³¹ pixels), i.e. at most 7 characters. */
const MAX_CHARS_PER_COUNT = 7;

export function decodeCountsString(text: string): number[] {
  const counts: number[] = [];
  let position = 0;
  while (position < text.length) {
    let value = 0;
    let shift = 0;
    let more = true;
    while (more) {
      if (position >= text.length) throw new RleError(`the RLE string ends inside a count (at character ${position})`);
      const code = text.charCodeAt(position) - 48;
      if (code < 0 || code > 63) throw new RleError(`character '${text[position]}' at ${position} is not part of a COCO RLE string`);
      if (shift >= 5 * MAX_CHARS_PER_COUNT) throw new RleError(`count ${counts.length} at character ${position} is too long`);
      value += (code & 0x1f) * 2 ** shift;
      more = (code & 0x20) !== 0;
      shift += 5;
      position++;
      // the last character's top data bit is the sign
      if (!more && code & 0x10) value -= 2 ** shift;
    }
    if (counts.length > 2) value += counts[counts.length - 2]!;
    counts.push(value);
  }
  return counts;
}

export function encodeCountsString(counts: readonly number[]): string {
  let text = '';
  counts.forEach((count, i) => {
    let value = i > 2 ? count - counts[i - 2]! : count;
    let more = true;
    while (more) {
      let code = value & 0x1f;
      value = Math.floor(value / 32);
      more = code & 0x10 ? value !== -1 : value !== 0;
      if (more) code |= 0x20;
      text += String.fromCharCode(code + 48);
    }
  });
  return text;
}

function checkSize(size: unknown): [number, number] {
  if (!Array.isArray(size) || size.length !== 2 || !size.every((n) => Number.isInteger(n) && n > 0 && n <= 65536)) {
    throw new RleError(`an RLE size is [height, width] with positive integers, got ${JSON.stringify(size)}`);
  }
  return [size[0], size[1]];
}

/** A checked RLE: its size and runs (alternating 0, 1, … in column-major order), nothing rasterised yet. */
export interface RleRuns {
  height: number;
  width: number;
  counts: number[];
}

export function parseRle(rle: CocoRle): RleRuns {
  const [height, width] = checkSize(rle.size);
  let counts: number[];
  if (typeof rle.counts === 'string') counts = decodeCountsString(rle.counts);
  else if (Array.isArray(rle.counts)) counts = rle.counts;
  else throw new RleError('RLE counts must be a string (compressed) or a list of integers (uncompressed)');
  const total = height * width;
  let covered = 0;
  for (const [i, count] of counts.entries()) {
    if (!Number.isInteger(count) || count < 0) throw new RleError(`run ${i} has length ${count}; runs are integers ≥ 0`);
    covered += count;
    if (covered > total) throw new RleError(`the runs cover more than the ${height}×${width} = ${total} pixels of the mask`);
  }
  if (covered !== total) throw new RleError(`the runs cover ${covered} of the ${height}×${width} = ${total} pixels of the mask`);
  return { height, width, counts };
}

/** Pixels inside the mask. */
export function rleArea({ counts }: RleRuns): number {
  let area = 0;
  for (let i = 1; i < counts.length; i += 2) area += counts[i]!;
  return area;
}

/** [x, y, width, height] around the mask's pixels, or null when it is empty; from the runs alone. */
export function rleBoundingBox({ height, counts }: RleRuns): [number, number, number, number] | null {
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -1;
  let y1 = -1;
  let index = 0;
  for (const [i, count] of counts.entries()) {
    if (i % 2 === 1 && count > 0) {
      const last = index + count - 1;
      const [firstColumn, lastColumn] = [Math.floor(index / height), Math.floor(last / height)];
      x0 = Math.min(x0, firstColumn);
      x1 = Math.max(x1, lastColumn);
      // a run that wraps into the next column reaches the bottom of one column and the top of the next
      y0 = Math.min(y0, firstColumn === lastColumn ? index % height : 0);
      y1 = Math.max(y1, firstColumn === lastColumn ? last % height : height - 1);
    }
    index += count;
  }
  return x1 < 0 ? null : [x0, y0, x1 - x0 + 1, y1 - y0 + 1];
}

/** The row-major 0/1 mask of size[0] rows and size[1] columns. */
export function rasterizeRle({ height, width, counts }: RleRuns): Uint8Array {
  const mask = new Uint8Array(height * width);
  let index = 0;
  for (const [i, count] of counts.entries()) {
    if (i % 2 === 1) {
      for (let k = index; k < index + count; k++) {
        // column-major position k → row k % height, column ⌊k / height⌋
        mask[(k % height) * width + Math.floor(k / height)] = 1;
      }
    }
    index += count;
  }
  return mask;
}

/** Encodes a row-major 0/1 mask; `compressed` gives the string form pycocotools writes. */
export function encodeRle(mask: Uint8Array, height: number, width: number, compressed = true): CocoRle {
  if (mask.length !== height * width) throw new RleError(`a ${height}×${width} mask has ${height * width} values, got ${mask.length}`);
  const counts: number[] = [];
  let current = 0;
  let run = 0;
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) {
      const value = mask[y * width + x] ? 1 : 0;
      if (value !== current) {
        counts.push(run);
        run = 0;
        current = value;
      }
      run++;
    }
  }
  counts.push(run);
  return { size: [height, width], counts: compressed ? encodeCountsString(counts) : counts };
}
