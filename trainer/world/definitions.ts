// What the procedural world contains: named colours, shapes, textures, backgrounds and the rare composite objects.
// Geometry lives in shapes.ts, patterns in textures.ts, background pictures in backgrounds.ts; this file is the
// single list of names the captions, the renderer and the evaluator agree on.

export type Rgb = [number, number, number];

export const COLOUR_NAMES = [
  'red',
  'orange',
  'yellow',
  'green',
  'cyan',
  'blue',
  'purple',
  'pink',
  'brown',
  'white',
  'gray',
  'black',
] as const;
export type ColourName = (typeof COLOUR_NAMES)[number];

export interface ColourDefinition {
  /** the primary sRGB colour: plain objects are painted with it */
  rgb: Rgb;
  /** the shade a texture pattern uses against the primary (stripes, dots, checks, the far end of a gradient) */
  secondary: Rgb;
}

// A chromatic colour's pattern shade is its primary darkened by this share: enough contrast to see a pattern while
// staying far from every other named colour.
const SHADE_DEPTH = 0.4;

function darkShaded(rgb: Rgb): ColourDefinition {
  const shade = (channel: number) => Math.round(channel * (1 - SHADE_DEPTH));
  return { rgb, secondary: [shade(rgb[0]), shade(rgb[1]), shade(rgb[2])] };
}

export const COLOURS: Record<ColourName, ColourDefinition> = {
  red: darkShaded([220, 30, 40]),
  orange: darkShaded([248, 140, 20]),
  yellow: darkShaded([245, 218, 30]),
  green: darkShaded([40, 165, 60]),
  cyan: darkShaded([30, 205, 220]),
  blue: darkShaded([40, 80, 215]),
  purple: darkShaded([150, 45, 190]),
  pink: darkShaded([250, 130, 195]),
  // Darkened brown would meet black, so its pattern shade is a lighter tan.
  brown: { rgb: [118, 70, 38], secondary: [172, 124, 78] },
  // The three greys share one axis, so their shade ranges are kept apart: white darkens a little, gray darkens,
  // black lightens.
  white: { rgb: [244, 244, 244], secondary: [196, 196, 196] },
  gray: { rgb: [140, 140, 140], secondary: [104, 104, 104] },
  black: { rgb: [26, 26, 26], secondary: [62, 62, 62] },
};

export const SHAPE_NAMES = [
  'circle',
  'square',
  'triangle',
  'star',
  'heart',
  'ring',
  'cross',
  'diamond',
  'hexagon',
  'moon',
] as const;
export type ShapeName = (typeof SHAPE_NAMES)[number];

export const TEXTURE_NAMES = ['plain', 'striped', 'dotted', 'checkered', 'gradient'] as const;
export type TextureName = (typeof TEXTURE_NAMES)[number];

/** The adjective a caption uses for a texture; plain objects take none ("a red circle"). */
export const TEXTURE_ADJECTIVES: Record<TextureName, string | null> = {
  plain: null,
  striped: 'striped',
  dotted: 'dotted',
  checkered: 'checkered',
  gradient: 'gradient',
};

export const BACKGROUND_NAMES = ['plain', 'gradient', 'grass', 'water', 'snow', 'sand', 'wood', 'sky', 'brick'] as const;
export type BackgroundName = (typeof BACKGROUND_NAMES)[number];

export interface BackgroundDefinition {
  /** the caption's closing phrase: "a photo of a red circle on snow" */
  phrase: string;
  /** how many palette variants the background has (a scene picks one) */
  variants: number;
  /**
   * Object colours never placed on this background because parts of it come close to them (green on grass): the
   * evaluator separates objects from the background by colour. The tests check this list against renders: every
   * colour left out is close to the background somewhere, every colour allowed is close almost nowhere.
   */
  excludedColours: readonly ColourName[];
}

export const BACKGROUNDS: Record<BackgroundName, BackgroundDefinition> = {
  plain: { phrase: 'on a plain background', variants: 6, excludedColours: [] },
  gradient: { phrase: 'on a gradient background', variants: 6, excludedColours: [] },
  grass: { phrase: 'on grass', variants: 2, excludedColours: ['green'] },
  water: { phrase: 'on water', variants: 2, excludedColours: ['cyan'] },
  snow: { phrase: 'on snow', variants: 2, excludedColours: ['white'] },
  sand: { phrase: 'on sand', variants: 2, excludedColours: ['brown'] },
  wood: { phrase: 'on wood', variants: 2, excludedColours: ['brown', 'orange'] },
  sky: { phrase: 'in front of a horizon', variants: 2, excludedColours: ['green', 'white', 'brown'] },
  brick: { phrase: 'on bricks', variants: 2, excludedColours: ['red', 'orange', 'brown'] },
};

export const RARE_NAMES = ['zorb', 'quillet', 'plimset', 'drubble'] as const;
export type RareName = (typeof RARE_NAMES)[number];

export interface RareDefinition {
  /** what it looks like, for docs and model cards */
  description: string;
  /** every named colour it is painted with */
  colours: readonly ColourName[];
}

/** Composite objects no single word describes; each has one fixed look (geometry in shapes.ts). */
export const RARE_OBJECTS: Record<RareName, RareDefinition> = {
  zorb: {
    description: 'a disc split down the middle, red on the left and blue on the right, inside a thin yellow ring',
    colours: ['red', 'blue', 'yellow'],
  },
  quillet: {
    description: 'a purple square holding a large yellow striped star',
    colours: ['purple', 'yellow'],
  },
  plimset: {
    description: 'a pink heart with a black dot in its middle and a black band along its bottom',
    colours: ['pink', 'black'],
  },
  drubble: {
    description: 'a diamond, top half orange and bottom half cyan, crossed by a white checkered bar',
    colours: ['orange', 'cyan', 'white'],
  },
};

export function isShapeName(name: string): name is ShapeName {
  return (SHAPE_NAMES as readonly string[]).includes(name);
}

export function isRareName(name: string): name is RareName {
  return (RARE_NAMES as readonly string[]).includes(name);
}

export function isColourName(name: string): name is ColourName {
  return (COLOUR_NAMES as readonly string[]).includes(name);
}

export function isTextureName(name: string): name is TextureName {
  return (TEXTURE_NAMES as readonly string[]).includes(name);
}

export function isBackgroundName(name: string): name is BackgroundName {
  return (BACKGROUND_NAMES as readonly string[]).includes(name);
}
