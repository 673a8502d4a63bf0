// Renders a scene to RGB with anti-aliased edges and exact per-instance visibility. Edges are found by testing the
// object at pixel corners; only pixels whose corners disagree are supersampled, which keeps a 64x64 scene well
// under a millisecond.
import { renderBackground } from './backgrounds.ts';
import { COLOURS } from './definitions.ts';
import type { Box, Scene } from './scene.ts';
import { objectParts, type ObjectPart } from './shapes.ts';
import { textureShade } from './textures.ts';

export interface RenderOptions {
  /** also return per-instance alphas, masks and boxes (default true) */
  masks?: boolean;
}

export interface RenderedScene {
  size: number;
  /** interleaved RGB, row-major, top-left origin */
  image: Uint8Array;
  /** per object: the visible share of each pixel (coverage times what later objects leave uncovered) */
  alphas: Float32Array[];
  /** per object: 1 where its visible alpha is at least 0.5 (and the largest; masks never overlap) */
  masks: Uint8Array[];
  /** per object: the tight normalised box of its mask, or null when nothing of it is visible */
  boxes: (Box | null)[];
}

const SUPERSAMPLE = 4;

export function renderScene(scene: Scene, size: number, options: RenderOptions = {}): RenderedScene {
  if (!Number.isInteger(size) || size < 8 || size > 4096) throw new Error(`render size must be an integer in [8, 4096], got ${size}`);
  const withMasks = options.masks ?? true;
  const canvas = renderBackground(scene.background, size);
  const alphas: Float32Array[] = [];
  const touched: PixelBounds[] = [];
  for (const object of scene.objects) {
    const parts = objectParts(object.shape, object.colour, object.texture);
    const coverage = new Float32Array(size * size);
    const bounds = paintObject(canvas, coverage, size, parts, object.center, object.size, object.rotation);
    if (!withMasks) continue;
    // what this object covers is hidden from every object below it
    for (const below of alphas) {
      for (let y = bounds.y0; y < bounds.y1; y++) {
        for (let x = bounds.x0; x < bounds.x1; x++) below[y * size + x]! *= 1 - coverage[y * size + x]!;
      }
    }
    alphas.push(coverage);
    touched.push(bounds);
  }
  // Uint8ClampedArray conversion rounds (half to even) and clamps natively
  const image = new Uint8Array(new Uint8ClampedArray(canvas).buffer);
  // a pixel belongs to the object with the largest visible share there, if that share is at least half
  // (ties, only possible at exactly one half, go to the object on top)
  const masks = alphas.map(() => new Uint8Array(size * size));
  touched.forEach((bounds) => {
    for (let y = bounds.y0; y < bounds.y1; y++) {
      for (let p = y * size + bounds.x0; p < y * size + bounds.x1; p++) {
        let owner = -1;
        let best = 0.5;
        for (let i = 0; i < alphas.length; i++) {
          const alpha = alphas[i]![p]!;
          if (alpha >= best) {
            best = alpha;
            owner = i;
          }
        }
        if (owner >= 0) masks[owner]![p] = 1;
      }
    }
  });
  return { size, image, alphas, masks, boxes: masks.map((mask, i) => maskBox(mask, size, touched[i]!)) };
}

/** Tight normalised box of the set pixels of a size x size mask (all inside `bounds`), or null when it is empty. */
function maskBox(mask: Uint8Array, size: number, bounds: PixelBounds): Box | null {
  let x0 = size;
  let y0 = size;
  let x1 = -1;
  let y1 = -1;
  for (let y = bounds.y0; y < bounds.y1; y++) {
    for (let x = bounds.x0; x < bounds.x1; x++) {
      if (!mask[y * size + x]) continue;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
    }
  }
  return x1 < 0 ? null : [x0 / size, y0 / size, (x1 + 1) / size, (y1 + 1) / size];
}

