// The world's colour model: sRGB <-> CIE Lab, each named colour's shade line (the colours a textured object of that
// colour uses, from its primary to its secondary shade), and a per-pixel labeller that assigns every RGB value its
// nearest named colour. The generator and the evaluator share it, so "red" means the same pixels to both.
import { COLOUR_NAMES, COLOURS, type ColourName, type Rgb } from './definitions.ts';

export type Lab = [number, number, number];

function srgbToLinear(channel: number): number {
  const c = channel / 255;
  return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
}

const LINEAR_TABLE = Float64Array.from({ length: 256 }, (_, i) => srgbToLinear(i));

function labF(t: number): number {
  return t > 216 / 24389 ? Math.cbrt(t) : (t * 24389) / 27 / 116 + 16 / 116;
}

/** CIE Lab (D65) of an sRGB colour whose channels are in [0, 255] (fractional values allowed). */
export function rgbToLab(r: number, g: number, b: number): Lab {
  const lr = Number.isInteger(r) && r >= 0 && r <= 255 ? LINEAR_TABLE[r]! : srgbToLinear(r);
  const lg = Number.isInteger(g) && g >= 0 && g <= 255 ? LINEAR_TABLE[g]! : srgbToLinear(g);
  const lb = Number.isInteger(b) && b >= 0 && b <= 255 ? LINEAR_TABLE[b]! : srgbToLinear(b);
  const x = (0.4124564 * lr + 0.3575761 * lg + 0.1804375 * lb) / 0.95047;
  const y = 0.2126729 * lr + 0.7151522 * lg + 0.072175 * lb;
  const z = (0.0193339 * lr + 0.119192 * lg + 0.9503041 * lb) / 1.08883;
  const fx = labF(x);
  const fy = labF(y);
  const fz = labF(z);
  return [116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)];
}

/** The sRGB colour at position t of a colour's shade line: 0 is the primary, 1 the secondary shade. */
function shadeRgb(colour: ColourName, t: number): Rgb {
  const { rgb, secondary } = COLOURS[colour];
  return [rgb[0] + (secondary[0] - rgb[0]) * t, rgb[1] + (secondary[1] - rgb[1]) * t, rgb[2] + (secondary[2] - rgb[2]) * t];
}

// The shade line is straight in sRGB but curved in Lab; a short polyline follows it closely.
const SHADE_POLYLINE_POINTS = 5;

interface ShadeLine {
  points: Lab[];
}

const SHADE_LINES: ShadeLine[] = COLOUR_NAMES.map((name) => ({
  points: Array.from({ length: SHADE_POLYLINE_POINTS }, (_, i) => {
    const [r, g, b] = shadeRgb(name, i / (SHADE_POLYLINE_POINTS - 1));
    return rgbToLab(r, g, b);
  }),
}));

/** Distance from a Lab point to a colour's shade line, and where on the line (0 primary .. 1 secondary) it lands. */
export function shadeLineDistance(colourIndex: number, lab: Lab): { distance: number; position: number } {
  const { points } = SHADE_LINES[colourIndex]!;
  let best = Infinity;
  let bestPosition = 0;
  for (let i = 0; i + 1 < points.length; i++) {
    const p = points[i]!;
    const q = points[i + 1]!;
    const dx = q[0] - p[0];
    const dy = q[1] - p[1];
    const dz = q[2] - p[2];
    const lengthSquared = dx * dx + dy * dy + dz * dz;
    let s = lengthSquared > 0 ? ((lab[0] - p[0]) * dx + (lab[1] - p[1]) * dy + (lab[2] - p[2]) * dz) / lengthSquared : 0;
    s = Math.min(1, Math.max(0, s));
    const distance = Math.hypot(lab[0] - p[0] - s * dx, lab[1] - p[1] - s * dy, lab[2] - p[2] - s * dz);
    if (distance < best) {
      best = distance;
      bestPosition = (i + s) / (points.length - 1);
    }
  }
  return { distance: best, position: bestPosition };
}

/** Pixels farther than this (Lab units) from every shade line belong to no named colour, unless they join a region (below). */
export const COLOUR_MATCH_DISTANCE = 16;
/**
 * A pixel up to this far from its nearest shade line joins a region of that colour it touches: a model's colours drift
 * further than a render's (saturation, shading) and would otherwise break a ring into arcs. Backgrounds keep every
 * colour they allow beyond this distance (a test checks the renders), so regions do not grow into them.
 */
export const COLOUR_GROW_DISTANCE = 1.4 * COLOUR_MATCH_DISTANCE;
/** Label of a pixel that matches no named colour. */
export const NO_COLOUR = 255;

// 6 bits per channel: the lookup error (at most 2 sRGB levels per channel) is far below the match distance.
const LUT_BITS = 6;
const LUT_SHIFT = 8 - LUT_BITS;
const LUT_SIDE = 1 << LUT_BITS;

interface LabelTable {
  /** nearest named colour */
  nearest: Uint8Array;
  /** distance to its shade line */
  distance: Float32Array;
}

let labelTable: LabelTable | null = null;

function buildLabelTable(): LabelTable {
  const size = LUT_SIDE ** 3;
  const nearest = new Uint8Array(size);
  const distance = new Float32Array(size);
  const half = (1 << LUT_SHIFT) / 2 - 0.5;
  for (let ri = 0; ri < LUT_SIDE; ri++) {
    for (let gi = 0; gi < LUT_SIDE; gi++) {
      for (let bi = 0; bi < LUT_SIDE; bi++) {
        const lab = rgbToLab((ri << LUT_SHIFT) + half, (gi << LUT_SHIFT) + half, (bi << LUT_SHIFT) + half);
        let best = Infinity;
        let bestIndex = 0;
        for (let c = 0; c < COLOUR_NAMES.length; c++) {
          const { distance: d } = shadeLineDistance(c, lab);
          if (d < best) {
            best = d;
            bestIndex = c;
          }
        }
        const index = (ri * LUT_SIDE + gi) * LUT_SIDE + bi;
        nearest[index] = bestIndex;
        distance[index] = best;
      }
    }
  }
  return { nearest, distance };
}

function table(): LabelTable {
  labelTable ??= buildLabelTable();
  return labelTable;
}

/** Nearest named colour (index into COLOUR_NAMES) of every pixel of an interleaved RGB buffer, with its distance. */
export function nearestColours(rgb: Uint8Array | Uint8ClampedArray, pixelCount: number): LabelTable {
  const lookup = table();
  const nearest = new Uint8Array(pixelCount);
  const distance = new Float32Array(pixelCount);
  for (let i = 0; i < pixelCount; i++) {
    const o = i * 3;
    const entry = (((rgb[o]! >> LUT_SHIFT) * LUT_SIDE + (rgb[o + 1]! >> LUT_SHIFT)) * LUT_SIDE) + (rgb[o + 2]! >> LUT_SHIFT);
    nearest[i] = lookup.nearest[entry]!;
    distance[i] = lookup.distance[entry]!;
  }
  return { nearest, distance };
}
