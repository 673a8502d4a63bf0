import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { tf } from '../../../trainer/runtime/backend.ts';
import { StableDiffusionPipeline } from '../../../trainer/pipelines/stable_diffusion.ts';
import { compose, REFERENCE_SCHEDULER_OVERRIDES, type ComposeEvent } from '../../../trainer/synth/compose.ts';
import { selectLayers } from '../../../trainer/synth/layers.ts';
import { MIFO_CONTROL, resolveControl } from '../../../trainer/synth/options.ts';
import { boxRegions, type Box } from '../../../trainer/synth/regions.ts';
import { goldenVariants, setupRuntime } from '../../helpers.ts';
import { controllerFor } from './controller_setup.ts';

before(setupRuntime);

const PROMPT = 'a photo of a cat and a dog on the beach';
const BOXES: Box[] = [[0.05, 0.3, 0.45, 0.9], [0.55, 0.3, 0.95, 0.9]];
// Few steps and restarts keep the suite fast; every other knob is the reference's.
const FAST = { kmeansInits: 4 };

test('control presets and ablations resolve to the documented switches', () => {
  assert.deepEqual(resolveControl('mifo'), MIFO_CONTROL);
  const ba = resolveControl('ba');
  assert.equal(ba.outOfBox, false);
  assert.equal(ba.boxCountFactor, true);
  assert.equal(ba.alphaSchedule, 'zero');
  assert.equal(resolveControl('off').boxControl, false);
  assert.equal(resolveControl('mifo', ['ca-only']).selfWeight, 0);
  assert.equal(resolveControl('mifo', ['sa-only']).crossWeight, 0);
  assert.equal(resolveControl('mifo', ['in-box-only']).outOfBox, false);
  assert.equal(resolveControl('mifo', ['out-of-box-only']).inBox, false);
  assert.equal(resolveControl('mifo', ['no-decay']).alphaSchedule, 'constant');
  assert.equal(resolveControl('mifo', ['no-refine']).refine, false);
  assert.equal(resolveControl('mifo', [], { alpha: { max: 0.3 } }).alpha.max, 0.3);
  assert.throws(() => resolveControl('mifo', ['in-box-only', 'out-of-box-only']), /cannot both be off/);
  assert.throws(() => resolveControl('mifo', [], { iterationsPerStep: 0 }), /iterationsPerStep/);
  assert.throws(() => resolveControl('nope' as never), /unknown synthesis preset/);
  assert.throws(() => resolveControl('mifo', ['nope' as never]), /unknown ablation/);
  // what a JSON submission can carry: misspelt keys, wrong types, runaway counts
  assert.throws(() => resolveControl('mifo', [], { iterations: 3, alpha: { maximum: 1 } } as never), /unknown synthesis control option\(s\) iterations, alpha.maximum \(known: boxControl, /);
  assert.throws(() => resolveControl('mifo', [], { lossLayers: '12' as never }), /lossLayers must be a non-empty list of layer indices/);
  assert.throws(() => resolveControl('mifo', [], { boundedLayers: [] }), /boundedLayers must be a non-empty list of layer indices/);
  assert.equal(resolveControl('mifo').boundedLayers, null, 'the reference bounds every layer');
  assert.throws(() => resolveControl('mifo', [], { crossMask: 'no' as never }), /crossMask must be true or false, got "no"/);
  assert.throws(() => resolveControl('mifo', [], { kmeansInits: 1e6 }), /kmeansInits must be an integer from 1 to 1000/);
});

const variant = goldenVariants()[0]!;
describe(`box-controlled composition on ${variant.name}`, () => {
  let pipe: StableDiffusionPipeline;
  before(() => {
    pipe = StableDiffusionPipeline.fromPretrained(variant.pipelineDir);
  });

  test('one guidance iteration lowers the loss', () => {
    const { side, controller } = controllerFor(pipe, PROMPT, BOXES);
    const size = side * pipe.vae.scaleFactor;
    const latents = pipe.initialLatents(2, size, size, 1);
    const context = pipe.encodePrompt([PROMPT, PROMPT]);
    const t = pipe.makeScheduler(REFERENCE_SCHEDULER_OVERRIDES).setTimesteps(50)[0]!;
    const alpha = { cross: 0.4, self: 0.4 };
    const before = controller.evaluateGuidance(pipe.unet, latents, t, context, alpha);
    const stepped = tf.sub(latents, tf.mul(before.grad, MIFO_CONTROL.stepSizeStart)) as tf.Tensor4D;
    const after = controller.evaluateGuidance(pipe.unet, stepped, t, context, alpha);
    console.log(`loss at t=${t}: ${before.loss.toFixed(5)} -> ${after.loss.toFixed(5)} after one step of size ${MIFO_CONTROL.stepSizeStart}`);
    assert.ok(Number.isFinite(before.loss) && before.loss > 0);
    assert.ok(tf.norm(before.grad).dataSync()[0]! > 0, 'the loss depends on the latents');
    assert.ok(after.loss < before.loss, `${after.loss} < ${before.loss}`);
    assert.equal(before.cross!.length, 2);
    assert.equal(before.cross![0]!.length, 2);
    // the reported terms add up to the loss: λ_CA ΣL^CA + λ_SA ΣL^SA
    const sum = (rows: number[][]) => rows.flat().reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(MIFO_CONTROL.crossWeight * sum(before.cross!) + MIFO_CONTROL.selfWeight * sum(before.self!) - before.loss) < 1e-4);
    assert.ok(Math.abs(before.normalizedLoss - before.loss / 4) < 1e-6);
    controller.dispose();
  });

  test('with control, each subject token puts more of its cross-attention inside its box', async () => {
    const { loss } = selectLayers(pipe.unet.attentionLayers);
    const crossOrders = new Set(loss.filter((l) => l.kind === 'cross').map((l) => l.order));
    // The probe is an unmasked forward on the final latents, so the masking itself cannot produce the difference.
    const inBoxShare = (latents: tf.Tensor4D, positions: number[][]) => {
      const context = pipe.encodePrompt(Array(latents.shape[0]).fill(PROMPT));
      const sums = positions.map(() => ({ inside: 0, total: 0 }));
      pipe.unet.forward(latents, [500], context, {
        controller: {
          capture: (layer) => crossOrders.has(layer.order),
          onProbs: (call, probs) => {
            const [batch, heads, queries, keys] = probs.shape;
            const values = probs.dataSync();
            probs.dispose();
            const regions = boxRegions(BOXES, call.height, call.width);
            positions.forEach((tokens, s) => {
              for (let i = 0; i < batch * heads; i++) {
                for (let q = 0; q < queries; q++) {
                  for (const k of tokens) {
                    const p = values[(i * queries + q) * keys + k]!;
                    sums[s]!.total += p;
                    if (regions.subjects[s]![q]) sums[s]!.inside += p;
                  }
                }
              }
            });
          },
        },
      });
      context.dispose();
      return sums.map((s) => s.inside / s.total);
    };
    const run = async (preset: 'mifo' | 'off') => {
      const result = await compose(pipe, { prompt: PROMPT, boxes: BOXES, seed: 1, steps: 3, batch: 1, preset, control: { ...FAST, guidanceSteps: 3 } });
      const share = inBoxShare(result.latents, result.record.subjects.map((s) => s.positions));
      tf.dispose([result.images, result.latents]);
      return share;
    };
    const controlled = await run('mifo');
    const uncontrolled = await run('off');
    ['cat', 'dog'].forEach((name, s) => {
      console.log(`'${name}' cross-attention mass inside its box: ${(100 * controlled[s]!).toFixed(2)}% with control, ${(100 * uncontrolled[s]!).toFixed(2)}% without`);
      assert.ok(controlled[s]! > uncontrolled[s]!, `${name}: ${controlled[s]} > ${uncontrolled[s]}`);
    });
  });

  test('a full run: events, losses, refined masks, reproducible record, no tensor leaks', async () => {
    const events: ComposeEvent[] = [];
    const tensorsBefore = tf.memory().numTensors;
    const options = {
      prompt: PROMPT,
      boxes: BOXES,
      seed: 3,
      steps: 6,
      batch: 2,
      previewEvery: 3,
      control: { ...FAST, guidanceSteps: 2, iterationsPerStep: 2, refineStart: 3, refineEvery: 2 },
      onEvent: (event: ComposeEvent) => events.push(event),
    };
    const result = await compose(pipe, options);
    const { record } = result;
    const kinds = (type: ComposeEvent['type']) => events.filter((e) => e.type === type);
    assert.equal(events[0]!.type, 'start');
    assert.deepEqual(kinds('step').map((e) => (e as { step: number }).step), [0, 1, 2, 3, 4, 5]);
    // first refinement at refineStart, then on steps divisible by refineEvery
    assert.deepEqual(kinds('masks').map((e) => (e as { step: number }).step), [3, 4]);
    assert.deepEqual(kinds('preview').map((e) => (e as { step: number }).step), [2, 5]);
    const preview = kinds('preview')[0] as Extract<ComposeEvent, { type: 'preview' }>;
    assert.equal(preview.images.length, 2);
    assert.equal(preview.images[0]!.width, record.width);
    assert.equal(preview.masks.masks.length, 2);
    assert.equal(preview.masks.masks[0]!.length, 2);
    const guidance = kinds('guidance') as Extract<ComposeEvent, { type: 'guidance' }>[];
    assert.ok(guidance.length >= 2 && guidance.length <= 4);
    assert.deepEqual([...new Set(guidance.map((e) => e.step))], [0, 1]);
    assert.deepEqual(record.losses.map((l) => l.step), [0, 1]);
    assert.equal(record.losses[0]!.stepSize, 8);
    assert.ok(Math.abs(record.losses[1]!.stepSize - (8 + (2 - 8) / 2)) < 1e-12);
    for (const step of record.losses) for (const it of step.iterations) assert.ok(Number.isFinite(it.loss) && it.cross && it.self);
    // the reference's α counter: step 0 is τ = 0 (0.55)
    assert.equal(record.losses[0]!.iterations[0]!.alpha.cross, 0.55);
    assert.equal(record.refinements.length, 2);
    assert.equal(record.masks.masks.length, 2);
    const [mh, mw] = [record.masks.height, record.masks.width];
    for (const sample of record.masks.masks) {
      assert.equal(sample.length, 2);
      for (const mask of sample) {
        assert.equal(mask.length, mh * mw);
        assert.ok(mask.some((v) => v === 1), 'a refined mask is never empty');
      }
    }
    assert.deepEqual(record.subjects.map((s) => s.tokens), [['cat</w>'], ['dog</w>']]);
    assert.equal(record.control.guidanceSteps, 2);
    assert.equal(record.scheduler.steps_offset, 0);
    assert.deepEqual(record.timesteps.length, 6);
    assert.deepEqual(result.images.shape, [2, record.height, record.width, 3]);
    const json = JSON.parse(JSON.stringify(record));
    assert.deepEqual(json.boxes, BOXES);

    // the record reproduces the run
    const again = await compose(pipe, {
      prompt: json.prompt,
      negativePrompt: json.negativePrompt,
      boxes: json.boxes,
      seed: json.seed,
      steps: json.steps,
      batch: json.batch,
      guidanceScale: json.guidanceScale,
      guidanceRescale: json.guidanceRescale,
      height: json.height,
      width: json.width,
      preset: json.preset,
      ablations: json.ablations,
      control: json.control,
    });
    assert.deepEqual(again.images.dataSync(), result.images.dataSync());
    assert.deepEqual(again.record.masks, record.masks);
    tf.dispose([result.images, result.latents, again.images, again.latents]);
    assert.equal(tf.memory().numTensors, tensorsBefore, 'no tensor outlives the run');
  });

  test('switches: no control equals plain sampling; ablations change the result', async () => {
    const base = { prompt: PROMPT, boxes: BOXES, seed: 5, steps: 3, batch: 1, control: { ...FAST, guidanceSteps: 2, iterationsPerStep: 2, refineStart: 2, refineEvery: 1 } };
    const images = async (extra: object) => {
      const result = await compose(pipe, { ...base, ...extra });
      const values = result.images.dataSync().slice();
      tf.dispose([result.images, result.latents]);
      return { values, record: result.record };
    };
    const off = await images({ preset: 'off' });
    assert.deepEqual(off.record.losses, []);
    assert.deepEqual(off.record.refinements, []);
    // the same pipeline with the reference's DDIM settings, sampled by the plain CFG + DDIM loop
    const referencePipe = new StableDiffusionPipeline(pipe.modelDir, pipe.tokenizer, pipe.textEncoder, pipe.unet, pipe.vae, { ...pipe.schedulerConfig, ...REFERENCE_SCHEDULER_OVERRIDES });
    const plain = await referencePipe.generate({ prompt: PROMPT, steps: 3, seed: 5, batch: 1 });
    assert.deepEqual(off.values, plain.images.dataSync());
    tf.dispose([plain.images, plain.latents]);

    const mifo = await images({});
    const caOnly = await images({ ablations: ['ca-only'] });
    assert.ok(caOnly.record.losses.every((s) => s.iterations.every((i) => i.self === null && i.cross !== null)));
    const ba = await images({ preset: 'ba' });
    assert.ok(ba.record.losses.every((s) => s.iterations.every((i) => i.alpha.cross === 0)));
    const noRefine = await images({ ablations: ['no-refine'] });
    assert.deepEqual(noRefine.record.refinements, []);
    for (const [name, other] of Object.entries({ off, caOnly, ba, noRefine })) assert.notDeepEqual(other.values, mifo.values, `${name} differs from MIFO`);
  });

  test('a model folder’s layers replace the choice by role; explicit layers still win', async () => {
    const byRole = selectLayers(pipe.unet.attentionLayers);
    const decoderOnly = byRole.loss.filter((l) => l.place === 'up');
    assert.ok(decoderOnly.length > 0 && decoderOnly.length < byRole.loss.length, 'the role choice holds mid and decoder layers');
    const modelLayers = { lossLayers: decoderOnly.map((l) => l.order), mapLayers: byRole.maps.map((l) => l.order), boundedLayers: [0, 1] };
    const own = new StableDiffusionPipeline(pipe.modelDir, pipe.tokenizer, pipe.textEncoder, pipe.unet, pipe.vae, pipe.schedulerConfig, pipe.generationDefaults, { learning: null, synthesis: modelLayers });
    const layersOf = async (p: StableDiffusionPipeline, control: object = {}) => {
      const result = await compose(p, { prompt: PROMPT, boxes: BOXES, seed: 2, steps: 1, control: { ...FAST, guidanceSteps: 1, iterationsPerStep: 1, ...control } });
      tf.dispose([result.images, result.latents]);
      const { loss, maps, bounded } = result.record.layers;
      return { loss: loss.map((l) => l.order), maps: maps.map((l) => l.order), bounded: bounded && bounded.map((l) => l.order) };
    };
    assert.deepEqual(await layersOf(pipe), { loss: byRole.loss.map((l) => l.order), maps: byRole.maps.map((l) => l.order), bounded: null });
    assert.deepEqual(await layersOf(own), { loss: modelLayers.lossLayers, maps: modelLayers.mapLayers, bounded: modelLayers.boundedLayers });
    const explicit = byRole.loss.map((l) => l.order);
    assert.deepEqual((await layersOf(own, { lossLayers: explicit })).loss, explicit);
    assert.deepEqual((await layersOf(own, { boundedLayers: explicit })).bounded, explicit);
    await assert.rejects(layersOf(pipe, { boundedLayers: [pipe.unet.attentionLayers.length] }), /bounded layers/);
  });

  test('cancellation and bad input', async () => {
    const controller = new AbortController();
    let steps = 0;
    await assert.rejects(
      compose(pipe, {
        prompt: PROMPT,
        boxes: BOXES,
        steps: 6,
        control: FAST,
        signal: controller.signal,
        onEvent: (e) => {
          if (e.type === 'step' && ++steps === 2) controller.abort();
        },
      }),
      (error: Error) => error.name === 'AbortError',
    );
    assert.equal(steps, 2);
    await assert.rejects(compose(pipe, { prompt: PROMPT, boxes: [[0.1, 0.1, 0.5, 0.5]], subjects: ['horse'], steps: 1 }), /'horse' does not occur/);
    await assert.rejects(compose(pipe, { prompt: PROMPT, boxes: [[0.5, 0.1, 0.4, 0.5]], steps: 1 }), /box 1 .* x0 < x1/);
    await assert.rejects(compose(pipe, { prompt: PROMPT, boxes: [[0.1, 0.1, 0.12, 0.12]], steps: 1 }), /covers no pixel of the \d+x\d+ attention grid/);
    await assert.rejects(compose(pipe, { prompt: PROMPT, boxes: BOXES, steps: 1, height: 31 }), /multiples of/);
  });
});
