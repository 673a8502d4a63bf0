// Shared set-up of the pack tests: a concept learned on ../shared/fixtures/tiny-sd by the fast preset, cut down.
import { runLearning } from '../../../trainer/learn/learn.ts';
import { combineOverrides, type DeepPartial, type LearnOptions } from '../../../trainer/learn/options.ts';
import { fixtureModel, TINY_RUN, TWO_OBJECTS } from '../learn/support.ts';

export const TINY_SD = fixtureModel('tiny-sd');
export const TINY_SD2 = fixtureModel('tiny-sd2');

/** Learns the two-object fixture into `dir` with the fast preset shrunk to TINY_RUN (plus `overrides`). */
export async function learnConcept(dir: string, overrides: DeepPartial<LearnOptions> = {}, model = TINY_SD): Promise<string> {
  await runLearning({ model, image: TWO_OBJECTS.image, masks: TWO_OBJECTS.masks, names: ['white square', 'black square'], outDir: dir, preset: 'fast', options: combineOverrides(TINY_RUN, overrides) });
  return dir;
}
