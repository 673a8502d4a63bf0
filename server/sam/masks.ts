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

/** Resamples a 0/1 mask to the target size (bilinear, then thresholded at one half). */
export async function resizeMask(mask: Uint8Array, width: number, height: number, target: { width: number; height: number }, what = 'the mask'): Promise<Uint8Array> {
  checkAspect(width, height, target, what);
  if (width === target.width && height === target.height) return mask;
  const grey = Buffer.alloc(mask.length);
  for (let i = 0; i < mask.length; i++) grey[i] = mask[i] ? 255 : 0;
  const { data } = await sharp(grey, { raw: { width, height, channels: 1 } })
    .resize(target.width, target.height, { fit: 'fill', kernel: 'linear' })
    .extractChannel(0)
    .raw()
    .toBuffer({ resolveWithObject: true });
  return threshold(data, 1, 0);
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
export async function readMaskImage(bytes: Uint8Array, target: { width: number; height: number }, what = 'the mask'): Promise<{ mask: Uint8Array; area: number }> {
  let decoded: { data: Buffer; info: OutputInfo };
  try {
    decoded = await sharp(bytes).rotate().raw().toBuffer({ resolveWithObject: true });
  } catch (error) {
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
  const mask = await resizeMask(own, info.width, info.height, target, what);
  let area = 0;
  for (const value of mask) area += value;
  return { mask, area };
}
