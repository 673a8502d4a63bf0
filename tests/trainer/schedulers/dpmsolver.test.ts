// DPM-Solver++(2M) against the exact probability-flow ODE of Gaussian data, where the ideal denoiser is known in
// closed form, and against DDIM, its first-order case.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { tf } from '../../../trainer/runtime/backend.ts';
import { DDIMScheduler } from '../../../trainer/schedulers/scheduling_ddim.ts';
import { DPM_SOLVER_VARIANT, DPMSolverMultistepScheduler } from '../../../trainer/schedulers/scheduling_dpmsolver_multistep.ts';
import { cumprodFloat32, makeBetas, type SchedulerConfig } from '../../../trainer/schedulers/scheduling_utils.ts';
import { setupRuntime } from '../../helpers.ts';

before(setupRuntime);

/** The embedded model's schedule: zero terminal SNR, v-prediction, trailing timesteps. */
const ZERO_SNR_V: SchedulerConfig = {
  num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', prediction_type: 'v_prediction',
  rescale_betas_zero_snr: true, timestep_spacing: 'trailing', clip_sample: false, set_alpha_to_one: true, steps_offset: 0,
};
/** SD1.5's: epsilon prediction, leading timesteps. */
const SD15_EPSILON: SchedulerConfig = {
  num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', prediction_type: 'epsilon',
  timestep_spacing: 'leading', clip_sample: false, set_alpha_to_one: false, steps_offset: 1,
};

// data x0 ~ N(MEAN, SPREAD²) in every dimension
const MEAN = 0.3;
const SPREAD = 0.8;

/** The ideal model output at timestep t: E[x0 | x_t] in the config's parametrisation. */
function idealModel(config: SchedulerConfig): (x: tf.Tensor, t: number) => tf.Tensor {
  const alphasCumprod = cumprodFloat32(makeBetas(config).map((b) => 1 - b));
  return (x, t) =>
    tf.tidy(() => {
      const alpha = Math.sqrt(alphasCumprod[t]!);
      const sigma = Math.sqrt(1 - alphasCumprod[t]!);
      const x0 = tf.add(MEAN, tf.mul(tf.sub(x, alpha * MEAN), (alpha * SPREAD ** 2) / (alpha ** 2 * SPREAD ** 2 + sigma ** 2)));
      const epsilon = tf.div(tf.sub(x, tf.mul(x0, alpha)), sigma);
      return config.prediction_type === 'epsilon' ? epsilon : tf.sub(tf.mul(epsilon, alpha), tf.mul(x0, sigma));
    });
}

/**
 * Solves from the first timestep of an `steps`-step schedule to its last one (the final step, which jumps to x̂0, is
 * left out: it is the same for both solvers) and returns the mean distance to the exact ODE solution there. Along the
 * ODE of Gaussian data every sample keeps its standard score z, so the exact x_t is α_t·MEAN + √(α_t²·SPREAD² + σ_t²)·z.
 */
function odeError(scheduler: DDIMScheduler | DPMSolverMultistepScheduler, config: SchedulerConfig, steps: number): number {
  const alphasCumprod = cumprodFloat32(makeBetas(config).map((b) => 1 - b));
  const at = (t: number) => ({ alpha: Math.sqrt(alphasCumprod[t]!), sigma: Math.sqrt(1 - alphasCumprod[t]!) });
  const model = idealModel(config);
  const timesteps = Array.from(scheduler.setTimesteps(steps));
  return tf.tidy(() => {
    const scores = tf.reshape(tf.linspace(-2.5, 2.5, 11), [11, 1, 1, 1]);
    const onOde = (t: number) => tf.add(tf.mul(scores, Math.sqrt(at(t).alpha ** 2 * SPREAD ** 2 + at(t).sigma ** 2)), at(t).alpha * MEAN);
    let x = onOde(timesteps[0]!);
    for (const t of timesteps.slice(0, -1)) x = scheduler.step(model(x, t), t, x).prevSample;
    return tf.mean(tf.abs(tf.sub(x, onOde(timesteps[timesteps.length - 1]!)))).dataSync()[0]!;
  });
}

