// Soft instance masks as row-major Float32Arrays in [0, 1], and the resamplings the learning losses need
// (PyTorch F.interpolate semantics: 'nearest', 'bilinear' with align_corners=False and no antialiasing, and 'area').

export interface Mask {
  width: number;
  height: number;
  data: Float32Array;
}

function checkSize(width: number, height: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`mask size must be positive integers, got ${width}x${height}`);
  }
}

/** F.interpolate(mode='nearest'): source index floor(dst · in/out). */
export function resizeNearest(mask: Mask, width: number, height: number): Mask {
  checkSize(width, height);
  const data = new Float32Array(width * height);
  const scaleY = mask.height / height;
  const scaleX = mask.width / width;
  for (let y = 0; y < height; y++) {
    const sy = Math.min(Math.floor(y * scaleY), mask.height - 1);
    for (let x = 0; x < width; x++) {
      const sx = Math.min(Math.floor(x * scaleX), mask.width - 1);
      data[y * width + x] = mask.data[sy * mask.width + sx]!;
    }
  }
  return { width, height, data };
}

/** F.interpolate(mode='bilinear', align_corners=False, antialias=False): half-pixel centres, edges clamped. */
export function resizeBilinear(mask: Mask, width: number, height: number): Mask {
  checkSize(width, height);
  const data = new Float32Array(width * height);
  const source = (dst: number, scale: number, size: number) => {
    const position = Math.max((dst + 0.5) * scale - 0.5, 0);
    const low = Math.min(Math.floor(position), size - 1);
    return { low, high: Math.min(low + 1, size - 1), weight: position - low };
  };
  for (let y = 0; y < height; y++) {
    const sy = source(y, mask.height / height, mask.height);
    for (let x = 0; x < width; x++) {
      const sx = source(x, mask.width / width, mask.width);
      const at = (row: number, col: number) => mask.data[row * mask.width + col]!;
      const top = at(sy.low, sx.low) * (1 - sx.weight) + at(sy.low, sx.high) * sx.weight;
      const bottom = at(sy.high, sx.low) * (1 - sx.weight) + at(sy.high, sx.high) * sx.weight;
      data[y * width + x] = top * (1 - sy.weight) + bottom * sy.weight;
    }
  }
  return { width, height, data };
}

/** F.interpolate(mode='area') (adaptive average pooling): each cell is the mean of the source pixels it spans. */
export function resizeArea(mask: Mask, width: number, height: number): Mask {
  checkSize(width, height);
  const data = new Float32Array(width * height);
  const span = (dst: number, size: number, out: number) => [Math.floor((dst * size) / out), Math.ceil(((dst + 1) * size) / out)] as const;
  for (let y = 0; y < height; y++) {
    const [y0, y1] = span(y, mask.height, height);
    for (let x = 0; x < width; x++) {
      const [x0, x1] = span(x, mask.width, width);
      let sum = 0;
      for (let sy = y0; sy < y1; sy++) for (let sx = x0; sx < x1; sx++) sum += mask.data[sy * mask.width + sx]!;
      data[y * width + x] = sum / ((y1 - y0) * (x1 - x0));
    }
  }
  return { width, height, data };
}

export function flipHorizontal(mask: Mask): Mask {
  const { width, height } = mask;
  const data = new Float32Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data[y * width + x] = mask.data[y * width + width - 1 - x]!;
  return { width, height, data };
}

/** M_∪ (P Eq.16): the elementwise maximum. */
export function unionMask(masks: readonly Mask[]): Mask {
  const first = masks[0];
  if (!first) throw new Error('the union of no masks is undefined');
  const data = Float32Array.from(first.data);
  for (const mask of masks.slice(1)) {
    if (mask.width !== first.width || mask.height !== first.height) throw new Error('masks of a union must have the same size');
    for (let i = 0; i < data.length; i++) data[i] = Math.max(data[i]!, mask.data[i]!);
  }
  return { width: first.width, height: first.height, data };
}

/** Values ≥ threshold become 1, others 0 (Break-a-Scene's binary targets). */
export function binarize(mask: Mask, threshold = 0.5): Mask {
  return { ...mask, data: mask.data.map((v) => (v >= threshold ? 1 : 0)) };
}

export function maskArea(mask: Mask): number {
  let sum = 0;
  for (const v of mask.data) sum += v;
  return sum;
}
