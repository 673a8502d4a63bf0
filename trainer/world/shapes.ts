// Geometry of every object as inside-tests in the object's own frame: u to the right, v downwards, the object
// inscribed in the unit disc (its "size" is that disc's diameter). A rare object is several painted parts; a plain
// shape is one.
import type { ColourName, RareName, ShapeName, TextureName } from './definitions.ts';

export type InsideTest = (u: number, v: number) => boolean;

function regularPolygon(sides: number, radius: number, startAngle: number): [number, number][] {
  return Array.from({ length: sides }, (_, i) => {
    const angle = startAngle + (2 * Math.PI * i) / sides;
    return [radius * Math.cos(angle), radius * Math.sin(angle)];
  });
}

function starPolygon(points: number, outer: number, inner: number): [number, number][] {
  return Array.from({ length: points * 2 }, (_, i) => {
    const angle = -Math.PI / 2 + (Math.PI * i) / points;
    const radius = i % 2 === 0 ? outer : inner;
    return [radius * Math.cos(angle), radius * Math.sin(angle)];
  });
}

/** Even-odd inside test for any simple polygon. */
function polygonTest(vertices: [number, number][]): InsideTest {
  const xs = Float64Array.from(vertices, (p) => p[0]);
  const ys = Float64Array.from(vertices, (p) => p[1]);
  const n = vertices.length;
  let minX = Infinity;
  let maxX = -Infinity;
  let minY = Infinity;
  let maxY = -Infinity;
  for (let i = 0; i < n; i++) {
    minX = Math.min(minX, xs[i]!);
    maxX = Math.max(maxX, xs[i]!);
    minY = Math.min(minY, ys[i]!);
    maxY = Math.max(maxY, ys[i]!);
  }
  return (u, v) => {
    if (u < minX || u > maxX || v < minY || v > maxY) return false;
    let inside = false;
    for (let i = 0, j = n - 1; i < n; j = i++) {
      const yi = ys[i]!;
      const yj = ys[j]!;
      if (yi > v !== yj > v && u < ((xs[j]! - xs[i]!) * (v - yi)) / (yj - yi) + xs[i]!) inside = !inside;
    }
    return inside;
  };
}

function discTest(cx: number, cy: number, radius: number): InsideTest {
  const r2 = radius * radius;
  return (u, v) => (u - cx) * (u - cx) + (v - cy) * (v - cy) <= r2;
}

// A heart from two lobes and a pointed bottom: the lobes are discs, the bottom the region under their outer
// tangents meeting at the tip.
function heartTest(scale: number): InsideTest {
  const lobeX = 0.46 * scale;
  const lobeY = -0.33 * scale;
  const lobeRadius = 0.5 * scale;
  const tipY = 0.92 * scale;
  const left = discTest(-lobeX, lobeY, lobeRadius);
  const right = discTest(lobeX, lobeY, lobeRadius);
  // Tangent points of the lines from the tip to each lobe, so the sides join the lobes smoothly.
  const dy = lobeY - tipY;
  const distance = Math.hypot(lobeX, dy);
  const tangentAngle = Math.asin(lobeRadius / distance);
  const sideAngle = Math.atan2(dy, lobeX) + tangentAngle;
  const sideLength = Math.sqrt(distance * distance - lobeRadius * lobeRadius);
  const tx = sideLength * Math.cos(sideAngle);
  const ty = tipY + sideLength * Math.sin(sideAngle);
  const bottom = polygonTest([
    [0, tipY],
    [tx, ty],
    [lobeX, lobeY],
    [-lobeX, lobeY],
    [-tx, ty],
  ]);
  return (u, v) => left(u, v) || right(u, v) || bottom(u, v);
}

const SQUARE_HALF_SIDE = 0.7;
const RING_INNER_RADIUS = 0.6;
const CROSS_HALF_WIDTH = 0.3;
const CROSS_HALF_LENGTH = 0.95;
const DIAMOND_HALF_WIDTH = 0.6;
const MOON_BITE = { cx: 0.48, cy: -0.12, radius: 0.78 };

export const SHAPE_TESTS: Record<ShapeName, InsideTest> = {
  circle: (u, v) => u * u + v * v <= 1,
  square: (u, v) => Math.abs(u) <= SQUARE_HALF_SIDE && Math.abs(v) <= SQUARE_HALF_SIDE,
  // Centred on its bounding box rather than its centroid, so it fills the unit disc like the others.
  triangle: polygonTest([
    [0, -0.95],
    [0.95, 0.7],
    [-0.95, 0.7],
  ]),
  star: polygonTest(starPolygon(5, 1, 0.42)),
  heart: heartTest(1.02),
  ring: (u, v) => {
    const r2 = u * u + v * v;
    return r2 <= 1 && r2 >= RING_INNER_RADIUS * RING_INNER_RADIUS;
  },
  cross: (u, v) => {
    const au = Math.abs(u);
    const av = Math.abs(v);
    return (au <= CROSS_HALF_WIDTH && av <= CROSS_HALF_LENGTH) || (av <= CROSS_HALF_WIDTH && au <= CROSS_HALF_LENGTH);
  },
  diamond: (u, v) => Math.abs(u) / DIAMOND_HALF_WIDTH + Math.abs(v) <= 1,
  hexagon: polygonTest(regularPolygon(6, 1, 0)),
  moon: (u, v) => {
    if (u * u + v * v > 1) return false;
    const du = u - MOON_BITE.cx;
    const dv = v - MOON_BITE.cy;
    return du * du + dv * dv > MOON_BITE.radius * MOON_BITE.radius;
  },
};

