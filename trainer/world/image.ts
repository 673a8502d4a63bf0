// RGB images as plain typed arrays, bilinear resizing, and PNG files through sharp.
import sharp from 'sharp';

export interface RgbImage {
  width: number;
  height: number;
  /** interleaved RGB, row-major, top-left origin */
  data: Uint8Array;
}

export function checkRgbImage(image: RgbImage): void {
  const { width, height, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`image size must be positive integers, got ${width}x${height}`);
  }
  if (data.length !== width * height * 3) {
    throw new Error(`an RGB image of ${width}x${height} needs ${width * height * 3} bytes, got ${data.length}`);
  }
}

/** Bilinear resize with pixel centres aligned (half-pixel convention, like PIL without antialias for upscaling). */
export function resizeBilinear(image: RgbImage, width: number, height: number): RgbImage {
  checkRgbImage(image);
  if (image.width === width && image.height === height) return image;
  const out = new Uint8Array(width * height * 3);
  const sx = image.width / width;
  const sy = image.height / height;
  // Downscaling by more than 2x averages boxes first, so thin stripes do not alias.
  const source = sx > 2 || sy > 2 ? boxDownscale(image, Math.max(1, Math.floor(sx / 2)), Math.max(1, Math.floor(sy / 2))) : image;
  const scaleX = source.width / width;
  const scaleY = source.height / height;
  for (let y = 0; y < height; y++) {
    const fy = Math.min(source.height - 1, Math.max(0, (y + 0.5) * scaleY - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(source.height - 1, y0 + 1);
    const wy = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = Math.min(source.width - 1, Math.max(0, (x + 0.5) * scaleX - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(source.width - 1, x0 + 1);
      const wx = fx - x0;
      for (let c = 0; c < 3; c++) {
        const a = source.data[(y0 * source.width + x0) * 3 + c]!;
        const b = source.data[(y0 * source.width + x1) * 3 + c]!;
        const d = source.data[(y1 * source.width + x0) * 3 + c]!;
        const e = source.data[(y1 * source.width + x1) * 3 + c]!;
        out[(y * width + x) * 3 + c] = Math.round((a * (1 - wx) + b * wx) * (1 - wy) + (d * (1 - wx) + e * wx) * wy);
      }
    }
  }
  return { width, height, data: out };
}

function boxDownscale(image: RgbImage, fx: number, fy: number): RgbImage {
  const width = Math.floor(image.width / fx);
  const height = Math.floor(image.height / fy);
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (let j = 0; j < fy; j++) for (let i = 0; i < fx; i++) sum += image.data[((y * fy + j) * image.width + x * fx + i) * 3 + c]!;
        out[(y * width + x) * 3 + c] = Math.round(sum / (fx * fy));
      }
    }
  }
  return { width, height, data: out };
}

export async function writePng(path: string, image: RgbImage): Promise<void> {
  checkRgbImage(image);
  await sharp(Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength), {
    raw: { width: image.width, height: image.height, channels: 3 },
  })
    .png()
    .toFile(path);
}

/** A single-channel 0/1 (or 0..255) mask as a greyscale PNG (1 becomes 255). */
export async function writeMaskPng(path: string, mask: Uint8Array, size: number): Promise<void> {
  const grey = Uint8Array.from(mask, (m) => (m === 1 ? 255 : m));
  await sharp(Buffer.from(grey.buffer), { raw: { width: size, height: size, channels: 1 } }).png().toFile(path);
}

/** Any image file sharp reads, as sRGB RGB (an alpha channel is dropped, greyscale is expanded). */
export async function readRgb(path: string): Promise<RgbImage> {
  const { data, info } = await sharp(path).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`${path}: expected 3 channels after conversion, got ${info.channels}`);
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}
