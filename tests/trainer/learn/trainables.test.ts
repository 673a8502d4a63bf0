import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { setupRuntime } from '../../helpers.ts';
import { changedKeys, makeLearner, snapshot } from './support.ts';

before(setupRuntime);

/** Runs `steps` steps of `phase` and reports what moved. */
async function runPhase(phase: 1 | 2, overrides: Parameters<typeof makeLearner>[1], steps = 2) {
  const { pipeline, learner } = await makeLearner('tiny-sd2', overrides);
  const stores = { unet: pipeline.unet.store, textEncoder: pipeline.textEncoder.store, vae: pipeline.vae.store };
  const before = { unet: snapshot(stores.unet), textEncoder: snapshot(stores.textEncoder), vae: snapshot(stores.vae) };
  const rowsBefore = learner.rowsData();
  const state = learner.startPhase(phase);
  for (let step = 0; step < steps; step++) learner.step(state, step, 10);
  const moved = {
    unet: changedKeys(stores.unet, before.unet),
    textEncoder: changedKeys(stores.textEncoder, before.textEncoder),
    vae: changedKeys(stores.vae, before.vae),
    rows: learner.rowsData().some((v, i) => v !== rowsBefore[i]),
  };
  return { pipeline, learner, state, moved };
}

describe('gradients reach only the trainables of each phase', () => {
  // warm-up 0 so the first step already has a non-zero learning rate
  const noWarmup = { phase1: { optimizer: { warmupSteps: 0 }, attention: { timestepThreshold: 1000 } }, phase2: { attention: { timestepThreshold: 1000 } } };

  test('phase 1: only the placeholder rows move; the table, UNet, text encoder and VAE stay bitwise', async () => {
    const { moved, state, pipeline, learner } = await runPhase(1, noWarmup);
    assert.deepEqual(state.parameters, []);
    assert.ok(moved.rows, 'the placeholder rows were not updated');
    assert.deepEqual([moved.unet, moved.textEncoder, moved.vae], [[], [], []]);
    learner.dispose();
    pipeline.dispose();
  });

  test('phase 2 lora: the adapters and rows move; every base weight stays bitwise', async () => {
    const { moved, state, pipeline, learner } = await runPhase(2, noWarmup);
    assert.ok(state.lora && state.parameters.every((p) => p.name.startsWith('lora.')));
    assert.equal(state.parameters.length, 2 * state.lora.targets.length);
    assert.ok(moved.rows);
    assert.deepEqual([moved.unet, moved.textEncoder, moved.vae], [[], [], []]);
    const upMoved = state.lora.variables.filter((_, i) => i % 2 === 1).filter((up) => up.dataSync().some((v) => v !== 0));
    assert.equal(upMoved.length, state.lora.targets.length, 'some LoRA up-projection never left zero');
    learner.dispose();
    pipeline.dispose();
  });

  test('phase 2 full: UNet and text encoder train, the vocabulary table and the VAE stay bitwise', async () => {
    const { moved, pipeline, learner } = await runPhase(2, { ...noWarmup, phase2: { ...noWarmup.phase2, mode: 'full' } });
    const table = pipeline.textEncoder.tokenEmbedding.weight;
    assert.ok(moved.rows);
    assert.deepEqual(moved.unet.sort(), pipeline.unet.store.keys().sort());
    assert.deepEqual(moved.textEncoder.sort(), pipeline.textEncoder.store.keys().filter((k) => k !== table).sort());
    assert.deepEqual(moved.vae, []);
    learner.dispose();
    pipeline.dispose();
  });

  test('phase 2 full without pinning (Break-a-Scene): the vocabulary table trains too', async () => {
    const { moved, pipeline, learner } = await runPhase(2, { ...noWarmup, phase2: { ...noWarmup.phase2, mode: 'full', pinVocabulary: false } });
    assert.ok(moved.textEncoder.includes(pipeline.textEncoder.tokenEmbedding.weight));
    learner.dispose();
    pipeline.dispose();
    await assert.rejects(runPhase(2, { phase2: { pinVocabulary: false } }), /pinVocabulary=false needs phase2.mode=full/);
  });
});
