// Class images for prior preservation: generated once by the base model and cached on disk, keyed by the model
// weights, prompt, size and sampler settings, so later runs (and resumed ones) reuse them.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { tensorToRgbImages, writePng } from '../io/image.ts';
import type { StableDiffusionPipeline } from '../pipelines/stable_diffusion.ts';
import type { PriorOptions } from './options.ts';

export function defaultClassImageCache(): string {
  return process.env.MIFO_CACHE ? join(process.env.MIFO_CACHE, 'class-images') : join(homedir(), '.cache', 'mifo', 'class-images');
}

export function classImageDir(prior: PriorOptions, size: number, weightsHash: string): string {
  const key = createHash('sha256')
    .update(JSON.stringify({ weightsHash, prompt: prior.classPrompt, size, steps: prior.generationSteps, guidance: prior.guidance }))
    .digest('hex')
    .slice(0, 16);
  return join(prior.cacheDir ?? defaultClassImageCache(), key);
}

/**
 * Paths of prior.numImages class images, generating the missing ones (image i uses seed i). Yields progress after
 * each image; must run before the pipeline is modified (tokens and adapters do not matter, weights do).
 */
export async function* prepareClassImages(
  pipeline: StableDiffusionPipeline,
  prior: PriorOptions,
  size: number,
  weightsHash: string,
): AsyncGenerator<{ done: number; total: number }, string[]> {
  const dir = classImageDir(prior, size, weightsHash);
  mkdirSync(dir, { recursive: true });
  const paths = Array.from({ length: prior.numImages }, (_, i) => join(dir, `class-${i}.png`));
  for (const [i, path] of paths.entries()) {
    if (!existsSync(path)) {
      const result = await pipeline.generate({ prompt: prior.classPrompt, steps: prior.generationSteps, guidance: prior.guidance, seed: i, height: size, width: size });
      await writePng(path, tensorToRgbImages(result.images)[0]!);
      result.images.dispose();
      result.latents.dispose();
    }
    yield { done: i + 1, total: paths.length };
  }
  return paths;
}
