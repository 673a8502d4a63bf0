import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { tf } from '../../../trainer/runtime/backend.ts';
import { StableDiffusionPipeline } from '../../../trainer/pipelines/stable_diffusion.ts';
import { assertClose, goldenFile, goldenInts, goldenManifest, goldenTensor, goldenVariants, nchwToNhwc, nhwcToNchw, setupRuntime, suggestedTolerance } from '../../helpers.ts';

before(setupRuntime);

for (const variant of goldenVariants()) {
  describe(`StableDiffusionPipeline (${variant.name})`, () => {
    let pipe: StableDiffusionPipeline;
    before(() => {
      pipe = StableDiffusionPipeline.fromPretrained(variant.pipelineDir);
    });

    test('prompt embeddings for CFG (uncond first)', () => {
      const file = goldenFile(variant.name, 'ddim_sampling');
      const prompt: string = goldenManifest().prompts[0];
      const embeds = tf.concat([pipe.encodePrompt(['']), pipe.encodePrompt([prompt])], 0);
      assertClose(embeds, goldenTensor(file, 'prompt_embeds'), suggestedTolerance(variant.name, 'ddim_sampling', 'prompt_embeds'), 'prompt_embeds');
      file.close();
    });

    test('the DDIM + CFG trajectory, noise predictions, decoded and final image match step by step', async () => {
      const file = goldenFile(variant.name, 'ddim_sampling');
      const tol = (name: string) => suggestedTolerance(variant.name, 'ddim_sampling', name);
      const goldenLatents = goldenTensor(file, 'latents');
      const [stepsPlusOne] = goldenLatents.shape;
      const steps = stepsPlusOne! - 1;
      assert.equal(steps, variant.info.ddim_steps);
      const perStep = (name: string, i: number) => nchwToNhwc(tf.squeeze(tf.slice(goldenTensor(file, name), [i], [1]), [0]));
      const seen: number[] = [];
      const result = await pipe.generate({
        prompt: goldenManifest().prompts[0],
        steps,
        guidance: variant.info.guidance_scale,
        latents: perStep('latents', 0),
        onStep: (info) => {
          seen.push(info.timestep);
          assertClose(info.noisePredUncond!, perStep('noise_pred_uncond', info.step), tol('noise_pred_uncond'), `uncond step ${info.step}`);
          assertClose(info.noisePredText, perStep('noise_pred_text', info.step), tol('noise_pred_text'), `text step ${info.step}`);
          assertClose(info.noisePred, perStep('noise_pred_guided', info.step), tol('noise_pred_guided'), `guided step ${info.step}`);
          assertClose(info.latents, perStep('latents', info.step + 1), tol('latents'), `latents after step ${info.step}`);
        },
      });
      assert.deepEqual(seen, [...goldenInts(file, 'timesteps').data]);
      assertClose(nhwcToNchw(result.images), goldenTensor(file, 'image'), tol('image'), 'image');
      const decoded = pipe.vae.decode(pipe.vae.unscaleLatents(result.latents));
      assertClose(nhwcToNchw(decoded), goldenTensor(file, 'decoded'), tol('decoded'), 'decoded');
      file.close();
    });

    test('generation is deterministic for a seed and differs across seeds', async () => {
      const run = async (seed: number) => (await pipe.generate({ prompt: 'a photo', steps: 3, seed, height: 32, width: 32 })).images.dataSync();
      const a = await run(7);
      const b = await run(7);
      const c = await run(8);
      assert.deepEqual(a, b);
      assert.notDeepEqual(a, c);
    });

    test('DPM-Solver++ sampling: deterministic, its own trajectory, nothing left allocated; unknown samplers refused', async () => {
      const run = async (sampler: 'ddim' | 'dpm-solver++') => {
        const result = await pipe.generate({ prompt: 'a photo', steps: 4, seed: 3, height: 32, width: 32, sampler });
        const images = result.images.dataSync();
        tf.dispose([result.images, result.latents]);
        return images;
      };
      await run('dpm-solver++');
      const before = tf.memory().numTensors;
      const a = await run('dpm-solver++');
      assert.equal(tf.memory().numTensors, before);
      assert.deepEqual(await run('dpm-solver++'), a);
      assert.notDeepEqual(await run('ddim'), a);
      await assert.rejects(pipe.generate({ prompt: 'a photo', steps: 2, sampler: 'euler' as 'ddim' }), /sampler must be one of ddim, dpm-solver\+\+/);
    });
  });
}
