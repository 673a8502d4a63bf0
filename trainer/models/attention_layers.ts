// Attention layers chosen by role (self/cross, encoder/mid/decoder) and resolution rather than by hard-coded index,
// so one setting serves every UNet config. On SD1.x/SD2.1-base the learning presets give exactly the reference's
// sets: phase 1 = cross indices 7-12 (decoder at 1/16 and 1/32 of the image side), phase 2 = {4,5,7,8,9} (encoder and
// decoder at 1/32).
import type { AttentionLayerInfo } from './attention_processor.ts';
import { isNonNegativeInteger, isPositiveInteger } from '../util/numbers.ts';

export type LayerPlace = AttentionLayerInfo['place'];

/**
 * Which resolutions of the role to take:
 * - `coarsest: k`: the k coarsest map resolutions the role has in this UNet (architecture-relative, so small test
 *   models with fewer levels still get layers);
 * - `strides: [...]`: maps whose side is the image side divided by one of these (16 → a 32² map at 512²).
 */
export type ResolutionSelection = { coarsest: number } | { strides: number[] };

export interface LayerSelection {
  kind: AttentionLayerInfo['kind'];
  places: LayerPlace[];
  resolution: ResolutionSelection;
}

/** Image pixels per attention-map cell: the VAE's factor times 2 per latent downsample. */
export function layerStride(layer: AttentionLayerInfo, vaeScaleFactor: number): number {
  return vaeScaleFactor * 2 ** layer.level;
}

/** The layers of `selection` in forward order; an empty result is an error naming what the UNet offers. */
export function selectAttentionLayers(layers: readonly AttentionLayerInfo[], selection: LayerSelection, vaeScaleFactor: number): AttentionLayerInfo[] {
  const places = new Set(selection.places);
  if (places.size === 0) throw new Error('layer selection: no places (down, mid, up) given');
  const role = layers.filter((layer) => layer.kind === selection.kind && places.has(layer.place));
  const roleStrides = [...new Set(role.map((layer) => layerStride(layer, vaeScaleFactor)))].sort((a, b) => b - a);
  let strides: Set<number>;
  if ('coarsest' in selection.resolution) {
    const count = selection.resolution.coarsest;
    if (!Number.isInteger(count) || count < 1) throw new Error(`layer selection: coarsest must be a positive integer, got ${count}`);
    strides = new Set(roleStrides.slice(0, count));
  } else {
    strides = new Set(selection.resolution.strides);
  }
  const chosen = role.filter((layer) => strides.has(layerStride(layer, vaeScaleFactor)));
  if (chosen.length === 0) {
    throw new Error(
      `layer selection ${describeSelection(selection)} matches no attention layer; ` +
        `this UNet's ${selection.kind}-attention in ${[...places].join('/')} has strides ${roleStrides.join(', ') || 'none'}`,
    );
  }
  return chosen;
}

const LAYER_PLACES: readonly LayerPlace[] = ['down', 'mid', 'up'];

/** A non-empty list of attention-layer indices ℓ (forward order), as box control's explicit layers are given. */
export function isLayerOrderList(value: unknown): value is number[] {
  return Array.isArray(value) && value.length > 0 && value.every(isNonNegativeInteger);
}

/** What is wrong with a selection read from JSON (options, a model's attention_layers.json), or null. */
export function layerSelectionProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'must be an object {kind, places, resolution}';
  const { kind, places, resolution } = value as Record<string, unknown>;
  if (kind !== 'cross' && kind !== 'self') return `kind must be cross or self, got ${JSON.stringify(kind)}`;
  if (!Array.isArray(places) || places.length === 0 || !places.every((p) => LAYER_PLACES.includes(p as LayerPlace))) {
    return `places must list some of ${LAYER_PLACES.join(', ')}, got ${JSON.stringify(places)}`;
  }
  if (typeof resolution !== 'object' || resolution === null) return 'resolution must be {coarsest: k} or {strides: [...]}';
  const { coarsest, strides } = resolution as Record<string, unknown>;
  if ((coarsest === undefined) === (strides === undefined)) return `resolution must hold exactly one of coarsest and strides, got ${JSON.stringify(resolution)}`;
  if (coarsest !== undefined && !isPositiveInteger(coarsest)) return `resolution.coarsest must be a positive integer, got ${JSON.stringify(coarsest)}`;
  if (strides !== undefined && !(Array.isArray(strides) && strides.length > 0 && strides.every(isPositiveInteger))) {
    return `resolution.strides must list positive integers, got ${JSON.stringify(strides)}`;
  }
  return null;
}

export function describeSelection(selection: LayerSelection): string {
  const resolution = 'coarsest' in selection.resolution ? `${selection.resolution.coarsest} coarsest` : `1/${selection.resolution.strides.join(', 1/')}`;
  return `${selection.kind} ${selection.places.join('+')} @ ${resolution}`;
}
