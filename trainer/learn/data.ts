// The learning inputs as the reference prepares them (spec §1.1): the image resized to the learning size without
// cropping (bilinear) and normalised to [-1, 1]; each mask resized the same way, channel 0 only, soft values in [0, 1].
import sharp from 'sharp';
import { tf } from '../runtime/backend.ts';
import { maskArea, type Mask } from './masks.ts';

export type ImageInput = string | Uint8Array;

function describe(input: ImageInput): string {
  return typeof input === 'string' ? input : `${input.byteLength}-byte image`;
}

/** NHWC [1, size, size, 3] in [-1, 1]. */
export async function loadTrainingImage(input: ImageInput, size: number): Promise<tf.Tensor4D> {
  let decoded;
  try {
    decoded = await sharp(input)
      .rotate()
      .removeAlpha()
      .toColourspace('srgb')
      .resize(size, size, { fit: 'fill', kernel: 'linear' })
      .raw()
      .toBuffer({ resolveWithObject: true });
  } catch (error) {
    throw new Error(`cannot read the image ${describe(input)}: ${(error as Error).message}`);
  }
  const { data, info } = decoded;
  if (info.channels !== 3) throw new Error(`${describe(input)}: expected 3 colour channels, got ${info.channels}`);
  return tf.tidy(() => tf.sub(tf.div(tf.tensor4d(Float32Array.from(data), [1, size, size, 3]), 127.5), 1) as tf.Tensor4D);
}

/** A mask of any size and channel count -> [size × size] soft mask from its first channel. */
export async function loadTrainingMask(input: ImageInput, size: number): Promise<Mask> {
  let decoded;
  try {
    decoded = await sharp(input).rotate().resize(size, size, { fit: 'fill', kernel: 'linear' }).raw().toBuffer({ resolveWithObject: true });
  } catch (error) {
    throw new Error(`cannot read the mask ${describe(input)}: ${(error as Error).message}`);
  }
  const { data, info } = decoded;
  const mask = new Float32Array(size * size);
  for (let i = 0; i < mask.length; i++) mask[i] = data[i * info.channels]! / 255;
  const result = { width: size, height: size, data: mask };
  if (maskArea(result) === 0) throw new Error(`the mask ${describe(input)} is empty (all black in its first channel)`);
  return result;
}
