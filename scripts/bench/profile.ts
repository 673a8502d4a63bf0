// Where a UNet step spends its time, kernel by kernel: wraps every kernel registered for the wasm backend with a
// timer, runs the step several times and prints the breakdown of the fastest run (the least disturbed by other
// processes). Compare engines with MIFO_NATIVE=0.
//
//   node --import tsx scripts/bench/profile.ts [fwd|fwdbwd] [--workload unet10m] [--batch 2] [--runs 9]
import { parseArgs } from 'node:util';
import { UNet2DConditionModel } from '../../trainer/models/unet_2d_condition.ts';
import { initRuntime, tf } from '../../trainer/runtime/backend.ts';
import { allWorkloads } from './workloads.ts';

const { values: options, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    workload: { type: 'string', default: 'unet10m' },
    batch: { type: 'string', default: '2' },
    runs: { type: 'string', default: '9' },
  },
});
const mode = positionals[0] ?? 'fwdbwd';
if (mode !== 'fwd' && mode !== 'fwdbwd') throw new Error(`mode must be fwd or fwdbwd, got ${mode}`);
const workload = allWorkloads().find((w) => w.name === options.workload);
if (!workload) throw new Error(`unknown workload ${options.workload}`);
const batch = Number(options.batch);

const runtime = await initRuntime();
const model = new UNet2DConditionModel(workload.config);
model.store.initialize(0);
const parameters = model.store.variables();
for (const variable of parameters) variable.trainable = true;
const sample = tf.variable(tf.randomNormal([batch, workload.height, workload.width, workload.config.in_channels]));
const context = tf.variable(tf.randomNormal([batch, workload.tokens, workload.config.cross_attention_dim as number]));
const timesteps = Array.from({ length: batch }, (_, i) => (i % 2 === 0 ? 10 : 500));
const forward = () => model.forward(sample as tf.Tensor4D, timesteps, context as tf.Tensor3D);
const step =
  mode === 'fwd'
    ? () => tf.tidy(() => void forward())
    : () => tf.tidy(() => void tf.variableGrads(() => tf.sum(forward()) as tf.Scalar, [...parameters, sample, context]));

type Stats = Record<string, { ms: number; calls: number }>;
let current: Stats = {};
for (const kernel of tf.getKernelsForBackend('wasm')) {
  const inner = kernel.kernelFunc;
  tf.unregisterKernel(kernel.kernelName, 'wasm');
  tf.registerKernel({
    ...kernel,
    kernelFunc: (args) => {
      const start = performance.now();
      const out = inner(args);
      const entry = (current[kernel.kernelName] ??= { ms: 0, calls: 0 });
      entry.ms += performance.now() - start;
      entry.calls++;
      return out;
    },
  });
}

step();
step();
let best = { wall: Number.POSITIVE_INFINITY, stats: {} as Stats };
for (let run = 0; run < Number(options.runs); run++) {
  current = {};
  const start = performance.now();
  step();
  const wall = performance.now() - start;
  if (wall < best.wall) best = { wall, stats: current };
}
const entries = Object.entries(best.stats).sort((a, b) => b[1].ms - a[1].ms);
const kernelMs = entries.reduce((sum, [, s]) => sum + s.ms, 0);
const calls = entries.reduce((sum, [, s]) => sum + s.calls, 0);
console.log(`${runtime.description}`);
console.log(`${workload.name} batch ${batch} ${mode}: ${best.wall.toFixed(1)} ms (fastest of ${options.runs}), kernels ${kernelMs.toFixed(1)} ms, ${calls} kernel calls`);
console.log('| kernel | ms | share | calls |');
console.log('|---|---|---|---|');
for (const [name, s] of entries.filter(([, s]) => s.ms >= 0.1)) {
  console.log(`| ${name} | ${s.ms.toFixed(1)} | ${((100 * s.ms) / best.wall).toFixed(1)}% | ${s.calls} |`);
}
console.log(`| (engine overhead outside kernels) | ${(best.wall - kernelMs).toFixed(1)} | ${((100 * (best.wall - kernelMs)) / best.wall).toFixed(1)}% | |`);
