// Placeholder tokens <asset0>…<asset{N-1}> and their initial embedding rows (spec §1.2).
import { tf } from '../runtime/backend.ts';
import type { CLIPTextModel } from '../models/clip_text_model.ts';
import type { CLIPTokenizer } from '../tokenizer/clip_tokenizer.ts';
import type { Generator } from '../util/random.ts';
import type { TokenInit } from './options.ts';

export function placeholderTokens(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `<asset${i}>`);
}

/** transformers' mean-resizing variance factor: new rows ~ 𝒩(μ, 1e-9·Σ). */
const MEAN_RESIZING_EPSILON = 1e-9;

/**
 * Rows [count, hidden] for new tokens appended to `table` [vocab, hidden]:
 * - mean: 𝒩(μ, 1e-9·Σ) with μ, Σ the vocabulary mean and covariance (Σ = XcᵀXc/n), drawn exactly as
 *   μ + √(1e-9/n)·Xcᵀw with w ~ 𝒩(0, I_n), which has that covariance without forming Σ;
 * - normal: 𝒩(0, 0.02²);
 * - bas: copies of rows [vocab + count − 3·count, vocab + count − 2·count) of the resized table.
 */
export function initialRows(table: tf.Tensor2D, count: number, init: TokenInit, generator: Generator): tf.Tensor2D {
  const [vocab, hidden] = table.shape;
  return tf.tidy(() => {
    if (init === 'normal') return tf.mul(tf.tensor2d(generator.randn(count * hidden), [count, hidden]), 0.02);
    if (init === 'bas') {
      const start = vocab - 2 * count;
      if (start < 0) throw new Error(`Break-a-Scene initialisation needs at least ${2 * count} vocabulary rows`);
      return tf.slice(table, [start, 0], [count, hidden]);
    }
    const mean = tf.mean(table, 0, true);
    const centered = tf.sub(table, mean);
    const weights = tf.tensor2d(generator.randn(count * vocab), [count, vocab]);
    return tf.add(mean, tf.mul(tf.matMul(weights, centered), Math.sqrt(MEAN_RESIZING_EPSILON / vocab)));
  });
}

/** The row of an initializer word's first sub-token. */
export function initializerTokenId(tokenizer: CLIPTokenizer, word: string): number {
  const [first] = tokenizer.tokenize(word);
  if (first === undefined) throw new Error(`initializer word '${word}' produces no tokens`);
  return tokenizer.convertTokensToIds([first])[0]!;
}

/** `name` when the tokenizer reads it as one whole word of its vocabulary ("circle", "dog"), else null. */
export function knownWord(tokenizer: CLIPTokenizer, name: string): string | null {
  const word = name.trim().toLowerCase();
  const pieces = word ? tokenizer.tokenize(word) : [];
  return pieces.length === 1 && pieces[0] === `${word}</w>` ? word : null;
}

export interface AddedPlaceholders {
  tokens: string[];
  tokenIds: number[];
  /** rows of the text-encoder table before the tokens were added (spare rows past the vocabulary included) */
  baseVocabSize: number;
}

/**
 * Adds the placeholder tokens to the tokenizer, grows the text-encoder table and writes their initial rows there:
 * `init` for every token, replaced by the initializer word's row where one is given.
 */
export function addPlaceholders(
  tokenizer: CLIPTokenizer,
  textEncoder: CLIPTextModel,
  tokens: string[],
  options: { init: TokenInit; initializerWords?: (string | null | undefined)[]; generator: Generator },
): AddedPlaceholders {
  const baseVocabSize = textEncoder.vocabSize;
  const vocabularySize = tokenizer.length;
  if (vocabularySize > baseVocabSize) {
    throw new Error(`the tokenizer has ${vocabularySize} tokens but the text encoder only ${baseVocabSize} rows; load a matching model`);
  }
  const words = options.initializerWords ?? [];
  if (words.length > tokens.length) throw new Error(`${words.length} initializer words for ${tokens.length} instances`);
  const wordIds = words.map((word) => (word ? initializerTokenId(tokenizer, word) : null));
  // the statistics of the vocabulary, not of spare rows past it that no token uses
  const rows = tf.tidy(() => {
    const table = textEncoder.store.get(textEncoder.tokenEmbedding.weight) as tf.Tensor as tf.Tensor2D;
    const vocabulary = vocabularySize === baseVocabSize ? table : tf.slice(table, 0, vocabularySize);
    return initialRows(vocabulary, tokens.length, options.init, options.generator);
  });
  const tokenIds = tokenizer.addTokens(tokens);
  textEncoder.ensureTokenRows(tokenizer.length);
  textEncoder.setTokenEmbeddings(tokenIds, rows);
  rows.dispose();
  const copied = wordIds.flatMap((id, i) => (id === null ? [] : [{ id, token: tokenIds[i]! }]));
  if (copied.length > 0) {
    const source = textEncoder.getTokenEmbeddings(copied.map((c) => c.id));
    textEncoder.setTokenEmbeddings(copied.map((c) => c.token), source);
    source.dispose();
  }
  return { tokens, tokenIds, baseVocabSize };
}
