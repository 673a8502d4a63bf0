import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { readComponentConfig } from '../../../trainer/io/diffusers.ts';
import { UNet2DConditionModel, type UNet2DConditionConfig } from '../../../trainer/models/unet_2d_condition.ts';
import { layersByOrder, selectLayers } from '../../../trainer/synth/layers.ts';
import { goldenVariants, setupRuntime, SD21_BASE_UNET_CONFIG } from '../../helpers.ts';

before(setupRuntime);


test('SD2.1-base: loss layers are ℓ 12-19 (mid 8² + up_blocks.1 16²), map layers ℓ 14-19', () => {
  const unet = new UNet2DConditionModel(SD21_BASE_UNET_CONFIG);
  assert.equal(unet.attentionLayers.length, 32);
  const { loss, maps } = selectLayers(unet.attentionLayers);
  assert.deepEqual(loss.map((l) => l.order), [12, 13, 14, 15, 16, 17, 18, 19]);
  assert.deepEqual(maps.map((l) => l.order), [14, 15, 16, 17, 18, 19]);
  assert.deepEqual(loss.filter((l) => l.kind === 'cross').map((l) => l.order), [13, 15, 17, 19]);
  assert.deepEqual(loss.filter((l) => l.kind === 'self').map((l) => l.order), [12, 14, 16, 18]);
  assert.deepEqual([...new Set(loss.map((l) => l.heads))], [20], '20 heads at 16² and 8²');
  assert.deepEqual([...new Set(maps.map((l) => `${l.place}.${l.block}@${l.level}`))], ['up.1@2'], 'one decoder block, latent/4 (16² at 512 px)');
  assert.equal(loss[0]!.id, 'mid_block.attentions.0.transformer_blocks.0.attn1');
});

test('the tiny fixtures get the mid block plus the first decoder attention block one level finer', () => {
  for (const variant of goldenVariants()) {
    const config = readComponentConfig<UNet2DConditionConfig>(join(variant.pipelineDir, 'unet'));
    const unet = new UNet2DConditionModel(config);
    const { loss, maps } = selectLayers(unet.attentionLayers);
    const mid = unet.attentionLayers.filter((l) => l.place === 'mid');
    const midLevel = mid[0]!.level;
    assert.ok(mid.length > 0 && mid.every((l) => loss.includes(l)), `${variant.name}: every mid layer is a loss layer`);
    assert.ok(maps.length >= 2 && maps.every((l) => l.place === 'up' && l.level === midLevel - 1), `${variant.name}: map layers sit one level above the mid block`);
    assert.deepEqual([...new Set(maps.map((l) => l.block))].length, 1, `${variant.name}: map layers are one decoder block`);
    assert.deepEqual(loss.map((l) => l.order), [...mid, ...maps].map((l) => l.order));
    assert.ok(maps.some((l) => l.kind === 'self') && maps.some((l) => l.kind === 'cross'));
    // every decoder attention layer of that block, no encoder layer
    const block = unet.attentionLayers.filter((l) => l.place === 'up' && l.block === maps[0]!.block);
    assert.deepEqual(maps, block);
    console.log(`${variant.name}: loss ℓ ${loss.map((l) => l.order).join(',')}; maps ℓ ${maps.map((l) => l.order).join(',')} (${maps[0]!.id.split('.attentions')[0]})`);
  }
});

test('explicit layer lists by ℓ; unknown indices are an error', () => {
  const unet = new UNet2DConditionModel(SD21_BASE_UNET_CONFIG);
  assert.deepEqual(layersByOrder(unet.attentionLayers, [13, 15], 'loss').map((l) => l.id), [
    'mid_block.attentions.0.transformer_blocks.0.attn2',
    'up_blocks.1.attentions.0.transformer_blocks.0.attn2',
  ]);
  assert.throws(() => layersByOrder(unet.attentionLayers, [40], 'loss layers'), /no attention layer ℓ=40/);
});
