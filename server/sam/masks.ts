// Instance masks as the studio stores them: a greyscale PNG at the photo's size, 255 inside and 0 outside. Every
// mask that arrives (SAM output, brush strokes, an imported PNG, a decoded RLE) is brought to that form here.
import sharp, { type OutputInfo } from 'sharp';

export class MaskError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MaskError';
  }
}

/** Relative difference of aspect ratios a mask may have from its photo (rounding when either was resized). */
const ASPECT_TOLERANCE = 0.02;

export function maskToPng(mask: Uint8Array, width: number, height: number): Promise<Buffer> {
  if (mask.length !== width * height) throw new MaskError(`a ${width}×${height} mask has ${width * height} values, got ${mask.length}`);
  const grey = Buffer.alloc(mask.length);
  for (let i = 0; i < mask.length; i++) grey[i] = mask[i] ? 255 : 0;
  return sharp(grey, { raw: { width, height, channels: 1 } }).toColourspace('b-w').png({ compressionLevel: 9 }).toBuffer();
}

function checkAspect(width: number, height: number, target: { width: number; height: number }, what: string): void {
  const ratio = width / height / (target.width / target.height);
  if (Math.abs(ratio - 1) > ASPECT_TOLERANCE) {
    throw new MaskError(`${what} is ${width}×${height} but the photo is ${target.width}×${target.height}: a mask must have the photo's shape (made on this crop of the photo)`);
  }
}

/**
 * Resamples a 0/1 mask to the target size: each target pixel takes the majority of the source pixels it covers (one
 * pixel, the nearest, when enlarging), so integer scalings are exact and masks neither grow nor shrink.
 */
export function resizeMask(mask: Uint8Array, width: number, height: number, target: { width: number; height: number }, what = 'the mask'): Uint8Array {
  checkAspect(width, height, target, what);
  if (width === target.width && height === target.height) return mask;
  const out = new Uint8Array(target.width * target.height);
  const span = (t: number, from: number, to: number): [number, number] => {
    const start = Math.floor((t * from) / to);
    return [start, Math.max(start + 1, Math.floor(((t + 1) * from) / to))];
  };
  for (let ty = 0; ty < target.height; ty++) {
    const [y0, y1] = span(ty, height, target.height);
    for (let tx = 0; tx < target.width; tx++) {
      const [x0, x1] = span(tx, width, target.width);
      let inside = 0;
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) inside += mask[y * width + x]!;
      out[ty * target.width + tx] = 2 * inside >= (y1 - y0) * (x1 - x0) ? 1 : 0;
    }
  }
  return out;
}

function threshold(data: Uint8Array, channels: number, channel: number | 'max'): Uint8Array {
  const pixels = data.length / channels;
  const mask = new Uint8Array(pixels);
  for (let i = 0; i < pixels; i++) {
    let value: number;
    if (channel === 'max') {
      value = 0;
      for (let c = 0; c < Math.min(channels, 3); c++) value = Math.max(value, data[i * channels + c]!);
    } else {
      value = data[i * channels + channel]!;
    }
    mask[i] = value >= 128 ? 1 : 0;
  }
  return mask;
}

/**
 * Any mask image (PNG, JPEG, WebP; white-on-black or opaque-on-transparent) → a 0/1 mask at the photo's size. An
 * image with transparency uses its alpha; otherwise a pixel is inside when its brightest channel is at least 128.
 */
export async function readMaskImage(
  bytes: Uint8Array,
  target: { width: number; height: number },
  what: string,
  maxPixels: number,
): Promise<{ mask: Uint8Array; area: number }> {
  let decoded: { data: Buffer; info: OutputInfo };
  try {
    const { width = 0, height = 0 } = await sharp(bytes).metadata();
    if (width * height > maxPixels) throw new MaskError(`${what} is ${width}×${height} pixels; the limit is ${maxPixels}`);
    decoded = await sharp(bytes).rotate().raw().toBuffer({ resolveWithObject: true });
  } catch (error) {
    if (error instanceof MaskError) throw error;
    throw new MaskError(`${what} could not be read as an image: ${(error as Error).message}`);
  }
  const { data, info } = decoded;
  let alphaUsed = false;
  if (info.channels === 2 || info.channels === 4) {
    for (let i = info.channels - 1; i < data.length; i += info.channels) {
      if (data[i]! < 255) {
        alphaUsed = true;
        break;
      }
    }
  }
  const own = threshold(data, info.channels, alphaUsed ? info.channels - 1 : 'max');
  const mask = resizeMask(own, info.width, info.height, target, what);
  let area = 0;
  for (const value of mask) area += value;
  return { mask, area };
}
