import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { LearnAbortedError, type LearnEvent } from '../../../trainer/learn/events.ts';
import { learn, type LearnRequest } from '../../../trainer/learn/learn.ts';
import { combineOverrides, type DeepPartial, type LearnOptions } from '../../../trainer/learn/options.ts';
import { setupRuntime } from '../../helpers.ts';
import { fixtureModel, TINY_RUN, TWO_OBJECTS } from './support.ts';

before(setupRuntime);

const root = mkdtempSync(join(tmpdir(), 'mifo-resume-'));
after(() => rmSync(root, { recursive: true, force: true }));

interface StepLoss {
  phase: number;
  step: number;
  loss: number;
  terms: unknown;
  timestep: number;
  prompt: string;
}

/** Runs learn() and collects its step losses; stops (through the AbortSignal) after `stopAfter` when given. */
async function collect(request: LearnRequest, stopAfter?: { phase: number; step: number }): Promise<{ steps: StepLoss[]; aborted: LearnAbortedError | null }> {
  const controller = new AbortController();
  const steps: StepLoss[] = [];
  try {
    for await (const event of learn({ ...request, signal: controller.signal }) as AsyncIterable<LearnEvent>) {
      if (event.type !== 'step') continue;
      steps.push({ phase: event.phase, step: event.step, loss: event.loss, terms: event.terms, timestep: event.timestep, prompt: event.prompt });
      if (stopAfter && event.phase === stopAfter.phase && event.step === stopAfter.step) controller.abort();
    }
  } catch (error) {
    if (error instanceof LearnAbortedError) return { steps, aborted: error };
    throw error;
  }
  return { steps, aborted: null };
}

function request(name: string, options: DeepPartial<LearnOptions>): LearnRequest {
  return {
    model: fixtureModel('tiny-sd2'),
    image: TWO_OBJECTS.image,
    masks: TWO_OBJECTS.masks,
    outDir: join(root, name),
    preset: 'fast',
    options: combineOverrides(TINY_RUN, options),
    keepCheckpoints: false,
  };
}

const files = (dir: string, names: string[]) => names.map((name) => readFileSync(join(dir, name)));

describe('resuming continues exactly', () => {
  for (const [label, options, stop] of [
    ['lora, stopped in phase 1', { checkpointEvery: 2 }, { phase: 1, step: 3 }],
    ['lora, stopped in phase 2', { checkpointEvery: 0 }, { phase: 2, step: 1 }],
    ['full fine-tuning, stopped in phase 2', { phase2: { mode: 'full' } }, { phase: 2, step: 2 }],
  ] as const) {
    test(`${label}: the same losses and outputs as an uninterrupted run`, async () => {
      const whole = await collect(request(`${label}-whole`, options));
      assert.equal(whole.aborted, null);
      const interrupted = request(`${label}-parts`, options);
      const first = await collect(interrupted, stop);
      assert.ok(first.aborted, 'the run did not stop');
      assert.deepEqual([first.aborted.phase, first.aborted.step], [stop.phase, stop.step]);
      const second = await collect({ ...interrupted, resume: true });
      assert.equal(second.aborted, null);
      assert.deepEqual([...first.steps, ...second.steps], whole.steps);
      const outputs = ['learned_embeds.safetensors', options.phase2 ? 'unet/diffusion_pytorch_model.safetensors' : 'pytorch_lora_weights.safetensors'];
      assert.deepEqual(files(interrupted.outDir, outputs), files(join(root, `${label}-whole`), outputs));
    });
  }

  test('after a crash, a resume repeats the steps since the last periodic checkpoint identically', async () => {
    const options = { checkpointEvery: 2 };
    const whole = await collect(request('crash-whole', options));
    const crashed = request('crash-parts', options);
    const seen: LearnEvent[] = [];
    for await (const event of learn(crashed) as AsyncIterable<LearnEvent>) {
      seen.push(event);
      // leaving the loop ends the run without the abort path's checkpoint, like a killed process
      if (event.type === 'step' && event.phase === 1 && event.step === 3) break;
    }
    assert.ok(seen.some((e) => e.type === 'checkpoint' && e.step === 2));
    const resumed = await collect({ ...crashed, resume: true });
    assert.deepEqual(resumed.steps, whole.steps.slice(2));
  });

  test('a checkpoint from other options is refused', async () => {
    const base = request('mismatch', {});
    const stopped = await collect(base, { phase: 1, step: 2 });
    assert.ok(stopped.aborted);
    await assert.rejects(collect({ ...base, options: combineOverrides(TINY_RUN, { seed: 7 }), resume: true }), /other inputs, model or options/);
  });

  test('a run never overwrites a concept, a checkpoint or the files beside its checkpoint folder', async () => {
    const existing = request('existing', {});
    mkdirSync(existing.outDir);
    writeFileSync(join(existing.outDir, 'manifest.json'), '{"an earlier": "concept"}');
    await assert.rejects(collect(existing), /existing already holds manifest\.json; write the concept to a new or empty folder/);
    assert.equal(readFileSync(join(existing.outDir, 'manifest.json'), 'utf8'), '{"an earlier": "concept"}');

    // --checkpoint-dir at a folder of the user's: the checkpoint's own files go after success, the user's stay
    const shared = join(root, 'user-folder');
    mkdirSync(shared);
    writeFileSync(join(shared, 'notes.txt'), 'mine');
    const beside = { ...request('beside', { checkpointEvery: 2 }), checkpointDir: shared };
    const stopped = await collect(beside, { phase: 1, step: 3 });
    assert.ok(stopped.aborted);
    await assert.rejects(collect(beside), /user-folder holds a checkpoint of an earlier run: resume it \(--resume\), or remove it/);
    assert.equal((await collect({ ...beside, resume: true })).aborted, null);
    assert.deepEqual(readdirSync(shared), ['notes.txt']);
    assert.ok(existsSync(join(beside.outDir, 'manifest.json')));
  });
});