interface PixelBounds {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/** Composites one object over the canvas and writes its coverage (0..1) per pixel; returns the touched rectangle. */
function paintObject(
  canvas: Float32Array,
  coverage: Float32Array,
  size: number,
  parts: ObjectPart[],
  center: [number, number],
  diameter: number,
  rotation: number,
): PixelBounds {
  const radius = (diameter / 2) * size;
  const cx = center[0] * size;
  const cy = center[1] * size;
  const cos = Math.cos((rotation * Math.PI) / 180);
  const sin = Math.sin((rotation * Math.PI) / 180);
  const bounds: PixelBounds = {
    x0: Math.max(0, Math.floor(cx - radius) - 1),
    y0: Math.max(0, Math.floor(cy - radius) - 1),
    x1: Math.min(size, Math.ceil(cx + radius) + 1),
    y1: Math.min(size, Math.ceil(cy + radius) + 1),
  };
  const width = bounds.x1 - bounds.x0;
  const height = bounds.y1 - bounds.y0;
  if (width <= 0 || height <= 0) return { x0: 0, y0: 0, x1: 0, y1: 0 };

  // index of the topmost part containing the point, or -1
  const topPart = (px: number, py: number): number => {
    const dx = (px - cx) / radius;
    const dy = (py - cy) / radius;
    const u = dx * cos + dy * sin;
    const v = -dx * sin + dy * cos;
    for (let p = parts.length - 1; p >= 0; p--) if (parts[p]!.inside(u, v)) return p;
    return -1;
  };
  const cornerStride = width + 1;
  const corners = new Int8Array(cornerStride * (height + 1));
  for (let j = 0; j <= height; j++) {
    for (let i = 0; i <= width; i++) corners[j * cornerStride + i] = topPart(bounds.x0 + i, bounds.y0 + j);
  }

  const footprint = 1 / radius;
  const colour = [0, 0, 0];
  // per part: primary RGB and the step to the secondary shade
  const palettes = parts.map((part) => {
    const { rgb, secondary } = COLOURS[part.colour];
    return [rgb[0], rgb[1], rgb[2], secondary[0] - rgb[0], secondary[1] - rgb[1], secondary[2] - rgb[2]];
  });
  // adds the colour of part `index` at screen point (px, py) to `colour`
  const shadeAt = (index: number, px: number, py: number, pixelFootprint: number, weight: number) => {
    const part = parts[index]!;
    const palette = palettes[index]!;
    let t = 0;
    if (part.texture !== 'plain') {
      const dx = (px - cx) / radius;
      const dy = (py - cy) / radius;
      t = textureShade(part.texture, dx * cos + dy * sin, -dx * sin + dy * cos, pixelFootprint);
    }
    colour[0]! += weight * (palette[0]! + palette[3]! * t);
    colour[1]! += weight * (palette[1]! + palette[4]! * t);
    colour[2]! += weight * (palette[2]! + palette[5]! * t);
  };

  for (let j = 0; j < height; j++) {
    const py = bounds.y0 + j;
    for (let i = 0; i < width; i++) {
      const px = bounds.x0 + i;
      const c00 = corners[j * cornerStride + i]!;
      const c10 = corners[j * cornerStride + i + 1]!;
      const c01 = corners[(j + 1) * cornerStride + i]!;
      const c11 = corners[(j + 1) * cornerStride + i + 1]!;
      colour[0] = colour[1] = colour[2] = 0;
      let alpha: number;
      if (c00 === c10 && c00 === c01 && c00 === c11) {
        if (c00 < 0) continue;
        shadeAt(c00, px + 0.5, py + 0.5, footprint, 1);
        alpha = 1;
      } else {
        let hits = 0;
        const sampleWeight = 1 / (SUPERSAMPLE * SUPERSAMPLE);
        for (let sy = 0; sy < SUPERSAMPLE; sy++) {
          for (let sx = 0; sx < SUPERSAMPLE; sx++) {
            const qx = px + (sx + 0.5) / SUPERSAMPLE;
            const qy = py + (sy + 0.5) / SUPERSAMPLE;
            const part = topPart(qx, qy);
            if (part < 0) continue;
            hits++;
            shadeAt(part, qx, qy, footprint / SUPERSAMPLE, sampleWeight);
          }
        }
        if (hits === 0) continue;
        alpha = hits * sampleWeight;
      }
      // colour holds alpha-weighted (premultiplied) object colour
      const o = (py * size + px) * 3;
      canvas[o] = colour[0]! + (1 - alpha) * canvas[o]!;
      canvas[o + 1] = colour[1]! + (1 - alpha) * canvas[o + 1]!;
      canvas[o + 2] = colour[2]! + (1 - alpha) * canvas[o + 2]!;
      coverage[py * size + px] = alpha;
    }
  }
  return bounds;
}
