// Procedural backgrounds. Every picture is a function of normalised coordinates (0..1, top-left origin), the
// background's variant and its seed, so a scene looks the same at 64x64 and 128x128.
import type { BackgroundName, Rgb } from './definitions.ts';
import { hash32, hashInts } from './random.ts';

export interface BackgroundSpec {
  kind: BackgroundName;
  /** palette variant, 0 .. BACKGROUNDS[kind].variants - 1 */
  variant: number;
  /** seed of the background's noise */
  seed: number;
}

/** Flat tones of the plain background, chosen away from every object colour. */
const PLAIN_TONES: Rgb[] = [
  [160, 222, 180],
  [244, 196, 160],
  [196, 180, 236],
  [226, 222, 160],
  [150, 192, 236],
  [40, 50, 90],
];

/** Start and end tones of the gradient background variants; neighbouring hues, so no mix turns neutral grey. */
const GRADIENT_TONES: [Rgb, Rgb][] = [
  [
    [150, 192, 236],
    [196, 180, 236],
  ],
  [
    [226, 222, 160],
    [160, 222, 180],
  ],
  [
    [244, 196, 160],
    [226, 222, 160],
  ],
  [
    [196, 180, 236],
    [240, 176, 200],
  ],
  [
    [40, 50, 90],
    [196, 180, 236],
  ],
  [
    [40, 50, 90],
    [150, 192, 236],
  ],
];

function lattice(ix: number, iy: number, seed: number): number {
  return hash32(Math.imul(ix, 0x27d4eb2d) ^ Math.imul(iy, 0x165667b1) ^ Math.imul(seed, 0x9e3779b1)) / 4294967296;
}

function smooth(t: number): number {
  return t * t * (3 - 2 * t);
}

/**
 * Smooth value noise (unit lattice spacing, values in [0, 1]) over [0, width] x [0, height], with the lattice
 * precomputed so a lookup costs four table reads instead of four hashes.
 */
class NoiseField {
  private readonly values: Float32Array;
  private readonly columns: number;
  private readonly rows: number;

  constructor(seed: number, width: number, height: number) {
    this.columns = Math.ceil(width) + 2;
    this.rows = Math.ceil(height) + 2;
    this.values = new Float32Array(this.columns * this.rows);
    for (let iy = 0; iy < this.rows; iy++) {
      for (let ix = 0; ix < this.columns; ix++) this.values[iy * this.columns + ix] = lattice(ix, iy, seed);
    }
  }

  at(x: number, y: number): number {
    const cx = Math.min(this.columns - 2, Math.max(0, x));
    const cy = Math.min(this.rows - 2, Math.max(0, y));
    const ix = Math.floor(cx);
    const iy = Math.floor(cy);
    const fx = smooth(cx - ix);
    const fy = smooth(cy - iy);
    const o = iy * this.columns + ix;
    const a = this.values[o]!;
    const b = this.values[o + 1]!;
    const c = this.values[o + this.columns]!;
    const d = this.values[o + this.columns + 1]!;
    return a + (b - a) * fx + (c - a) * fy + (a - b - c + d) * fx * fy;
  }
}

/**
 * Fractal noise over the unit square at base frequencies (fx, fy): `octaves` layers, each twice the frequency
 * and half the weight of the last; values in [0, 1].
 */
class FractalNoise {
  private readonly fields: NoiseField[] = [];
  private readonly weights: number[] = [];

  constructor(seed: number, private readonly fx: number, private readonly fy: number, octaves: number) {
    let total = 0;
    for (let o = 0; o < octaves; o++) total += 0.5 ** o;
    for (let o = 0; o < octaves; o++) {
      this.fields.push(new NoiseField(seed + o * 1013, fx * 2 ** o, fy * 2 ** o));
      this.weights.push(0.5 ** o / total);
    }
  }

