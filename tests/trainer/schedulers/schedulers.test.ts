import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { DDIMScheduler } from '../../../trainer/schedulers/scheduling_ddim.ts';
import { DDPMScheduler } from '../../../trainer/schedulers/scheduling_ddpm.ts';
import { roundHalfEven, spacedTimesteps, type SchedulerConfig } from '../../../trainer/schedulers/scheduling_utils.ts';
import { tf } from '../../../trainer/runtime/backend.ts';
import { assertClose, fixturesDir, goldenFile, goldenInts, goldenTensor, goldenVariants, setupRuntime, suggestedTolerance } from '../../helpers.ts';

before(setupRuntime);

for (const variant of goldenVariants()) {
  describe(`schedulers (${variant.name})`, () => {
    const ddimConfig = JSON.parse(readFileSync(join(variant.pipelineDir, 'scheduler', 'scheduler_config.json'), 'utf8')) as SchedulerConfig;
    const ddpmConfig = JSON.parse(
      readFileSync(join(fixturesDir(), 'tiny-sd-golden', `${variant.name}_ddpm_scheduler_config.json`), 'utf8'),
    ) as SchedulerConfig;
    const tol = (name: string) => suggestedTolerance(variant.name, 'scheduler', name);

    test('betas and alphas_cumprod', () => {
      const file = goldenFile(variant.name, 'scheduler');
      const ddim = new DDIMScheduler(ddimConfig);
      assertClose(ddim.betas, file.readFloat32('betas').data, tol('betas'), 'betas');
      assertClose(ddim.alphasCumprod, file.readFloat32('alphas_cumprod').data, tol('alphas_cumprod'), 'alphas_cumprod');
      file.close();
    });

    test('DDIM and DDPM inference timesteps are exact', () => {
      const file = goldenFile(variant.name, 'scheduler');
      for (const name of file.keys().filter((k) => /^ddim_timesteps_\d+$/.test(k))) {
        const steps = Number(name.split('_').pop());
        assert.deepEqual([...new DDIMScheduler(ddimConfig).setTimesteps(steps)], [...goldenInts(file, name).data], name);
      }
      for (const name of file.keys().filter((k) => /^ddpm_timesteps_\d+$/.test(k))) {
        const ddpm = new DDPMScheduler(ddpmConfig);
        ddpm.setTimesteps(Number(name.split('_').pop()));
        assert.deepEqual([...ddpm.timesteps], [...goldenInts(file, name).data], name);
      }
      file.close();
    });

    test('add_noise and get_velocity with one timestep per sample', () => {
      const file = goldenFile(variant.name, 'scheduler');
      const ddpm = new DDPMScheduler(ddpmConfig);
      const original = goldenTensor(file, 'add_noise_original');
      const noise = goldenTensor(file, 'add_noise_noise');
      const timesteps = goldenInts(file, 'add_noise_timesteps').data;
      assertClose(ddpm.addNoise(original, noise, timesteps), goldenTensor(file, 'add_noise_result'), tol('add_noise_result'), 'add_noise');
      assertClose(ddpm.getVelocity(original, noise, timesteps), goldenTensor(file, 'velocity'), tol('velocity'), 'velocity');
      assert.throws(() => ddpm.addNoise(original, noise, [0, 1, 2, 3, 1000]), /outside/);
      file.close();
    });

    test('DDIM steps (including the final step that uses final_alpha_cumprod)', () => {
      const file = goldenFile(variant.name, 'scheduler');
      const ddim = new DDIMScheduler({ ...ddimConfig, prediction_type: ddpmConfig.prediction_type });
      ddim.setTimesteps(10);
      const output = goldenTensor(file, 'step_model_output');
      const sample = goldenTensor(file, 'step_sample');
      for (const name of file.keys().filter((k) => /^ddim_step_t\d+\.prev_sample$/.test(k))) {
        const prefix = name.replace('.prev_sample', '');
        const t = Number(prefix.replace('ddim_step_t', ''));
        const { prevSample, predOriginalSample } = ddim.step(output, t, sample);
        assertClose(prevSample, goldenTensor(file, name), tol(name), name);
        assertClose(predOriginalSample, goldenTensor(file, `${prefix}.pred_original_sample`), tol(`${prefix}.pred_original_sample`), prefix);
      }
      file.close();
    });

    test('DDPM ancestral steps and their fixed_small variance', () => {
      const file = goldenFile(variant.name, 'scheduler');
      const ddpm = new DDPMScheduler(ddpmConfig);
      const output = goldenTensor(file, 'step_model_output');
      const sample = goldenTensor(file, 'step_sample');
      for (const name of file.keys().filter((k) => /^ddpm_step_t\d+\.prev_sample$/.test(k))) {
        const prefix = name.replace('.prev_sample', '');
        const t = Number(prefix.replace('ddpm_step_t', ''));
        const variance = file.readFloat32(`${prefix}.variance`).data;
        assertClose(new Float32Array([ddpm.variance(t)]), variance, tol(`${prefix}.variance`), `${prefix}.variance`);
        const { prevSample, predOriginalSample } = ddpm.step(output, t, sample, goldenTensor(file, `${prefix}.variance_noise`));
        assertClose(prevSample, goldenTensor(file, name), tol(name), name);
        assertClose(predOriginalSample, goldenTensor(file, `${prefix}.pred_original_sample`), tol(`${prefix}.pred_original_sample`), prefix);
      }
      file.close();
    });
  });
}

test('timestep spacings and numpy rounding', () => {
  assert.equal(roundHalfEven(2.5), 2);
  assert.equal(roundHalfEven(3.5), 4);
  assert.equal(roundHalfEven(-2.5), -2);
  assert.deepEqual([...spacedTimesteps({ timestep_spacing: 'trailing' }, 4)], [999, 749, 499, 249]);
  assert.deepEqual([...spacedTimesteps({ timestep_spacing: 'linspace' }, 4)], [999, 666, 333, 0]);
  assert.deepEqual([...spacedTimesteps({ timestep_spacing: 'leading', steps_offset: 0 }, 50)].slice(0, 3), [980, 960, 940]);
  assert.throws(() => spacedTimesteps({}, 0), /inference steps/);
  const x = tf.ones([1, 2]);
  assert.throws(() => new DDIMScheduler({}).step(x, 10, x), /setTimesteps/);
});
