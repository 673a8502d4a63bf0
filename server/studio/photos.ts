// A new project's photo: the upload is checked (format from its bytes, byte and pixel limits), turned upright from
// its EXIF orientation, cropped to the square the user chose (the model learns a square) and stored as a PNG of at
// most STORED_SIDE pixels a side, with a small thumbnail for the project list.
import sharp from 'sharp';
import type { ServerServices } from '../services.ts';
import { inspectPhoto, UploadError } from '../storage/images.ts';

/** Masks are drawn at the stored photo's size; larger photos gain nothing (the models learn at 64–768 px). */
export const STORED_SIDE = 1024;
const THUMBNAIL_SIDE = 256;

export interface SquareCrop {
  /** in the upright photo's pixels */
  x: number;
  y: number;
  size: number;
}

export interface StoredPhoto {
  photo: { sha256: string; mediaType: string; width: number; height: number };
  thumbnailSha256: string;
  original: { sha256: string; width: number; height: number; crop: SquareCrop };
}

function largestCenteredSquare(width: number, height: number): SquareCrop {
  const size = Math.min(width, height);
  return { x: Math.floor((width - size) / 2), y: Math.floor((height - size) / 2), size };
}

export async function storeSquarePhoto(services: ServerServices, file: Blob, crop: SquareCrop | null): Promise<StoredPhoto> {
  const { maxUploadBytes, maxUploadPixels } = services.config;
  if (file.size > maxUploadBytes) {
    throw new UploadError(`the photo is ${(file.size / 1048576).toFixed(1)} MB; the limit is ${(maxUploadBytes / 1048576).toFixed(0)} MB. Export it smaller and try again`);
  }
  const bytes = new Uint8Array(await file.arrayBuffer());
  const info = await inspectPhoto(bytes, { maxBytes: maxUploadBytes, maxPixels: maxUploadPixels });
  const square = crop ?? largestCenteredSquare(info.width, info.height);
  const { x, y, size } = square;
  if (![x, y, size].every(Number.isInteger) || size < 1 || x < 0 || y < 0 || x + size > info.width || y + size > info.height) {
    throw new UploadError(`the crop ${size}×${size} at ${x},${y} does not fit in the ${info.width}×${info.height} photo`);
  }
  const side = Math.min(size, STORED_SIDE);
  const cropped = await sharp(bytes)
    .rotate()
    .extract({ left: x, top: y, width: size, height: size })
    .removeAlpha()
    .toColourspace('srgb')
    .resize(side, side, { kernel: 'lanczos3' })
    .png()
    .toBuffer();
  const thumbnail = await sharp(cropped).resize(THUMBNAIL_SIDE, THUMBNAIL_SIDE).webp({ quality: 82 }).toBuffer();
  const original = await services.artifacts.put(bytes, info.mediaType);
  const stored = await services.artifacts.put(cropped, 'image/png');
  const thumb = await services.artifacts.put(thumbnail, 'image/webp');
  return {
    photo: { sha256: stored.sha256, mediaType: 'image/png', width: side, height: side },
    thumbnailSha256: thumb.sha256,
    original: { sha256: original.sha256, width: info.width, height: info.height, crop: square },
  };
}

/** A thumbnail for a photo already in the store (samples). */
export async function thumbnailOf(services: ServerServices, photo: Uint8Array): Promise<string> {
  const thumbnail = await sharp(photo).resize(THUMBNAIL_SIDE, THUMBNAIL_SIDE, { fit: 'cover' }).webp({ quality: 82 }).toBuffer();
  return (await services.artifacts.put(thumbnail, 'image/webp')).sha256;
}
