// Masks in the browser: 0/1 bytes at the photo's size, read from and written to greyscale PNGs, and the colour
// overlay that shows every instance over the photo.
import { hexToRgb } from '../../lib/colors.ts';

export interface MaskBits {
  width: number;
  height: number;
  data: Uint8Array;
}

function loadImage(src: string): Promise<HTMLImageElement> {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`could not load ${src.startsWith('data:') ? 'the mask' : src}`));
    image.src = src;
  });
}

/** Reads a mask image (white = inside) at the given size. */
export async function loadMaskBits(src: string, width: number, height: number): Promise<MaskBits> {
  const image = await loadImage(src);
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext('2d', { willReadFrequently: true })!;
  context.drawImage(image, 0, 0, width, height);
  const pixels = context.getImageData(0, 0, width, height).data;
  const data = new Uint8Array(width * height);
  for (let i = 0; i < data.length; i++) data[i] = pixels[i * 4]! >= 128 ? 1 : 0;
  return { width, height, data };
}

export function emptyBits(width: number, height: number): MaskBits {
  return { width, height, data: new Uint8Array(width * height) };
}

export function countBits(bits: MaskBits): number {
  let count = 0;
  for (const value of bits.data) count += value;
  return count;
}

export function bitsToPngBlob(bits: MaskBits): Promise<Blob> {
  const canvas = document.createElement('canvas');
  canvas.width = bits.width;
  canvas.height = bits.height;
  const context = canvas.getContext('2d')!;
  const image = context.createImageData(bits.width, bits.height);
  for (let i = 0; i < bits.data.length; i++) {
    const value = bits.data[i] ? 255 : 0;
    image.data.set([value, value, value, 255], i * 4);
  }
  context.putImageData(image, 0, 0);
  return new Promise((resolve, reject) => canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error('the mask could not be encoded'))), 'image/png'));
}

/** Paints (or erases) a disc of the given radius. */
export function paintDisc(bits: MaskBits, cx: number, cy: number, radius: number, value: 0 | 1): void {
  const r2 = radius * radius;
  for (let y = Math.max(0, Math.floor(cy - radius)); y <= Math.min(bits.height - 1, Math.ceil(cy + radius)); y++) {
    for (let x = Math.max(0, Math.floor(cx - radius)); x <= Math.min(bits.width - 1, Math.ceil(cx + radius)); x++) {
      if ((x - cx) ** 2 + (y - cy) ** 2 <= r2) bits.data[y * bits.width + x] = value;
    }
  }
}

/** Paints discs along a segment, so fast strokes leave no gaps. */
export function paintStroke(bits: MaskBits, from: { x: number; y: number }, to: { x: number; y: number }, radius: number, value: 0 | 1): void {
  const steps = Math.max(1, Math.ceil(Math.hypot(to.x - from.x, to.y - from.y) / Math.max(1, radius / 2)));
  for (let i = 0; i <= steps; i++) paintDisc(bits, from.x + ((to.x - from.x) * i) / steps, from.y + ((to.y - from.y) * i) / steps, radius, value);
}

export interface OverlayLayer {
  bits: MaskBits;
  color: string;
  selected: boolean;
}

/** Every instance in its colour, translucent and outlined, the selected one stronger. */
export function drawOverlay(canvas: HTMLCanvasElement, width: number, height: number, layers: OverlayLayer[]): void {
  if (canvas.width !== width) canvas.width = width;
  if (canvas.height !== height) canvas.height = height;
  const context = canvas.getContext('2d')!;
  const image = context.createImageData(width, height);
  const out = image.data;
  for (const layer of layers) {
    if (layer.bits.width !== width || layer.bits.height !== height) continue;
    const [r, g, b] = hexToRgb(layer.color);
    // A light outline keeps an instance visible over an object of its own colour; the selected one's is yellow and wider.
    const [er, eg, eb] = layer.selected ? [250, 204, 21] : [255, 255, 255];
    const alpha = layer.selected ? 160 : 120;
    const reach = layer.selected ? 3 : 2;
    const data = layer.bits.data;
    const outside = (x: number, y: number) => x < 0 || y < 0 || x >= width || y >= height || !data[y * width + x];
    for (let i = 0; i < data.length; i++) {
      if (!data[i]) continue;
      const x = i % width;
      const y = (i - x) / width;
      let edge = false;
      for (let d = 1; d <= reach && !edge; d++) edge = outside(x - d, y) || outside(x + d, y) || outside(x, y - d) || outside(x, y + d);
      const o = i * 4;
      out[o] = edge ? er : r;
      out[o + 1] = edge ? eg : g;
      out[o + 2] = edge ? eb : b;
      out[o + 3] = edge ? 235 : alpha;
    }
  }
  context.putImageData(image, 0, 0);
}
