import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { tf } from '../../../trainer/runtime/backend.ts';
import { UNet2DConditionModel } from '../../../trainer/models/unet_2d_condition.ts';
import type { AttentionCall } from '../../../trainer/models/attention_processor.ts';
import {
  assertClose,
  goldenFile,
  goldenInts,
  goldenTensor,
  goldenVariants,
  nchwToNhwc,
  nhwcToNchw,
  setupRuntime,
  suggestedTolerance,
} from '../../helpers.ts';

before(setupRuntime);

for (const variant of goldenVariants()) {
  describe(`UNet2DConditionModel parity (${variant.name}: ${variant.info.title})`, () => {
    let unet: UNet2DConditionModel;
    before(() => {
      const loaded = UNet2DConditionModel.fromPretrained(join(variant.pipelineDir, 'unet'));
      unet = loaded.model;
      assert.deepEqual(loaded.report.unexpected, [], 'every weight in the file maps to a parameter');
    });

    test('batch-1 forward and every intermediate match the golden tensors', () => {
      const file = goldenFile(variant.name, 'unet');
      const tol = (name: string) => suggestedTolerance(variant.name, 'unet', name);
      const sample = nchwToNhwc(goldenTensor(file, 'sample'));
      const timestep = goldenInts(file, 'timestep').data;
      const context = goldenTensor(file, 'encoder_hidden_states') as tf.Tensor3D;
      const captured = new Map<string, tf.Tensor>();
      const out = unet.forward(sample, timestep, context, { trace: (name, value) => captured.set(name, tf.keep(value.clone())) });
      for (const name of file.keys().filter((k) => k.startsWith('intermediate.'))) {
        const ours = captured.get(name.slice('intermediate.'.length));
        assert.ok(ours, `no trace named ${name}`);
        const expected = goldenTensor(file, name);
        assertClose(ours.rank === 4 ? nhwcToNchw(ours) : ours, expected, tol(name), `${variant.name} ${name}`);
      }
      assertClose(nhwcToNchw(out), goldenTensor(file, 'noise_pred'), tol('noise_pred'), `${variant.name} noise_pred`);
      file.close();
    });

    test('batch-2 forward with one timestep per sample', () => {
      const file = goldenFile(variant.name, 'unet');
      const out = unet.forward(
        nchwToNhwc(goldenTensor(file, 'sample_b2')),
        goldenInts(file, 'timesteps_b2').data,
        goldenTensor(file, 'encoder_hidden_states_b2') as tf.Tensor3D,
      );
      assertClose(nhwcToNchw(out), goldenTensor(file, 'noise_pred_b2'), suggestedTolerance(variant.name, 'unet', 'noise_pred_b2'), 'noise_pred_b2');
      file.close();
    });

    test('captured cross-attention probabilities and their gradients w.r.t. latent and text embeddings', () => {
      const unetFile = goldenFile(variant.name, 'unet');
      const attnFile = goldenFile(variant.name, 'cross_attention');
      const tol = (name: string) => suggestedTolerance(variant.name, 'cross_attention', name);
      const layerId: string = variant.info.attn_layer;
      const layer = unet.attentionLayers.find((l) => l.id === layerId);
      assert.ok(layer, `no attention layer ${layerId}`);
      assert.equal(layer.heads, variant.info.attn_heads);
      const { rows, cols } = variant.info.grad_region as { rows: [number, number]; cols: [number, number] };
      const token: number = variant.info.cat_token_index;

      const sample = nchwToNhwc(goldenTensor(unetFile, 'sample'));
      const timestep = goldenInts(unetFile, 'timestep').data;
      const context = goldenTensor(unetFile, 'encoder_hidden_states') as tf.Tensor3D;
      let probs: tf.Tensor4D | null = null;
      let calls = 0;
      const controller = {
        capture: (l: { id: string }) => l.id === layerId,
        onProbs: (call: AttentionCall, p: tf.Tensor4D) => {
          calls++;
          probs = p;
        },
      };
      const lossOf = (x: tf.Tensor, ctx: tf.Tensor) => {
        unet.forward(x as tf.Tensor4D, timestep, ctx as tf.Tensor3D, { controller });
        const p = probs!;
        const [, heads, queries, keys] = p.shape;
        const side = Math.sqrt(queries);
        const grid = tf.reshape(p, [heads, side, side, keys]);
        return tf.sum(tf.slice(grid, [0, rows[0], cols[0], token], [heads, rows[1] - rows[0], cols[1] - cols[0], 1])) as tf.Scalar;
      };
      const { value, grads } = tf.valueAndGrads(lossOf)([sample, context]);
      assert.equal(calls, 1, 'only the captured layer reports probabilities');
      const [, heads, queries, keys] = probs!.shape;
      assertClose(tf.reshape(probs!, [heads, queries, keys]), goldenTensor(attnFile, 'probs'), tol('probs'), 'probs');
      assertClose(tf.reshape(value, [1]), goldenTensor(attnFile, 'grad_loss'), tol('grad_loss'), 'grad_loss');
      assertClose(nhwcToNchw(grads[0]!), goldenTensor(attnFile, 'grad_sample'), tol('grad_sample'), 'grad_sample');
      assertClose(grads[1]!, goldenTensor(attnFile, 'grad_encoder_hidden_states'), tol('grad_encoder_hidden_states'), 'grad_encoder_hidden_states');
      unetFile.close();
      attnFile.close();
    });

    test('captured probabilities of a batch-2 call keep the per-sample head order', (t) => {
      const attnFile = goldenFile(variant.name, 'cross_attention');
      if (!attnFile.tensors.has('probs_b2')) {
        attnFile.close();
        t.skip(`${variant.name} has no probs_b2 golden`);
        return;
      }
      const unetFile = goldenFile(variant.name, 'unet');
      const layerId: string = variant.info.attn_layer;
      let probs: tf.Tensor4D | null = null;
      unet.forward(
        nchwToNhwc(goldenTensor(unetFile, 'sample_b2')),
        goldenInts(unetFile, 'timesteps_b2').data,
        goldenTensor(unetFile, 'encoder_hidden_states_b2') as tf.Tensor3D,
        { controller: { capture: (l) => l.id === layerId, onProbs: (_call, p) => (probs = p) } },
      );
      const [b, heads, queries, keys] = probs!.shape;
      const expected = goldenTensor(attnFile, 'probs_b2');
      assertClose(tf.reshape(probs!, [b * heads, queries, keys]), expected, suggestedTolerance(variant.name, 'cross_attention', 'probs_b2'), 'probs_b2');
      unetFile.close();
      attnFile.close();
    });
  });
}
