import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { tf } from '../../../trainer/runtime/backend.ts';
import { AutoencoderKL } from '../../../trainer/models/autoencoder_kl.ts';
import { assertClose, goldenFile, goldenTensor, goldenVariants, nchwToNhwc, nhwcToNchw, setupRuntime, suggestedTolerance } from '../../helpers.ts';

before(setupRuntime);

for (const variant of goldenVariants()) {
  describe(`AutoencoderKL parity (${variant.name})`, () => {
    let vae: AutoencoderKL;
    before(() => {
      const loaded = AutoencoderKL.fromPretrained(join(variant.pipelineDir, 'vae'));
      vae = loaded.model;
      assert.deepEqual(loaded.report.unexpected, [], 'every weight in the file maps to a parameter');
    });

    test('encode to mean / logvar / std / sample, decode, and every intermediate', () => {
      const file = goldenFile(variant.name, 'vae');
      const tol = (name: string) => suggestedTolerance(variant.name, 'vae', name);
      const check = (ours: tf.Tensor, name: string) =>
        assertClose(ours.rank === 4 ? nhwcToNchw(ours) : ours, goldenTensor(file, name), tol(name), `${variant.name} ${name}`);
      const traced = new Map<string, tf.Tensor>();
      const trace = (name: string, value: tf.Tensor) => traced.set(`intermediate.${name}`, tf.keep(value.clone()));

      const posterior = vae.encode(nchwToNhwc(goldenTensor(file, 'image')), trace);
      check(posterior.mean, 'latent_mean');
      check(posterior.logvar, 'latent_logvar');
      check(posterior.std, 'latent_std');
      const sample = AutoencoderKL.sample(posterior, nchwToNhwc(goldenTensor(file, 'eps')));
      check(sample, 'latent_sample');
      check(vae.scaleLatents(sample), 'latent_sample_scaled');
      check(vae.decode(posterior.mean, trace), 'decoded_from_mean');
      check(vae.decode(sample), 'decoded_from_sample');
      const intermediates = file.keys().filter((k) => k.startsWith('intermediate.'));
      assert.ok(intermediates.length > 0);
      for (const name of intermediates) {
        const ours = traced.get(name);
        assert.ok(ours, `no trace named ${name}`);
        check(ours, name);
      }
      file.close();
    });

    test('scaling round-trips and the spatial factor follows the config', () => {
      const z = tf.randomNormal([1, 2, 2, vae.config.latent_channels]) as tf.Tensor4D;
      assertClose(vae.unscaleLatents(vae.scaleLatents(z)), z, 1e-6, 'unscale(scale(z))');
      assert.equal(vae.scaleFactor, 2 ** (vae.config.block_out_channels.length - 1));
    });
  });
}
