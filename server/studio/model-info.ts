// What the web server knows about the base model without loading it: its folder (MIFO_MODEL, else the embedded
// models/default, as the workers resolve it), its name, the square resolution it learns and composes at and the
// generation settings it recommends, read from the diffusers JSON files.
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { defaultModelDir } from '../../trainer/cli/default_model.ts';
import { readJson } from '../../trainer/io/model_index.ts';
import { readGenerationDefaults, type GenerationDefaults } from '../../trainer/pipelines/generation_defaults.ts';

export type ModelInfo =
  | { available: true; dir: string; name: string; resolution: number; generation: GenerationDefaults }
  | { available: false; problem: string };

export function readModelInfo(dir: string): ModelInfo {
  if (!existsSync(join(dir, 'model_index.json'))) return { available: false, problem: `${dir} is not a diffusers model folder (no model_index.json)` };
  try {
    const index = readJson<Record<string, unknown>>(join(dir, 'model_index.json'));
    const unet = readJson<Record<string, unknown>>(join(dir, 'unet', 'config.json'));
    const vae = readJson<Record<string, unknown>>(join(dir, 'vae', 'config.json'));
    const sampleSize = Number(unet.sample_size ?? 64);
    const vaeLevels = Array.isArray(vae.block_out_channels) ? vae.block_out_channels.length : 4;
    const name = typeof index._name_or_path === 'string' && index._name_or_path ? basename(index._name_or_path) : basename(dir);
    return { available: true, dir, name, resolution: sampleSize * 2 ** (vaeLevels - 1), generation: readGenerationDefaults(dir) };
  } catch (error) {
    return { available: false, problem: `the model in ${dir} cannot be read: ${(error as Error).message}` };
  }
}

/** The model the workers use when a job names none. */
export function defaultModelInfo(): ModelInfo {
  let dir: string;
  try {
    dir = defaultModelDir();
  } catch (error) {
    return { available: false, problem: (error as Error).message };
  }
  return readModelInfo(dir);
}
