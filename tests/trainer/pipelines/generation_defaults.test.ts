// What text-to-image defaults to for a folder: its scheduler's sampler, and generation_config.json over diffusers'
// 50 steps, guidance 7.5 and no rescale.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { DIFFUSERS_GENERATION_DEFAULTS, GENERATION_CONFIG_FILE, readGenerationDefaults, withGenerationDefaults } from '../../../trainer/pipelines/generation_defaults.ts';

const dir = mkdtempSync(join(tmpdir(), 'mifo-generation-defaults-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function folder(scheduler: string | null, generationConfig?: unknown): string {
  const modelDir = mkdtempSync(join(dir, 'model-'));
  writeFileSync(join(modelDir, 'model_index.json'), JSON.stringify({ _class_name: 'StableDiffusionPipeline', ...(scheduler ? { scheduler: ['diffusers', scheduler] } : {}) }));
  if (generationConfig !== undefined) writeFileSync(join(modelDir, GENERATION_CONFIG_FILE), JSON.stringify(generationConfig));
  return modelDir;
}

test('a plain diffusers folder gets diffusers’ defaults, with DPM-Solver++ where it names that scheduler', () => {
  assert.deepEqual(readGenerationDefaults(folder('DDIMScheduler')), DIFFUSERS_GENERATION_DEFAULTS);
  assert.deepEqual(readGenerationDefaults(folder('PNDMScheduler')), DIFFUSERS_GENERATION_DEFAULTS);
  assert.deepEqual(readGenerationDefaults(folder('DPMSolverMultistepScheduler')), { ...DIFFUSERS_GENERATION_DEFAULTS, sampler: 'dpm-solver++' });
});

test('generation_config.json overrides what it names and nothing else', () => {
  const modelDir = folder('DPMSolverMultistepScheduler', { _written_by: 'test', num_inference_steps: 25, guidance_rescale: 0.7 });
  assert.deepEqual(readGenerationDefaults(modelDir), { sampler: 'dpm-solver++', steps: 25, guidance: 7.5, guidanceRescale: 0.7 });
  assert.deepEqual(readGenerationDefaults(folder('DDIMScheduler', { guidance_scale: 0 })), { ...DIFFUSERS_GENERATION_DEFAULTS, guidance: 0 });
});

test('a wrong generation_config.json is refused with the file and the field', () => {
  assert.throws(() => readGenerationDefaults(folder('DDIMScheduler', { num_inference_steps: 2.5 })), /generation_config.json: num_inference_steps must be a positive integer, got 2.5/);
  assert.throws(() => readGenerationDefaults(folder('DDIMScheduler', { guidance_rescale: 1.5 })), /guidance_rescale must be a number in \[0, 1\], got 1.5/);
  assert.throws(() => readGenerationDefaults(folder('DDIMScheduler', { guidance_scale: '5' })), /guidance_scale must be a number ≥ 0, got "5"/);
  assert.throws(() => readGenerationDefaults(folder('DDIMScheduler', { guidance: 5 })), /unknown field 'guidance' \(known: num_inference_steps, guidance_scale, guidance_rescale\)/);
  assert.throws(() => readGenerationDefaults(folder('DDIMScheduler', [25])), /must hold a JSON object/);
  const broken = folder('DDIMScheduler');
  writeFileSync(join(broken, GENERATION_CONFIG_FILE), '{ "num_inference_steps": ');
  assert.throws(() => readGenerationDefaults(broken), /generation_config.json is not valid JSON/);
});

test('a call’s settings win where given; absent ones (undefined included) come from the defaults', () => {
  assert.deepEqual(withGenerationDefaults({ steps: 7, guidance: undefined, sampler: 'dpm-solver++' }, DIFFUSERS_GENERATION_DEFAULTS), { sampler: 'dpm-solver++', steps: 7, guidance: 7.5, guidanceRescale: 0 });
  assert.deepEqual(withGenerationDefaults({ guidance: 0, guidanceRescale: 0 }, { sampler: 'ddim', steps: 25, guidance: 5, guidanceRescale: 0.7 }), { sampler: 'ddim', steps: 25, guidance: 0, guidanceRescale: 0 });
});