  /** (x, y) in the unit square (values outside are clamped to its lattice). */
  at(x: number, y: number): number {
    let sum = 0;
    let scale = 1;
    for (let o = 0; o < this.fields.length; o++) {
      sum += this.weights[o]! * this.fields[o]!.at(x * this.fx * scale, y * this.fy * scale);
      scale *= 2;
    }
    return sum;
  }
}

function mixInto(out: Float32Array, offset: number, a: Rgb, b: Rgb, t: number): void {
  const s = Math.min(1, Math.max(0, t));
  out[offset] = a[0] + (b[0] - a[0]) * s;
  out[offset + 1] = a[1] + (b[1] - a[1]) * s;
  out[offset + 2] = a[2] + (b[2] - a[2]) * s;
}

type Painter = (x: number, y: number, out: Float32Array, offset: number) => void;

function painter(spec: BackgroundSpec): Painter {
  const { seed, variant } = spec;
  switch (spec.kind) {
    case 'plain': {
      const tone = PLAIN_TONES[variant]!;
      return (_x, _y, out, o) => mixInto(out, o, tone, tone, 0);
    }
    case 'gradient': {
      const [top, bottom] = GRADIENT_TONES[variant]!;
      const angle = ((hashInts(seed, 7) % 1000) / 1000 - 0.5) * 1.2;
      const dx = Math.sin(angle);
      const dy = Math.cos(angle);
      return (x, y, out, o) => mixInto(out, o, top, bottom, 0.5 + (x - 0.5) * dx + (y - 0.5) * dy);
    }
    case 'grass': {
      const dark: Rgb = variant === 0 ? [34, 88, 30] : [70, 92, 34];
      const light: Rgb = variant === 0 ? [96, 150, 52] : [118, 146, 60];
      const bladeNoise = new NoiseField(seed, 48, 7);
      const patchNoise = new FractalNoise(seed + 1, 5, 5, 3);
      return (x, y, out, o) => {
        // blades: noise stretched vertically, over a coarse patchiness
        const blades = bladeNoise.at(x * 48, y * 7);
        const patches = patchNoise.at(x, y);
        mixInto(out, o, dark, light, 0.15 + 0.55 * blades + 0.4 * (patches - 0.5));
      };
    }
    case 'water': {
      const deep: Rgb = variant === 0 ? [22, 66, 124] : [20, 92, 112];
      const shallow: Rgb = variant === 0 ? [56, 122, 176] : [52, 140, 150];
      const crest: Rgb = [150, 196, 222];
      const warpNoise = new FractalNoise(seed, 4, 4, 2);
      const depthNoise = new FractalNoise(seed + 2, 3, 6, 3);
      return (x, y, out, o) => {
        const warp = warpNoise.at(x, y);
        const wave = Math.sin((y * 22 + warp * 6 + Math.sin(x * 9 + warp * 3) * 0.8) * Math.PI);
        mixInto(out, o, deep, shallow, 0.35 + 0.45 * depthNoise.at(x, y) + 0.2 * wave);
        if (wave > 0.93) {
          const t = (0.6 * (wave - 0.93)) / 0.07;
          for (let c = 0; c < 3; c++) out[o + c] = out[o + c]! + (crest[c]! - out[o + c]!) * t;
        }
      };
    }
    case 'snow': {
      const bright: Rgb = [236, 240, 248];
      const shadow: Rgb = variant === 0 ? [196, 208, 226] : [206, 204, 222];
      const driftNoise = new FractalNoise(seed, 4, 3, 4);
      return (x, y, out, o) => {
        const drift = driftNoise.at(x, y);
        mixInto(out, o, bright, shadow, (drift - 0.35) * 1.6);
      };
    }
    case 'sand': {
      const light: Rgb = variant === 0 ? [228, 204, 152] : [222, 190, 150];
      const dark: Rgb = variant === 0 ? [196, 164, 112] : [188, 150, 112];
      const rippleNoise = new FractalNoise(seed, 3, 3, 2);
      const tintNoise = new FractalNoise(seed + 4, 4, 4, 2);
      return (x, y, out, o) => {
        const ripple = Math.sin((y * 16 + rippleNoise.at(x, y) * 5) * Math.PI);
        const grain = lattice(Math.floor(x * 96), Math.floor(y * 96), seed + 3);
        mixInto(out, o, light, dark, 0.3 + 0.25 * ripple + 0.25 * (grain - 0.5) + 0.3 * (tintNoise.at(x, y) - 0.5));
      };
    }
    case 'wood': {
      const light: Rgb = variant === 0 ? [206, 160, 112] : [214, 184, 140];
      const dark: Rgb = variant === 0 ? [166, 116, 74] : [176, 140, 98];
      const seam: Rgb = variant === 0 ? [108, 72, 44] : [124, 96, 66];
      const planks = 5;
      const grainNoise = Array.from({ length: planks }, (_, plank) => new FractalNoise(seed + plank * 7919, 2, 2, 3));
      return (x, y, out, o) => {
        const plank = Math.min(planks - 1, Math.floor(y * planks));
        const within = y * planks - plank;
        const grain = Math.sin((within * 3 + grainNoise[plank]!.at(x, within) * 4) * Math.PI * 2);
        mixInto(out, o, light, dark, 0.5 + 0.4 * grain);
        if (within < 0.06) mixInto(out, o, seam, seam, 0);
      };
    }
    case 'sky': {
      const zenith: Rgb = [74, 128, 206];
      const haze: Rgb = [182, 212, 238];
      const groundNear: Rgb = variant === 0 ? [70, 112, 48] : [200, 176, 124];
      const groundFar: Rgb = variant === 0 ? [100, 140, 70] : [222, 200, 150];
      const horizon = 0.58 + 0.17 * (hashInts(seed, 11) / 4294967296);
      const hillNoise = new FractalNoise(seed + 5, 3, 1, 3);
      const groundNoise = new FractalNoise(seed + 6, 8, 8, 2);
      return (x, y, out, o) => {
        const hills = horizon + 0.05 * (hillNoise.at(x, 0.5) - 0.5);
        if (y < hills) {
          mixInto(out, o, zenith, haze, y / hills);
        } else {
          const depth = (y - hills) / (1 - hills);
          mixInto(out, o, groundFar, groundNear, depth + 0.3 * (groundNoise.at(x, y) - 0.5));
        }
      };
    }
    case 'brick': {
      const mortar: Rgb = [204, 184, 136];
      const brickA: Rgb = variant === 0 ? [158, 64, 46] : [140, 86, 70];
      const brickB: Rgb = variant === 0 ? [186, 94, 64] : [172, 112, 90];
      const rows = 8;
      const columns = 4;
      const joint = 0.1;
      const speckle = new NoiseField(seed + 8, 40, 40);
      return (x, y, out, o) => {
        const row = Math.floor(y * rows);
        const shifted = x * columns + (row % 2) * 0.5;
        const column = Math.floor(shifted);
        const fy = y * rows - row;
        const fx = shifted - column;
        if (fy < joint || fx < joint / 2) {
          mixInto(out, o, mortar, mortar, 0);
        } else {
          const tone = lattice(row, column, seed);
          mixInto(out, o, brickA, brickB, tone * 0.8 + 0.2 * speckle.at(x * 40, y * 40));
        }
      };
    }
  }
}

/** The background as interleaved RGB floats (0..255) of a size x size image. */
export function renderBackground(spec: BackgroundSpec, size: number): Float32Array {
  const out = new Float32Array(size * size * 3);
  const paint = painter(spec);
  for (let py = 0; py < size; py++) {
    const y = (py + 0.5) / size;
    for (let px = 0; px < size; px++) paint((px + 0.5) / size, y, out, (py * size + px) * 3);
  }
  return out;
}