/** One painted region of an object: drawn in order, later parts on top of earlier ones. */
export interface ObjectPart {
  inside: InsideTest;
  colour: ColourName;
  texture: TextureName;
}

const ZORB_CORE = 0.66;
const ZORB_RING_INNER = 0.82;
const quilletStar = polygonTest(starPolygon(5, 0.66, 0.3));
const plimsetHeart = heartTest(1.02);
const drubbleDiamond = SHAPE_TESTS.diamond;

export const RARE_PARTS: Record<RareName, ObjectPart[]> = {
  zorb: [
    { inside: (u, v) => u < 0 && u * u + v * v <= ZORB_CORE * ZORB_CORE, colour: 'red', texture: 'plain' },
    { inside: (u, v) => u >= 0 && u * u + v * v <= ZORB_CORE * ZORB_CORE, colour: 'blue', texture: 'plain' },
    {
      inside: (u, v) => {
        const r2 = u * u + v * v;
        return r2 <= 1 && r2 >= ZORB_RING_INNER * ZORB_RING_INNER;
      },
      colour: 'yellow',
      texture: 'plain',
    },
  ],
  quillet: [
    { inside: SHAPE_TESTS.square, colour: 'purple', texture: 'plain' },
    { inside: quilletStar, colour: 'yellow', texture: 'striped' },
  ],
  plimset: [
    { inside: plimsetHeart, colour: 'pink', texture: 'plain' },
    { inside: (u, v) => v >= 0.3 && plimsetHeart(u, v), colour: 'black', texture: 'plain' },
    { inside: discTest(0, -0.08, 0.2), colour: 'black', texture: 'plain' },
  ],
  drubble: [
    { inside: (u, v) => v < 0 && drubbleDiamond(u, v), colour: 'orange', texture: 'plain' },
    { inside: (u, v) => v >= 0 && drubbleDiamond(u, v), colour: 'cyan', texture: 'plain' },
    { inside: (u, v) => Math.abs(v) <= 0.2 && Math.abs(u) <= 0.78, colour: 'white', texture: 'checkered' },
  ],
};

/** The painted parts of a plain shape or a rare object. */
export function objectParts(shape: ShapeName | RareName, colour: ColourName | null, texture: TextureName | null): ObjectPart[] {
  if (shape in RARE_PARTS) return RARE_PARTS[shape as RareName];
  if (colour === null || texture === null) throw new Error(`shape '${shape}' needs a colour and a texture`);
  return [{ inside: SHAPE_TESTS[shape as ShapeName], colour, texture }];
}

/**
 * The object's extent after rotating it by `rotation` degrees (clockwise on screen, v pointing down):
 * [minX, minY, maxX, maxY] in units of the bounding-disc radius, measured on a fine grid and cached.
 */
export function rotatedExtent(shape: ShapeName | RareName, rotation: number): [number, number, number, number] {
  const key = `${shape}@${rotation}`;
  const cached = extentCache.get(key);
  if (cached) return cached;
  const tests = shape in RARE_PARTS ? RARE_PARTS[shape as RareName].map((part) => part.inside) : [SHAPE_TESTS[shape as ShapeName]];
  if (tests.some((test) => test === undefined)) throw new Error(`unknown shape '${shape}'`);
  const cos = Math.cos((rotation * Math.PI) / 180);
  const sin = Math.sin((rotation * Math.PI) / 180);
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  const steps = 200;
  for (let i = 0; i <= steps; i++) {
    const u = -1 + (2 * i) / steps;
    for (let j = 0; j <= steps; j++) {
      const v = -1 + (2 * j) / steps;
      if (!tests.some((test) => test(u, v))) continue;
      const x = u * cos - v * sin;
      const y = u * sin + v * cos;
      minX = Math.min(minX, x);
      maxX = Math.max(maxX, x);
      minY = Math.min(minY, y);
      maxY = Math.max(maxY, y);
    }
  }
  const extent: [number, number, number, number] = [minX, minY, maxX, maxY];
  extentCache.set(key, extent);
  return extent;
}

const extentCache = new Map<string, [number, number, number, number]>();
