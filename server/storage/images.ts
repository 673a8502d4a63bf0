// Checks an uploaded photo before it is stored: the format from its first bytes (not its name or claimed type),
// byte and pixel limits, and its upright size in pixels (EXIF orientation applied) from the header.
import sharp from 'sharp';

export const PHOTO_MEDIA_TYPES = ['image/jpeg', 'image/png', 'image/webp'] as const;
export type PhotoMediaType = (typeof PHOTO_MEDIA_TYPES)[number];

export interface PhotoLimits {
  maxBytes: number;
  maxPixels: number;
}

export const DEFAULT_PHOTO_LIMITS: PhotoLimits = { maxBytes: 25 * 1024 * 1024, maxPixels: 40_000_000 };

export class UploadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UploadError';
  }
}

export function sniffImageType(bytes: Uint8Array): PhotoMediaType | null {
  const starts = (...values: number[]) => values.every((value, i) => bytes[i] === value);
  if (starts(0xff, 0xd8, 0xff)) return 'image/jpeg';
  if (starts(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return 'image/png';
  const ascii = (from: number, to: number) => String.fromCharCode(...bytes.subarray(from, to));
  if (bytes.length >= 12 && ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WEBP') return 'image/webp';
  return null;
}

export async function inspectPhoto(bytes: Uint8Array, limits: PhotoLimits = DEFAULT_PHOTO_LIMITS): Promise<{ mediaType: PhotoMediaType; width: number; height: number }> {
  if (bytes.byteLength === 0) throw new UploadError('the photo is empty');
  if (bytes.byteLength > limits.maxBytes) {
    throw new UploadError(`the photo is ${(bytes.byteLength / 1048576).toFixed(1)} MB; the limit is ${(limits.maxBytes / 1048576).toFixed(0)} MB`);
  }
  const mediaType = sniffImageType(bytes);
  if (!mediaType) throw new UploadError('the photo must be a JPEG, PNG or WebP image');
  let width: number | undefined;
  let height: number | undefined;
  let orientation: number | undefined;
  try {
    ({ width, height, orientation } = await sharp(bytes).metadata());
  } catch (error) {
    throw new UploadError(`the ${mediaType.slice(6).toUpperCase()} file could not be read: ${(error as Error).message}`);
  }
  if (!width || !height) throw new UploadError('the photo has no readable size');
  if (width * height > limits.maxPixels) {
    throw new UploadError(`the photo is ${width}×${height} (${((width * height) / 1e6).toFixed(1)} MP); the limit is ${(limits.maxPixels / 1e6).toFixed(0)} MP`);
  }
  // EXIF orientations 5-8 turn the stored pixels by 90°: the photo as seen (and as sharp's rotate() decodes it) is
  // taller than it is stored, and masks and SAM embeddings are made at that upright size
  const quarterTurn = orientation !== undefined && orientation >= 5;
  return { mediaType, width: quarterTurn ? height : width, height: quarterTurn ? width : height };
}
