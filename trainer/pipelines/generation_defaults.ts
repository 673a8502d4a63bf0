// The settings text-to-image uses where the caller names none. diffusers' pipelines sample with the folder's
// scheduler, 50 steps and guidance 7.5 whatever the model; so do we, unless the folder carries a
// generation_config.json (the file transformers keeps for the same purpose) with the settings its model was measured
// best at, as the embedded model does. No tensor code here: the web server reads these without loading a model.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFolderError, readJson, readPipelineIndex } from '../io/model_index.ts';
import { isPositiveInteger } from '../util/numbers.ts';

/** The samplers of text-to-image: DDIM (box-controlled synthesis always uses it, as the MIFO reference) and DPM-Solver++(2M). */
export const SAMPLER_NAMES = ['ddim', 'dpm-solver++'] as const;
export type SamplerName = (typeof SAMPLER_NAMES)[number];

export const SAMPLER_TITLES: Record<SamplerName, string> = { ddim: 'DDIM', 'dpm-solver++': 'DPM-Solver++(2M)' };

/** The diffusers scheduler class a folder names for each sampler. */
export const SCHEDULER_CLASS_OF_SAMPLER: Record<SamplerName, string> = { ddim: 'DDIMScheduler', 'dpm-solver++': 'DPMSolverMultistepScheduler' };

export const GENERATION_CONFIG_FILE = 'generation_config.json';

export interface GenerationDefaults {
  sampler: SamplerName;
  steps: number;
  guidance: number;
  /** diffusers' guidance_rescale φ in [0, 1] */
  guidanceRescale: number;
}

export const DIFFUSERS_GENERATION_DEFAULTS: GenerationDefaults = { sampler: 'ddim', steps: 50, guidance: 7.5, guidanceRescale: 0 };

/** The settings a call names, the rest from `defaults`. */
export function withGenerationDefaults(chosen: Partial<GenerationDefaults>, defaults: GenerationDefaults): GenerationDefaults {
  return {
    sampler: chosen.sampler ?? defaults.sampler,
    steps: chosen.steps ?? defaults.steps,
    guidance: chosen.guidance ?? defaults.guidance,
    guidanceRescale: chosen.guidanceRescale ?? defaults.guidanceRescale,
  };
}

/** generation_config.json as written: diffusers' call argument names. */
export interface GenerationConfigJson {
  num_inference_steps?: number;
  guidance_scale?: number;
  guidance_rescale?: number;
}

/** A folder's scheduler class as a sampler: DPM-Solver++ for DPMSolverMultistepScheduler, DDIM (same noise schedule) for the rest. */
export function samplerOfScheduler(className: string): SamplerName {
  return className === SCHEDULER_CLASS_OF_SAMPLER['dpm-solver++'] ? 'dpm-solver++' : 'ddim';
}

const GENERATION_CONFIG_RULES: Record<keyof GenerationConfigJson, { check: (n: number) => boolean; rule: string }> = {
  num_inference_steps: { check: isPositiveInteger, rule: 'a positive integer' },
  guidance_scale: { check: (n) => n >= 0, rule: 'a number ≥ 0' },
  guidance_rescale: { check: (n) => n >= 0 && n <= 1, rule: 'a number in [0, 1]' },
};

export function parseGenerationConfig(raw: unknown, source: string): GenerationConfigJson {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ModelFolderError(`${source} must hold a JSON object`);
  const parsed: GenerationConfigJson = {};
  for (const [key, value] of Object.entries(raw)) {
    if (key.startsWith('_')) continue;
    const rule = GENERATION_CONFIG_RULES[key as keyof GenerationConfigJson];
    if (!rule) throw new ModelFolderError(`${source} has an unknown field '${key}' (known: ${Object.keys(GENERATION_CONFIG_RULES).join(', ')})`);
    if (typeof value !== 'number' || !Number.isFinite(value) || !rule.check(value)) {
      throw new ModelFolderError(`${source}: ${key} must be ${rule.rule}, got ${JSON.stringify(value)}`);
    }
    parsed[key as keyof GenerationConfigJson] = value;
  }
  return parsed;
}

export function generationConfigJson(defaults: GenerationDefaults): GenerationConfigJson {
  return { num_inference_steps: defaults.steps, guidance_scale: defaults.guidance, guidance_rescale: defaults.guidanceRescale };
}

/** What a diffusers folder's text-to-image defaults to: its scheduler's sampler, and generation_config.json over diffusers' defaults. */
export function readGenerationDefaults(dir: string): GenerationDefaults {
  const scheduler = readPipelineIndex(dir).components.scheduler;
  const path = join(dir, GENERATION_CONFIG_FILE);
  const config = existsSync(path) ? parseGenerationConfig(readJson(path), path) : {};
  return {
    sampler: scheduler ? samplerOfScheduler(scheduler[1]) : DIFFUSERS_GENERATION_DEFAULTS.sampler,
    steps: config.num_inference_steps ?? DIFFUSERS_GENERATION_DEFAULTS.steps,
    guidance: config.guidance_scale ?? DIFFUSERS_GENERATION_DEFAULTS.guidance,
    guidanceRescale: config.guidance_rescale ?? DIFFUSERS_GENERATION_DEFAULTS.guidanceRescale,
  };
}
