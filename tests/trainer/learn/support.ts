// Shared set-up of the learning tests: the two-object fixture and a Learner on a tiny fixture model.
import { join } from 'node:path';
import { tf } from '../../../trainer/runtime/backend.ts';
import { StableDiffusionPipeline } from '../../../trainer/pipelines/stable_diffusion.ts';
import type { ParameterStore } from '../../../trainer/nn/parameters.ts';
import { loadTrainingImage, loadTrainingMask } from '../../../trainer/learn/data.ts';
import { Learner } from '../../../trainer/learn/learner.ts';
import { resolveOptions, type DeepPartial, type LearnOptions } from '../../../trainer/learn/options.ts';
import { addPlaceholders, placeholderTokens } from '../../../trainer/learn/tokens.ts';
import { Generator } from '../../../trainer/util/random.ts';
import { fixturesDir } from '../../helpers.ts';

/** A 64² photo of a white square (mask0) and a black square (mask1) of equal size on grey. */
export const TWO_OBJECTS = {
  image: join(import.meta.dirname, 'fixtures', 'two-objects', 'img.png'),
  masks: [0, 1].map((i) => join(import.meta.dirname, 'fixtures', 'two-objects', `mask${i}.png`)),
};

export function fixtureModel(name: 'tiny-sd' | 'tiny-sd2'): string {
  return join(fixturesDir(), name);
}

/** The fast preset shrunk to a handful of steps, for tests that exercise mechanics rather than learning. */
export const TINY_RUN: DeepPartial<LearnOptions> = {
  phase1: { steps: 4, attention: { rewardSteps: 2, timestepThreshold: 1000 } },
  phase2: { steps: 3, attention: { timestepThreshold: 1000 } },
  attentionMapEvery: 0,
  metricTimesteps: [100],
};

export async function makeLearner(model: 'tiny-sd' | 'tiny-sd2', overrides: DeepPartial<LearnOptions> = {}): Promise<{ pipeline: StableDiffusionPipeline; learner: Learner }> {
  const pipeline = StableDiffusionPipeline.fromPretrained(fixtureModel(model));
  const options = resolveOptions('fast', overrides);
  const size = pipeline.defaultSize;
  const image = await loadTrainingImage(TWO_OBJECTS.image, size);
  const masks = await Promise.all(TWO_OBJECTS.masks.map((m) => loadTrainingMask(m, size)));
  const generator = new Generator(options.seed);
  const placeholders = addPlaceholders(pipeline.tokenizer, pipeline.textEncoder, placeholderTokens(2), { init: options.tokenInit, generator });
  return { pipeline, learner: new Learner({ pipeline, options, image, masks, placeholders, generator, classImages: [] }) };
}

/** Every parameter's values, keyed by name. */
export function snapshot(store: ParameterStore): Map<string, Float32Array> {
  return new Map(store.keys().map((key) => [key, Float32Array.from(store.get(key).dataSync() as Float32Array)]));
}

export function changedKeys(store: ParameterStore, before: Map<string, Float32Array>): string[] {
  return store.keys().filter((key) => {
    const now = store.get(key).dataSync();
    const then = before.get(key)!;
    return now.some((v, i) => v !== then[i]);
  });
}

export function rowsOf(tensor: tf.Tensor): number[][] {
  return tensor.arraySync() as number[][];
}
