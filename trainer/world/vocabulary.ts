// Every word a caption of the world can use. The model's tokenizer is built from this list, so each word becomes
// one token.
import { BACKGROUNDS, COLOUR_NAMES, RARE_NAMES, SHAPE_NAMES, TEXTURE_ADJECTIVES } from './definitions.ts';

/** The fixed words around the object phrases: "a photo of X and Y <background phrase>", "an" before vowels. */
const GRAMMAR_WORDS = ['a', 'an', 'photo', 'of', 'and'];

/** Sorted, de-duplicated caption words (all lower-case ASCII letters). */
export function worldVocabulary(): string[] {
  const words = new Set<string>(GRAMMAR_WORDS);
  for (const colour of COLOUR_NAMES) words.add(colour);
  for (const adjective of Object.values(TEXTURE_ADJECTIVES)) if (adjective) words.add(adjective);
  for (const shape of SHAPE_NAMES) words.add(shape);
  for (const rare of RARE_NAMES) words.add(rare);
  for (const { phrase } of Object.values(BACKGROUNDS)) for (const word of phrase.split(' ')) words.add(word);
  return [...words].sort();
}
