// Preview grids: images tiled row by row into one PNG, with a text file naming what each tile shows.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writePng, type RgbImage } from '../io/image.ts';

export function tileImages(images: readonly RgbImage[], columns: number, gap = 2): RgbImage {
  if (images.length === 0) throw new Error('nothing to tile');
  const { width, height } = images[0]!;
  if (images.some((image) => image.width !== width || image.height !== height)) throw new Error('tiled images must share one size');
  const rows = Math.ceil(images.length / columns);
  const gridWidth = columns * width + (columns - 1) * gap;
  const gridHeight = rows * height + (rows - 1) * gap;
  const data = new Uint8Array(gridWidth * gridHeight * 3).fill(255);
  images.forEach((image, index) => {
    const left = (index % columns) * (width + gap);
    const top = Math.floor(index / columns) * (height + gap);
    for (let y = 0; y < height; y++) {
      data.set(image.data.subarray(y * width * 3, (y + 1) * width * 3), ((top + y) * gridWidth + left) * 3);
    }
  });
  return { width: gridWidth, height: gridHeight, data };
}

/** Writes <dir>/step-NNNNNN.png and a .txt beside it listing the tiles. */
export async function writePreviewGrid(dir: string, step: number, images: readonly RgbImage[], columns: number, labels: readonly string[]): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const stem = join(dir, `step-${String(step).padStart(6, '0')}`);
  await writePng(`${stem}.png`, tileImages(images, columns));
  writeFileSync(`${stem}.txt`, labels.map((label, i) => `${i}: ${label}`).join('\n') + '\n');
  return `${stem}.png`;
}
