// Which instances each training step shows (spec §1.1): joint ("union") sampling draws a random non-empty subset in
// random order, which is also the order of the prompt; separate sampling draws one instance. Image and masks are
// flipped together half of the time.
import type { Generator } from '../util/random.ts';

export type SamplingMode = 'joint' | 'separate';

export interface TrainingExample {
  /** instance indices in prompt order */
  instances: number[];
  prompt: string;
  flip: boolean;
}

/** "a photo of <asset2> and <asset0>" for instances [2, 0]. */
export function instancePrompt(tokens: readonly string[], instances: readonly number[]): string {
  if (instances.length === 0) throw new Error('a training prompt needs at least one instance');
  return `a photo of ${instances.map((i) => tokens[i]).join(' and ')}`;
}

export function sampleExample(generator: Generator, tokens: readonly string[], mode: SamplingMode, flipProbability = 0.5): TrainingExample {
  const count = tokens.length;
  if (count === 0) throw new Error('no instances to sample from');
  const size = mode === 'joint' ? generator.randint(count) + 1 : 1;
  const instances = generator.shuffle(Array.from({ length: count }, (_, i) => i)).slice(0, size);
  const flip = generator.random() < flipProbability;
  return { instances, prompt: instancePrompt(tokens, instances), flip };
}
