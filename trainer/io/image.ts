// Image files <-> RGB pixels and tensors. sharp decodes PNG/JPEG/WebP (EXIF orientation applied) and encodes PNG.
import sharp from 'sharp';
import { tf } from '../runtime/backend.ts';

export interface RgbImage {
  width: number;
  height: number;
  /** row-major RGB, 3 bytes per pixel */
  data: Uint8Array;
}

export interface GrayImage {
  width: number;
  height: number;
  /** row-major, one byte per pixel */
  data: Uint8Array;
}

export async function readRgb(input: string | Uint8Array): Promise<RgbImage> {
  const { data, info } = await sharp(input).rotate().removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`expected 3 colour channels after decoding, got ${info.channels}`);
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/** Reads a mask image as one channel (the first channel, as the reference's ToTensor()[0] does). */
export async function readMask(input: string | Uint8Array): Promise<GrayImage> {
  const image = sharp(input).rotate();
  const { data, info } = await image.raw().toBuffer({ resolveWithObject: true });
  const pixels = info.width * info.height;
  const gray = new Uint8Array(pixels);
  for (let i = 0; i < pixels; i++) gray[i] = data[i * info.channels]!;
  return { width: info.width, height: info.height, data: gray };
}

export function encodePng(image: RgbImage | GrayImage): Promise<Buffer> {
  const channels = image.data.length / (image.width * image.height);
  if (channels !== 1 && channels !== 3 && channels !== 4) throw new Error(`cannot encode ${channels} channels as PNG`);
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels } }).png().toBuffer();
}

export async function writePng(path: string, image: RgbImage | GrayImage): Promise<void> {
  const { writeFile, rename } = await import('node:fs/promises');
  const temp = `${path}.tmp-${process.pid}`;
  await writeFile(temp, await encodePng(image));
  await rename(temp, path);
}

/** NHWC float image in [0, 1] -> one RgbImage per batch element (round(x·255), as diffusers' numpy_to_pil). */
export function tensorToRgbImages(images: tf.Tensor4D): RgbImage[] {
  const [batch, height, width, channels] = images.shape;
  if (channels !== 3) throw new Error(`expected 3 channels, got ${channels}`);
  const values = images.dataSync();
  const size = height * width * 3;
  return Array.from({ length: batch }, (_, b) => {
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = Math.round(Math.min(1, Math.max(0, values[b * size + i]!)) * 255);
    return { width, height, data };
  });
}

/** RgbImage -> NHWC [1, H, W, 3] in [-1, 1], the VAE's input range. */
export function rgbToTensor(image: RgbImage): tf.Tensor4D {
  return tf.tidy(() => tf.sub(tf.div(tf.tensor4d(Float32Array.from(image.data), [1, image.height, image.width, 3]), 127.5), 1) as tf.Tensor4D);
}
