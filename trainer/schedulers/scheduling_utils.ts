// Noise schedules shared by the DDPM and DDIM schedulers, evaluated in float32 the way PyTorch does.

export type BetaSchedule = 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';
export type PredictionType = 'epsilon' | 'v_prediction' | 'sample';
export type TimestepSpacing = 'leading' | 'trailing' | 'linspace';

export interface SchedulerConfig {
  num_train_timesteps?: number;
  beta_start?: number;
  beta_end?: number;
  beta_schedule?: BetaSchedule;
  trained_betas?: number[] | null;
  prediction_type?: PredictionType;
  clip_sample?: boolean;
  clip_sample_range?: number;
  set_alpha_to_one?: boolean;
  steps_offset?: number;
  timestep_spacing?: TimestepSpacing;
  thresholding?: boolean;
  rescale_betas_zero_snr?: boolean;
  variance_type?: string;
  [key: string]: unknown;
}

const f = Math.fround;

const PREDICTION_TYPES: readonly PredictionType[] = ['epsilon', 'v_prediction', 'sample'];

/** The config's prediction_type (diffusers' default epsilon), refused when no scheduler here supports it. */
export function predictionTypeOf(config: SchedulerConfig): PredictionType {
  const type = config.prediction_type ?? 'epsilon';
  if (!PREDICTION_TYPES.includes(type)) throw new Error(`unsupported prediction_type '${type}'`);
  return type;
}

/** torch.linspace in float32: the first half counts up from start, the second half down from end. */
export function linspaceFloat32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = start;
    return out;
  }
  const s = f(start);
  const e = f(end);
  const step = f(f(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) out[i] = i < halfway ? f(s + f(step * i)) : f(e - f(step * (steps - i - 1)));
  return out;
}

function betasForAlphaBar(steps: number, maxBeta = 0.999): Float32Array {
  const alphaBar = (t: number) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  const out = new Float32Array(steps);
  for (let i = 0; i < steps; i++) out[i] = Math.min(1 - alphaBar((i + 1) / steps) / alphaBar(i / steps), maxBeta);
  return out;
}

/** Zero terminal SNR (Lin et al. 2023), as diffusers' rescale_zero_terminal_snr. */
function rescaleZeroTerminalSnr(betas: Float32Array): Float32Array {
  const alphasCumprod = cumprodFloat32(betas.map((b) => 1 - b));
  const sqrt = alphasCumprod.map(Math.sqrt);
  const first = sqrt[0]!;
  const last = sqrt[sqrt.length - 1]!;
  const shifted = sqrt.map((v) => ((v - last) * first) / (first - last));
  const alphaBar = shifted.map((v) => v * v);
  const alphas = alphaBar.map((v, i) => (i === 0 ? v : v / alphaBar[i - 1]!));
  return alphas.map((a) => 1 - a);
}

export function cumprodFloat32(values: Float32Array): Float32Array {
  const out = new Float32Array(values.length);
  let acc = 1;
  for (let i = 0; i < values.length; i++) {
    acc = f(acc * values[i]!);
    out[i] = acc;
  }
  return out;
}

export function makeBetas(config: SchedulerConfig): Float32Array {
  const steps = config.num_train_timesteps ?? 1000;
  let betas: Float32Array;
  if (config.trained_betas) betas = Float32Array.from(config.trained_betas);
  else {
    const start = config.beta_start ?? 0.0001;
    const end = config.beta_end ?? 0.02;
    switch (config.beta_schedule ?? 'linear') {
      case 'linear':
        betas = linspaceFloat32(start, end, steps);
        break;
      case 'scaled_linear':
        betas = linspaceFloat32(Math.sqrt(start), Math.sqrt(end), steps).map((b) => f(b * b));
        break;
      case 'squaredcos_cap_v2':
        betas = betasForAlphaBar(steps);
        break;
      default:
        throw new Error(`unsupported beta_schedule '${String(config.beta_schedule)}'`);
    }
  }
  return config.rescale_betas_zero_snr ? rescaleZeroTerminalSnr(betas) : betas;
}

/** Inference timesteps, descending (diffusers' timestep_spacing). */
export function spacedTimesteps(config: SchedulerConfig, numInferenceSteps: number): Int32Array {
  const trainSteps = config.num_train_timesteps ?? 1000;
  if (!Number.isInteger(numInferenceSteps) || numInferenceSteps < 1 || numInferenceSteps > trainSteps) {
    throw new Error(`number of inference steps must be an integer in 1..${trainSteps}, got ${numInferenceSteps}`);
  }
  const spacing = config.timestep_spacing ?? 'leading';
  const out = new Int32Array(numInferenceSteps);
  if (spacing === 'linspace') {
    const ts = new Float64Array(numInferenceSteps).map((_, i) => (numInferenceSteps === 1 ? 0 : (i * (trainSteps - 1)) / (numInferenceSteps - 1)));
    for (let i = 0; i < numInferenceSteps; i++) out[i] = roundHalfEven(ts[numInferenceSteps - 1 - i]!);
  } else if (spacing === 'leading') {
    const ratio = Math.floor(trainSteps / numInferenceSteps);
    for (let i = 0; i < numInferenceSteps; i++) out[i] = (numInferenceSteps - 1 - i) * ratio + (config.steps_offset ?? 0);
  } else if (spacing === 'trailing') {
    const ratio = trainSteps / numInferenceSteps;
    for (let i = 0; i < numInferenceSteps; i++) out[i] = roundHalfEven(trainSteps - i * ratio) - 1;
  } else {
    throw new Error(`unsupported timestep_spacing '${String(spacing)}'`);
  }
  return out;
}

/** numpy's round: halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
