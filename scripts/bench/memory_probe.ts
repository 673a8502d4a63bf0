// How large a training step fits in the wasm32 heap (4 GiB, never shrinks): for each workload, one full step
// (forward, gradients of every parameter, AdamW update) at growing batch sizes, each in a fresh process, until the
// heap is exhausted; then a bisection between the last batch that fit and the first that did not.
//
//   node --import tsx scripts/bench/memory_probe.ts [--workloads unet10m,sd15-narrow] [--max-batch 256]
//
// Prints one JSON line per attempt: {"workload","batch","ok","peak_tensor_mb","heap_mb","step_ms"} and a summary.
// peak_tensor_mb: the most tensor memory live at once (model, AdamW state and the step's activations and gradients);
// heap_mb: the wasm heap size afterwards (it grows to fit the peak plus fragmentation).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { UNet2DConditionModel } from '../../trainer/models/unet_2d_condition.ts';
import { AdamWState, adamwStep } from '../../trainer/runtime/adamw.ts';
import { initRuntime, tf } from '../../trainer/runtime/backend.ts';
import { heapStats, measurePeakBytes, WasmHeapExhaustedError } from '../../trainer/runtime/memory.ts';
import { isPositiveInteger, parseChoiceList, parseNumber } from '../../trainer/cli/args.ts';
import { allWorkloads, type Workload } from './workloads.ts';

interface Attempt {
  workload: string;
  batch: number;
  ok: boolean;
  peak_tensor_mb?: number;
  heap_mb?: number;
  step_ms?: number;
  error?: string;
}

const { values: options } = parseArgs({
  options: {
    workloads: { type: 'string' },
    'max-batch': { type: 'string' },
    attempt: { type: 'string' },
  },
});

if (options.attempt) {
  const { workload, batch } = JSON.parse(options.attempt) as { workload: Workload; batch: number };
  console.log(JSON.stringify(await attempt(workload, batch)));
} else {
  await main();
}

/** One training step at this batch size, in this (fresh) process. */
async function attempt(workload: Workload, batch: number): Promise<Attempt> {
  await initRuntime();
  const result: Attempt = { workload: workload.name, batch, ok: false };
  try {
    const model = new UNet2DConditionModel(workload.config);
    model.store.initialize(0);
    const parameters = model.store.variables();
    for (const variable of parameters) variable.trainable = true;
    const state = new AdamWState();
    const sample = tf.randomNormal([batch, workload.height, workload.width, workload.config.in_channels]) as tf.Tensor4D;
    const context = tf.randomNormal([batch, workload.tokens, workload.config.cross_attention_dim as number]) as tf.Tensor3D;
    const timesteps = Array.from({ length: batch }, (_, i) => 10 + i);
    const step = () => {
      const { grads } = tf.variableGrads(() => tf.mean(tf.square(model.forward(sample, timesteps, context))) as tf.Scalar, parameters);
      adamwStep(parameters, parameters.map((p) => grads[p.name] ?? null), state, { learningRate: 1e-4 });
      tf.dispose(Object.values(grads));
    };
    const before = heapStats().liveBytes;
    const peak = await measurePeakBytes(step);
    result.peak_tensor_mb = Math.round((before + peak) / 2 ** 20);
    // tf.profile slows the step it measures, so time a second one
    const started = performance.now();
    step();
    result.step_ms = Math.round(performance.now() - started);
    result.ok = true;
  } catch (error) {
    result.error = error instanceof WasmHeapExhaustedError ? 'wasm heap exhausted' : (error as Error).message.split('\n')[0];
  }
  result.heap_mb = Math.round(heapStats().heapBytes / 2 ** 20);
  return result;
}

function runAttempt(workload: Workload, batch: number): Attempt {
  const child = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--attempt', JSON.stringify({ workload, batch })], {
    encoding: 'utf8',
    env: { ...process.env, MIFO_QUIET: '1' },
    maxBuffer: 1 << 24,
  });
  const line = child.stdout.split('\n').find((l) => l.startsWith('{'));
  const result: Attempt = line
    ? (JSON.parse(line) as Attempt)
    : { workload: workload.name, batch, ok: false, error: (child.stderr || `exit ${child.status}`).trim().split('\n').slice(-1)[0] };
  console.log(JSON.stringify(result));
  return result;
}

async function main(): Promise<void> {
  const known = allWorkloads();
  const wanted = parseChoiceList(options.workloads, 'workloads', known.map((w) => w.name));
  const maxBatch = parseNumber(options['max-batch'], 'max-batch', 256, isPositiveInteger);
  const summary: string[] = [];
  for (const workload of known.filter((w) => !wanted || wanted.includes(w.name))) {
    let fits = 0;
    let fails = 0;
    let best: Attempt | null = null;
    for (let batch = 1; batch <= maxBatch; batch *= 2) {
      const result = runAttempt(workload, batch);
      if (!result.ok) {
        fails = batch;
        break;
      }
      fits = batch;
      best = result;
    }
    while (fails > 0 && fails - fits > 1) {
      const middle = Math.floor((fits + fails) / 2);
      const result = runAttempt(workload, middle);
      if (result.ok) {
        fits = middle;
        best = result;
      } else {
        fails = middle;
      }
    }
    summary.push(
      fits === 0
        ? `${workload.name}: not even batch 1 trains`
        : `${workload.name}: largest batch that trains ${fits}${fails === 0 ? ` (stopped at --max-batch ${maxBatch})` : ''}` +
            `, peak tensors ${best?.peak_tensor_mb} MiB, heap ${best?.heap_mb} MiB, step ${best?.step_ms} ms`,
    );
  }
  console.log(summary.join('\n'));
}