test('on the embedded model’s schedule DPM-Solver++ follows the ODE more than five times closer than DDIM', () => {
  for (const steps of [10, 25]) {
    const ddim = odeError(new DDIMScheduler(ZERO_SNR_V), ZERO_SNR_V, steps);
    const dpm = new DPMSolverMultistepScheduler(ZERO_SNR_V);
    const solver = odeError(dpm, ZERO_SNR_V, steps);
    dpm.dispose();
    assert.ok(solver < ddim / 5, `${steps} steps: DPM-Solver++ ${solver}, DDIM ${ddim}`);
    assert.ok(solver < 0.01, `${steps} steps: DPM-Solver++ ${solver}`);
  }
});

test('with more steps DPM-Solver++ gets closer on an epsilon-prediction schedule too, and beats DDIM at 25 and 50', () => {
  const errors = [10, 25, 50].map((steps) => {
    const dpm = new DPMSolverMultistepScheduler(SD15_EPSILON);
    const solver = odeError(dpm, SD15_EPSILON, steps);
    dpm.dispose();
    return { steps, solver, ddim: odeError(new DDIMScheduler(SD15_EPSILON), SD15_EPSILON, steps) };
  });
  assert.ok(errors[0]!.solver > errors[1]!.solver && errors[1]!.solver > errors[2]!.solver, JSON.stringify(errors));
  for (const e of errors.slice(1)) assert.ok(e.solver < e.ddim, JSON.stringify(e));
});

test('its first step is a DDIM step, and its last step lands on x̂0', () => {
  const model = idealModel(SD15_EPSILON);
  const ddim = new DDIMScheduler(SD15_EPSILON);
  const dpm = new DPMSolverMultistepScheduler(SD15_EPSILON);
  const timesteps = Array.from(dpm.setTimesteps(4));
  assert.deepEqual(Array.from(ddim.setTimesteps(4)), timesteps);
  tf.tidy(() => {
    let x = tf.reshape(tf.linspace(-2, 2, 5), [5, 1, 1, 1]);
    const first = dpm.step(model(x, timesteps[0]!), timesteps[0]!, x).prevSample.dataSync();
    const reference = ddim.step(model(x, timesteps[0]!), timesteps[0]!, x).prevSample.dataSync();
    first.forEach((v, i) => assert.ok(Math.abs(v - reference[i]!) < 1e-5, `sample ${i}: ${v} vs ${reference[i]}`));
    x = tf.tensor(first, [5, 1, 1, 1]);
    for (const t of timesteps.slice(1, -1)) x = dpm.step(model(x, t), t, x).prevSample;
    const last = timesteps[timesteps.length - 1]!;
    const { prevSample, predOriginalSample } = dpm.step(model(x, last), last, x);
    assert.deepEqual(prevSample.dataSync(), predOriginalSample.dataSync());
  });
  dpm.dispose();
});

test('steps out of order, or before setTimesteps, are refused; the history is freed', () => {
  const dpm = new DPMSolverMultistepScheduler(ZERO_SNR_V);
  const x = tf.zeros([1, 1, 1, 1]);
  assert.throws(() => dpm.step(x, 999, x), /call setTimesteps/);
  const timesteps = dpm.setTimesteps(5);
  assert.throws(() => dpm.step(x, timesteps[1]!, x), /is not step 0/);
  const before = tf.memory().numTensors;
  tf.dispose(Object.values(dpm.step(x, timesteps[0]!, x)));
  assert.equal(tf.memory().numTensors, before + 1, 'the x̂0 of the step is kept for the next one');
  dpm.dispose();
  assert.equal(tf.memory().numTensors, before);
  x.dispose();
});

test('a folder asking for another DPM-Solver variant is refused, the diffusers defaults are accepted', () => {
  assert.throws(() => new DPMSolverMultistepScheduler({ ...ZERO_SNR_V, algorithm_type: 'sde-dpmsolver++' }), /algorithm_type "sde-dpmsolver\+\+" is not supported/);
  assert.throws(() => new DPMSolverMultistepScheduler({ ...ZERO_SNR_V, solver_order: 3 }), /solver_order 3 is not supported \(only 2\)/);
  assert.throws(() => new DPMSolverMultistepScheduler({ ...ZERO_SNR_V, use_karras_sigmas: true }), /use_karras_sigmas true/);
  const explicit = new DPMSolverMultistepScheduler({ ...ZERO_SNR_V, ...DPM_SOLVER_VARIANT, lower_order_final: true });
  assert.deepEqual([...explicit.setTimesteps(10)], [...new DPMSolverMultistepScheduler(ZERO_SNR_V).setTimesteps(10)]);
});
