import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { tf } from '../../../trainer/runtime/backend.ts';
import { StableDiffusionPipeline } from '../../../trainer/pipelines/stable_diffusion.ts';
import type { AttentionCall } from '../../../trainer/models/attention_processor.ts';
import type { ControllerSettings } from '../../../trainer/synth/controller.ts';
import { crossAttentionMask, MASKED, selfAttentionMask } from '../../../trainer/synth/masking.ts';
import { MIFO_CONTROL } from '../../../trainer/synth/options.ts';
import { boxRegions, resizeRegions, type Box, type RegionSet } from '../../../trainer/synth/regions.ts';
import { goldenVariants, setupRuntime } from '../../helpers.ts';
import { controllerFor } from './controller_setup.ts';

before(setupRuntime);

const M = MASKED;
const rows = (mask: Float32Array, width: number) => Array.from({ length: mask.length / width }, (_, r) => Array.from(mask.subarray(r * width, (r + 1) * width)));

// 2x2 grid: subject A's region is q0, subject B's is q1, the background is q2 and q3.
// keys: 0 SOT, 1 "a" (function word), 2 token of A, 3 token of B, 4 EOS, 5 padding
const regions = boxRegions([[0, 0, 0.5, 0.5], [0.5, 0, 1, 0.5]], 2, 2);
const tokens = { subjects: [[2], [3]], filter: [1], eos: 4 };

test('cross-attention, denoising mode: tokens confined to their region, function words hidden, EOS off the background', () => {
  assert.deepEqual(rows(crossAttentionMask(regions, tokens, 6, 'denoising', { maskEos: true }), 6), [
    [0, M, 0, M, 0, 0], // q0 in A
    [0, M, M, 0, 0, 0], // q1 in B
    [0, M, M, M, M, 0], // q2 background
    [0, M, M, M, M, 0], // q3 background
  ]);
  assert.deepEqual(rows(crossAttentionMask(regions, tokens, 6, 'denoising', { maskEos: false }), 6)[2], [0, M, M, M, 0, 0]);
});

test('cross-attention, guidance mode: subject tokens re-open on the background and EOS stays visible', () => {
  assert.deepEqual(rows(crossAttentionMask(regions, tokens, 6, 'guidance', { maskEos: true }), 6), [
    [0, M, 0, M, 0, 0],
    [0, M, M, 0, 0, 0],
    [0, M, 0, 0, 0, 0],
    [0, M, 0, 0, 0, 0],
  ]);
});

test('cross-attention: a subject token that is also a function word stays open in its region', () => {
  const mask = rows(crossAttentionMask(regions, { subjects: [[1], [3]], filter: [1], eos: 4 }, 6, 'denoising', { maskEos: true }), 6);
  assert.deepEqual(mask.map((r) => r[1]), [0, M, M, M]);
});

test('self-attention: subjects do not see each other; overlaps see both; the background sees everything', () => {
  // overlapping regions on a 2x2 grid: A = {q0, q1}, B = {q1, q2}, background = {q3}
  const overlap: RegionSet = {
    height: 2,
    width: 2,
    subjects: [Uint8Array.from([1, 1, 0, 0]), Uint8Array.from([0, 1, 1, 0])],
    background: Uint8Array.from([0, 0, 0, 1]),
  };
  assert.deepEqual(rows(selfAttentionMask(overlap), 4), [
    [0, 0, M, 0], // q0 (A): A and background
    [0, 0, 0, 0], // q1 (A and B)
    [M, 0, 0, 0], // q2 (B): B and background
    [0, 0, 0, 0], // q3 background
  ]);
  assert.deepEqual(rows(selfAttentionMask(regions), 4), [
    [0, M, 0, 0],
    [M, 0, 0, 0],
    [0, 0, 0, 0],
    [0, 0, 0, 0],
  ]);
});

test('mismatched token groups and out-of-range keys are refused', () => {
  assert.throws(() => crossAttentionMask(regions, { subjects: [[2]], filter: [], eos: 4 }, 6, 'denoising', { maskEos: true }), /1 token groups for 2 regions/);
  assert.throws(() => crossAttentionMask(regions, { ...tokens, eos: 9 }, 6, 'denoising', { maskEos: true }), /outside the 6 keys/);
});

