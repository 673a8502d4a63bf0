import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { readComponentConfig } from '../../../trainer/io/diffusers.ts';
import { UNet2DConditionModel, type UNet2DConditionConfig } from '../../../trainer/models/unet_2d_condition.ts';
import { layerStride, selectAttentionLayers } from '../../../trainer/models/attention_layers.ts';
import { PHASE1_LAYERS, PHASE2_LAYERS } from '../../../trainer/learn/options.ts';
import { fixturesDir, SD21_BASE_UNET_CONFIG } from '../../helpers.ts';

const SD_VAE_FACTOR = 8;

describe('attention layers by role and resolution', () => {
  const sd21 = new UNet2DConditionModel(SD21_BASE_UNET_CONFIG);

  test('SD2.1-base has the spec’s 16 cross layers in forward order with its heads and map sizes', () => {
    const cross = sd21.attentionLayers.filter((l) => l.kind === 'cross');
    assert.deepEqual(cross.map((l) => l.crossOrder), Array.from({ length: 16 }, (_, i) => i));
    const side = (l: (typeof cross)[number]) => 512 / layerStride(l, SD_VAE_FACTOR);
    assert.deepEqual(cross.map(side), [64, 64, 32, 32, 16, 16, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64]);
    assert.deepEqual(cross.map((l) => l.heads), [5, 5, 10, 10, 20, 20, 20, 20, 20, 20, 10, 10, 10, 5, 5, 5]);
  });

  test('phase 1 = cross indices 7-12, phase 2 = {4, 5, 7, 8, 9} on SD2.1-base', () => {
    const phase1 = selectAttentionLayers(sd21.attentionLayers, PHASE1_LAYERS, SD_VAE_FACTOR);
    assert.deepEqual(phase1.map((l) => l.crossOrder), [7, 8, 9, 10, 11, 12]);
    assert.deepEqual(phase1.map((l) => l.id.split('.transformer')[0]), [
      'up_blocks.1.attentions.0', 'up_blocks.1.attentions.1', 'up_blocks.1.attentions.2',
      'up_blocks.2.attentions.0', 'up_blocks.2.attentions.1', 'up_blocks.2.attentions.2',
    ]);
    assert.deepEqual(selectAttentionLayers(sd21.attentionLayers, PHASE2_LAYERS, SD_VAE_FACTOR).map((l) => l.crossOrder), [4, 5, 7, 8, 9]);
  });

  test('explicit strides (1/16 and 1/32 of the image side) name the same sets', () => {
    const byStride = (places: ('down' | 'mid' | 'up')[], strides: number[]) =>
      selectAttentionLayers(sd21.attentionLayers, { kind: 'cross', places, resolution: { strides } }, SD_VAE_FACTOR).map((l) => l.crossOrder);
    assert.deepEqual(byStride(['up'], [16, 32]), [7, 8, 9, 10, 11, 12]);
    assert.deepEqual(byStride(['down', 'up'], [32]), [4, 5, 7, 8, 9]);
    assert.deepEqual(byStride(['mid'], [64]), [6]);
    // self-attention by role: the synthesis stage's ℓ 14, 16, 18 (up_blocks.1 at 16²)
    const self = selectAttentionLayers(sd21.attentionLayers, { kind: 'self', places: ['up'], resolution: { strides: [32] } }, SD_VAE_FACTOR);
    assert.deepEqual(self.map((l) => l.order), [14, 16, 18]);
  });

  test('tiny-sd gets the decoder layers it has, and impossible selections are refused', () => {
    const tiny = new UNet2DConditionModel(readComponentConfig<UNet2DConditionConfig>(join(fixturesDir(), 'tiny-sd', 'unet')));
    const phase1 = selectAttentionLayers(tiny.attentionLayers, PHASE1_LAYERS, 2);
    assert.deepEqual(phase1.map((l) => l.id.split('.attentions')[0]), ['up_blocks.1', 'up_blocks.1', 'up_blocks.1']);
    const phase2 = selectAttentionLayers(tiny.attentionLayers, PHASE2_LAYERS, 2);
    assert.deepEqual(phase2.map((l) => l.place), ['down', 'down', 'up', 'up', 'up']);
    assert.throws(
      () => selectAttentionLayers(tiny.attentionLayers, { kind: 'cross', places: ['up'], resolution: { strides: [16] } }, 2),
      /matches no attention layer.*strides 2/,
    );
    assert.throws(() => selectAttentionLayers(tiny.attentionLayers, { kind: 'cross', places: [], resolution: { coarsest: 1 } }, 2), /no places/);
  });
});
