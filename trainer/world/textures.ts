// Surface patterns in the object's own frame (u right, v down, the object spans [-1, 1]). A pattern returns how
// much of a pixel shows the colour's secondary shade (0 = all primary, 1 = all secondary), box-filtered over the
// pixel's footprint so stripes and checks are anti-aliased without supersampling the whole object.
import type { TextureName } from './definitions.ts';

/** Stripe period in object units: 3.5 dark-light pairs across the object. */
const STRIPE_PERIOD = 2 / 3.5;
/** Checker cell side: 5 cells across the object. */
const CHECKER_CELL = 2 / 5;
/** Dot grid spacing and dot radius. */
const DOT_SPACING = 0.55;
const DOT_RADIUS = 0.16;

/** Integral from 0 to x of a square wave of period p that is 1 on the second half of each period. */
function squareWaveIntegral(x: number, period: number): number {
  const cycles = Math.floor(x / period);
  const rest = x - cycles * period;
  return (cycles * period) / 2 + Math.max(0, rest - period / 2);
}

/** Mean of that square wave over [x - width/2, x + width/2]. */
function filteredSquareWave(x: number, period: number, width: number): number {
  if (width <= 1e-9) return x - Math.floor(x / period) * period >= period / 2 ? 1 : 0;
  return (squareWaveIntegral(x + width / 2, period) - squareWaveIntegral(x - width / 2, period)) / width;
}

/**
 * Share of the secondary shade at object point (u, v) for a pixel whose side spans `footprint` object units.
 */
export function textureShade(texture: TextureName, u: number, v: number, footprint: number): number {
  switch (texture) {
    case 'plain':
      return 0;
    case 'striped':
      return filteredSquareWave(v + 1, STRIPE_PERIOD, footprint);
    case 'checkered': {
      const a = filteredSquareWave(u + 1, 2 * CHECKER_CELL, footprint);
      const b = filteredSquareWave(v + 1, 2 * CHECKER_CELL, footprint);
      return a * (1 - b) + b * (1 - a);
    }
    case 'dotted': {
      // dots on a grid offset by half a spacing so one sits at the object's centre
      const gu = u / DOT_SPACING + 0.5;
      const gv = v / DOT_SPACING + 0.5;
      const du = (gu - Math.floor(gu) - 0.5) * DOT_SPACING;
      const dv = (gv - Math.floor(gv) - 0.5) * DOT_SPACING;
      const distance = Math.sqrt(du * du + dv * dv);
      return Math.min(1, Math.max(0, (DOT_RADIUS - distance) / Math.max(footprint, 1e-6) + 0.5));
    }
    case 'gradient':
      // light (primary) at the top of the object, the secondary shade at the bottom
      return Math.min(1, Math.max(0, (v + 0.9) / 1.8));
  }
}
