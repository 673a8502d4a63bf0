// Imperfect copies of clean renders: slight blur, pixel noise and a colour cast, the kinds of error a small
// generative model makes. The evaluator keeps such copies among its references and is measured on them too.
import type { RgbImage } from './image.ts';
import { Rng } from './random.ts';

export interface Degradation {
  /** weight of the 3x3 neighbourhood against the centre pixel (0 = none, 1 = a full [1 2 1] blur) */
  blur: number;
  /** standard deviation of the added noise, in 0..255 levels */
  noise: number;
  /** per-channel colour cast, in 0..255 levels */
  cast: [number, number, number];
}

/** A random degradation of moderate strength. */
export function randomDegradation(rng: Rng): Degradation {
  return {
    blur: rng.uniform(0, 1),
    noise: rng.uniform(0, 10),
    cast: [rng.uniform(-8, 8), rng.uniform(-8, 8), rng.uniform(-8, 8)],
  };
}

export function degradeImage(image: RgbImage, degradation: Degradation, seed: number): RgbImage {
  const { width, height, data } = image;
  const rng = new Rng(seed);
  const out = new Uint8Array(data.length);
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
        const value = sum / weightSum + cast[c]! + noise * gaussian;
        out[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(value)));
      }
    }
  }
  return { width, height, data: out };
}
