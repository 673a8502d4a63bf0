// Imperfect copies of clean renders: slight blur, pixel noise and a colour cast, the kinds of error a small
// generative model makes, and on top (generationLike) what a diffusion model's drawings of the world also show:
// colours more or less saturated and lighter or darker than the world's, and outlines that wobble. The evaluator keeps
// such copies among its references and is measured on them too.
import type { RgbImage } from './image.ts';
import { Rng } from './random.ts';

export interface Degradation {
  /** weight of the 3x3 neighbourhood against the centre pixel (0 = none, 1 = a full [1 2 1] blur) */
  blur: number;
  /** standard deviation of the added noise, in 0..255 levels */
  noise: number;
  /** per-channel colour cast, in 0..255 levels */
  cast: [number, number, number];
  /** gain of every pixel's distance from its grey (1 = none; above 1 more saturated) */
  saturation?: number;
  /** added to every channel, in 0..255 levels */
  brightness?: number;
  /** largest displacement of the smooth random warp, as a share of the image side (0 = none) */
  warp?: number;
}

/** A random degradation of moderate strength. */
export function randomDegradation(rng: Rng): Degradation {
  return {
    blur: rng.uniform(0, 1),
    noise: rng.uniform(0, 10),
    cast: [rng.uniform(-8, 8), rng.uniform(-8, 8), rng.uniform(-8, 8)],
  };
}

/** A random degradation of moderate strength plus the colour drift and wobble of a model's drawings. */
export function generationLikeDegradation(rng: Rng): Degradation {
  return { ...randomDegradation(rng), saturation: rng.uniform(0.8, 1.4), brightness: rng.uniform(-15, 15), warp: rng.uniform(0, 0.025) };
}

/**
 * Resamples the image through a displacement field of two random low-frequency waves per axis (bilinear), so straight
 * edges wobble and shapes bulge a little, as a model draws them; the largest displacement is `amplitude` pixels.
 */
function warpImage(image: RgbImage, amplitude: number, rng: Rng): RgbImage {
  const { width, height, data } = image;
  const waves = (count: number) =>
    Array.from({ length: count }, () => ({ fx: rng.uniform(1, 3) / width, fy: rng.uniform(1, 3) / height, phase: rng.uniform(0, 2 * Math.PI) }));
  const [wx, wy] = [waves(2), waves(2)];
  const field = (list: typeof wx, x: number, y: number) => (amplitude / list.length) * list.reduce((sum, w) => sum + Math.sin(2 * Math.PI * (w.fx * x + w.fy * y) + w.phase), 0);
  const out = new Uint8Array(data.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const sx = Math.min(width - 1, Math.max(0, x + field(wx, x, y)));
      const sy = Math.min(height - 1, Math.max(0, y + field(wy, x, y)));
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const x1 = Math.min(width - 1, x0 + 1);
      const y1 = Math.min(height - 1, y0 + 1);
      const tx = sx - x0;
      const ty = sy - y0;
      for (let c = 0; c < 3; c++) {
        const at = (xx: number, yy: number) => data[(yy * width + xx) * 3 + c]!;
        const value = (1 - ty) * ((1 - tx) * at(x0, y0) + tx * at(x1, y0)) + ty * ((1 - tx) * at(x0, y1) + tx * at(x1, y1));
        out[(y * width + x) * 3 + c] = Math.round(value);
      }
    }
  }
  return { width, height, data: out };
}

export function degradeImage(image: RgbImage, degradation: Degradation, seed: number): RgbImage {
  const rng = new Rng(seed);
  const { width, height, data } = degradation.warp ? warpImage(image, degradation.warp * Math.max(image.width, image.height), rng) : image;
  const saturation = degradation.saturation ?? 1;
  const brightness = degradation.brightness ?? 0;
  const drifts = saturation !== 1 || brightness !== 0;
  const out = new Uint8Array(data.length);
  const pixel = [0, 0, 0];
  const { blur, noise, cast } = degradation;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        let weightSum = 0;
        for (let dy = -1; dy <= 1; dy++) {
          const yy = Math.min(height - 1, Math.max(0, y + dy));
          for (let dx = -1; dx <= 1; dx++) {
            const xx = Math.min(width - 1, Math.max(0, x + dx));
            const weight = dx === 0 && dy === 0 ? 4 : blur * (dx === 0 || dy === 0 ? 2 : 1);
            sum += weight * data[(yy * width + xx) * 3 + c]!;
            weightSum += weight;
          }
        }
        // the sum of three uniforms is close enough to a Gaussian for pixel noise
        const gaussian = (rng.next() + rng.next() + rng.next() - 1.5) * 2;
        pixel[c] = sum / weightSum + cast[c]! + noise * gaussian;
      }
      const grey = 0.2126 * pixel[0]! + 0.7152 * pixel[1]! + 0.0722 * pixel[2]!;
      for (let c = 0; c < 3; c++) {
        const value = drifts ? grey + saturation * (pixel[c]! - grey) + brightness : pixel[c]!;
        out[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(value)));
      }
    }
  }
  return { width, height, data: out };
}
