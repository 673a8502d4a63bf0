// Which attention layers bounded attention reads. In SD1.5/SD2.1 the reference uses ℓ 12-19 for the losses (the mid
// block at 8² and up_blocks.1 at 16²) and ℓ 14-19 for the mask maps (up_blocks.1 only). Those are chosen here by
// role, so any UNet config gets the equivalent layers: the mid block plus the first decoder block one level finer
// than the mid block (where SD2.1 sits at 16²), falling back to the coarsest decoder block that has attention.
import type { AttentionLayerInfo } from '../models/attention_processor.ts';

export interface LayerSelection {
  /** layers whose masked attention feeds the guidance losses (self and cross) */
  loss: AttentionLayerInfo[];
  /** layers whose attention is accumulated for mask refinement (self and cross) */
  maps: AttentionLayerInfo[];
}

export function selectLayers(layers: readonly AttentionLayerInfo[]): LayerSelection {
  const mid = layers.filter((l) => l.place === 'mid');
  const up = layers.filter((l) => l.place === 'up');
  if (up.length === 0) throw new Error('bounded attention needs a decoder (up) block with attention layers; this UNet has none');
  const upBlocks = [...new Set(up.map((l) => l.block))].sort((a, b) => a - b);
  const levelOf = (block: number) => up.find((l) => l.block === block)!.level;
  const midLevel = mid[0]?.level;
  const decoderBlock = upBlocks.find((b) => midLevel !== undefined && levelOf(b) === midLevel - 1) ?? upBlocks[0]!;
  const decoder = up.filter((l) => l.block === decoderBlock);
  return { loss: [...mid, ...decoder].sort((a, b) => a.order - b.order), maps: decoder };
}

/** Layers by ℓ index (forward order), for explicit overrides; unknown indices are an error. */
export function layersByOrder(layers: readonly AttentionLayerInfo[], orders: readonly number[], what: string): AttentionLayerInfo[] {
  return orders.map((order) => {
    const layer = layers.find((l) => l.order === order);
    if (!layer) throw new Error(`${what}: this UNet has no attention layer ℓ=${order} (it has 0..${layers.length - 1})`);
    return layer;
  });
}