const variant = goldenVariants()[0]!;
describe(`bounded attention inside the UNet (${variant.name})`, () => {
  let pipe: StableDiffusionPipeline;
  before(() => {
    pipe = StableDiffusionPipeline.fromPretrained(variant.pipelineDir);
  });

  /** Two boxes for the cat and the dog of one prompt, on the UNet's own layers chosen by role. */
  function catAndDog(settings: Partial<ControllerSettings> = {}) {
    const boxes: Box[] = [[0.05, 0.3, 0.45, 0.9], [0.55, 0.3, 0.95, 0.9]];
    return { boxes, ...controllerFor(pipe, 'a photo of a cat and a dog on the beach', boxes, settings) };
  }

  test('masked probabilities are exactly zero where the rules say, and only there', () => {
    const { boxes, analysis, subjects, side, controller } = catAndDog();
    const seen: { call: AttentionCall; probs: Float32Array; shape: number[] }[] = [];
    const probe = {
      logitMask: (call: AttentionCall) => controller.logitMask(call),
      capture: () => true,
      onProbs: (call: AttentionCall, probs: tf.Tensor4D) => {
        seen.push({ call, probs: probs.dataSync() as Float32Array, shape: probs.shape });
        probs.dispose();
      },
    };
    const latents = pipe.initialLatents(1, side * pipe.vae.scaleFactor, side * pipe.vae.scaleFactor, 3);
    const context = tf.concat([pipe.encodePrompt(['']), pipe.encodePrompt([analysis.prompt])], 0) as tf.Tensor3D;
    const at = (probs: Float32Array, shape: number[], b: number, h: number, q: number, k: number) => probs[((b * shape[1]! + h) * shape[2]! + q) * shape[3]! + k]!;
    // A removed logit leaves a probability of 0, or a denormal where the engine's exp clamps its argument.
    const isHidden = (p: number) => p < 1e-30;

    for (const mode of ['denoising', 'guidance'] as const) {
      seen.length = 0;
      controller.setPass(mode, { samples: 1, cfg: true });
      pipe.unet.forward(tf.concat([latents, latents], 0) as tf.Tensor4D, [500], context, { controller: probe });
      assert.equal(seen.length, pipe.unet.attentionLayers.length, 'every attention layer ran');
      let checked = 0;
      for (const { call, probs, shape } of seen) {
        const grid = boxRegions(boxes, call.height, call.width);
        const [, heads, queries, keys] = shape as [number, number, number, number];
        for (let h = 0; h < heads; h++) {
          for (let q = 0; q < queries; q++) {
            const owner = grid.subjects.findIndex((m) => m[q] === 1);
            if (call.layer.kind === 'cross') {
              for (const [s, subject] of subjects.entries()) {
                const open = owner === s || (mode === 'guidance' && grid.background[q] === 1);
                for (const k of subject.positions) assert.equal(!isHidden(at(probs, shape, 1, h, q, k)), open, `${mode} ${call.layer.id} cond q${q} token ${k}`);
              }
              for (const k of analysis.filterIndices) assert.ok(isHidden(at(probs, shape, 1, h, q, k)), `${call.layer.id} function word ${k}`);
              const eosHidden = mode === 'denoising' && grid.background[q] === 1;
              assert.equal(isHidden(at(probs, shape, 1, h, q, analysis.eosIndex)), eosHidden, `${mode} ${call.layer.id} EOS at q${q}`);
              assert.ok(!isHidden(at(probs, shape, 1, h, q, 0)) && !isHidden(at(probs, shape, 1, h, q, keys - 1)), 'start and padding are never hidden');
              for (let k = 0; k < keys; k++) assert.ok(!isHidden(at(probs, shape, 0, h, q, k)), 'the unconditional half is not masked');
            } else {
              for (let b = 0; b < 2; b++) {
                for (let k = 0; k < keys; k++) {
                  const keyOwner = grid.subjects.findIndex((m) => m[k] === 1);
                  const hidden = owner >= 0 && keyOwner >= 0 && keyOwner !== owner;
                  assert.equal(isHidden(at(probs, shape, b, h, q, k)), hidden, `${call.layer.id} sample-half ${b} q${q} k${k}`);
                }
              }
            }
            checked++;
          }
        }
      }
      assert.ok(checked > 0);
    }
    controller.dispose();
  });

  test('after refinement every layer is masked with the refined masks of its own sample, resized to its grid', () => {
    const { analysis, side, controller } = catAndDog({ control: { ...MIFO_CONTROL, kmeansInits: 2 } });
    const size = side * pipe.vae.scaleFactor;
    const latents = pipe.initialLatents(2, size, size, 8);
    const context = tf.concat([pipe.encodePrompt(['', '']), pipe.encodePrompt([analysis.prompt, analysis.prompt])], 0) as tf.Tensor3D;
    controller.setPass('denoising', { samples: 2, cfg: true });
    for (const t of [900, 700]) pipe.unet.forward(tf.concat([latents, latents], 0) as tf.Tensor4D, [t], context, { controller });
    assert.equal(controller.hasRefinedMasks, false);
    controller.refine();
    assert.equal(controller.hasRefinedMasks, true);
    const refined = controller.currentMasks(2);
    const seenGrids = new Set<number>();
    for (const layer of pipe.unet.attentionLayers.filter((l) => l.kind === 'self')) {
      const grid = side >> layer.level;
      if (seenGrids.has(grid)) continue;
      seenGrids.add(grid);
      const call = { layer, batch: 4, height: grid, width: grid, keys: grid * grid };
      const mask = controller.logitMask(call)!;
      assert.deepEqual(mask.shape, [4, 1, grid * grid, grid * grid]);
      const values = mask.dataSync() as Float32Array;
      const perSample = grid * grid * grid * grid;
      for (let b = 0; b < 2; b++) {
        const expected = selfAttentionMask(resizeRegions(refined[b]!, side, side, grid, grid));
        assert.deepEqual(values.subarray(b * perSample, (b + 1) * perSample), expected, `sample ${b} at ${grid}², unconditional half`);
        assert.deepEqual(values.subarray((2 + b) * perSample, (3 + b) * perSample), expected, `sample ${b} at ${grid}², conditional half`);
      }
    }
    assert.ok(seenGrids.size >= 2, 'layers at two resolutions were checked');
    controller.dispose();
  });

  test('with bounded layers named, only those layers are masked, self and cross alike', () => {
    const finest = pipe.unet.attentionLayers.filter((l) => l.level === 0);
    assert.ok(finest.some((l) => l.kind === 'self') && finest.some((l) => l.kind === 'cross'));
    assert.ok(finest.length < pipe.unet.attentionLayers.length, 'some layers are coarser');
    const { analysis, side, controller } = catAndDog({ boundedLayers: finest });
    controller.setPass('denoising', { samples: 1, cfg: true });
    for (const layer of pipe.unet.attentionLayers) {
      const grid = side >> layer.level;
      const keys = layer.kind === 'self' ? grid * grid : analysis.ids.length;
      const mask = controller.logitMask({ layer, batch: 2, height: grid, width: grid, keys });
      assert.equal(mask !== null, layer.level === 0, `${layer.id} is masked only when it is named`);
    }
    controller.dispose();
  });
});
