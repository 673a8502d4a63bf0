// Checks PNG bytes carried in a pack's metadata without decoding the pixels: the signature, every chunk's length and
// CRC, a well-formed IHDR first and IEND last. A flipped bit anywhere fails a CRC, so what passes is the PNG that was
// packed; the pixel size is bounded before anyone decodes it.
import { crc32 } from 'node:zlib';

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const BIT_DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };

export interface PngInfo {
  width: number;
  height: number;
  /** 0 gray, 2 RGB, 3 palette, 4 gray + alpha, 6 RGBA */
  colorType: number;
}

export class PngError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PngError';
  }
}

export function inspectPng(bytes: Uint8Array, maxSide: number): PngInfo {
  if (bytes.length < SIGNATURE.length + 12 + 13 + 12 || SIGNATURE.some((b, i) => bytes[i] !== b)) throw new PngError('not a PNG (bad signature or too short)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = SIGNATURE.length;
  let info: PngInfo | null = null;
  let sawData = false;
  for (let index = 0; ; index++) {
    if (offset + 12 > bytes.length) throw new PngError('truncated: the file ends inside a chunk header');
    const length = view.getUint32(offset);
    const end = offset + 12 + length;
    if (length > 0x7fffffff || end > bytes.length) throw new PngError(`truncated: chunk ${index} claims ${length} bytes`);
    const type = String.fromCharCode(...bytes.subarray(offset + 4, offset + 8));
    if (!/^[A-Za-z]{4}$/.test(type)) throw new PngError(`chunk ${index} has an invalid type`);
    const expected = view.getUint32(end - 4);
    if (crc32(bytes.subarray(offset + 4, end - 4)) !== expected) throw new PngError(`chunk ${type} fails its CRC (corrupted)`);
    if (index === 0) {
      if (type !== 'IHDR' || length !== 13) throw new PngError('the first chunk is not a 13-byte IHDR');
      const width = view.getUint32(offset + 8);
      const height = view.getUint32(offset + 12);
      const bitDepth = bytes[offset + 16]!;
      const colorType = bytes[offset + 17]!;
      if (width < 1 || height < 1 || width > maxSide || height > maxSide) throw new PngError(`${width}x${height} pixels is outside 1..${maxSide} per side`);
      if (!BIT_DEPTHS[colorType]?.includes(bitDepth)) throw new PngError(`colour type ${colorType} with bit depth ${bitDepth} is not valid PNG`);
      info = { width, height, colorType };
    } else if (type === 'IHDR') {
      throw new PngError('a second IHDR chunk');
    }
    if (type === 'IDAT') sawData = true;
    offset = end;
    if (type === 'IEND') break;
  }
  if (!sawData) throw new PngError('no image data (IDAT)');
  if (offset !== bytes.length) throw new PngError(`${bytes.length - offset} bytes after IEND`);
  return info!;
}
