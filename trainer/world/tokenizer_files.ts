// Builds a CLIP-format byte-level BPE tokenizer folder (vocab.json, merges.txt, tokenizer_config.json,
// special_tokens_map.json) in which every given word is one token, as transformers' CLIPTokenizer reads it.
// The vocabulary is the 256 byte symbols, the same with the end-of-word marker, one entry per merge result, then
// <|startoftext|> and <|endoftext|>; the text encoder gets a few spare rows after that for placeholder tokens.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLIPTokenizer } from '../tokenizer/clip_tokenizer.ts';

const WORD_END = '</w>';
const START_TOKEN = '<|startoftext|>';
const END_TOKEN = '<|endoftext|>';

export interface ClipTokenizerBuildOptions {
  /** "!" (as SD 2.x, the default) or "<|endoftext|>" (as SD 1.x) */
  padToken?: '!' | '<|endoftext|>';
  /** spare text-encoder rows after the vocabulary, for tokens added later (placeholders); default 32 */
  headroom?: number;
  /** default 77 */
  modelMaxLength?: number;
}

export interface ClipTokenizerBuild {
  /** file name -> contents */
  files: Record<'vocab.json' | 'merges.txt' | 'tokenizer_config.json' | 'special_tokens_map.json', string>;
  /** entries in vocab.json; the first added token gets this id */
  vocabSize: number;
  /** rows the text encoder's token embedding should have: vocabSize + headroom, rounded up to a multiple of 8 */
  textEncoderVocabSize: number;
  /** word -> its single token id */
  wordIds: Record<string, number>;
}

/**
 * The 256 byte-level base symbols in CLIP's vocabulary order: the printable bytes as themselves, then the other
 * bytes, which the byte-level alphabet maps to U+0100 onwards in byte order.
 */
function baseSymbols(): string[] {
  const printable: string[] = [];
  const remapped: string[] = [];
  for (let byte = 0; byte < 256; byte++) {
    if ((byte >= 0x21 && byte <= 0x7e) || (byte >= 0xa1 && byte <= 0xac) || (byte >= 0xae && byte <= 0xff)) {
      printable.push(String.fromCodePoint(byte));
    } else {
      remapped.push(String.fromCodePoint(256 + remapped.length));
    }
  }
  return [...printable, ...remapped];
}

function bpeTokens(merges: readonly string[], word: string): string[] {
  return new CLIPTokenizer({ vocab: { [END_TOKEN]: 0 }, merges: [...merges] }).tokenize(word);
}

export function buildClipTokenizerFiles(words: readonly string[], options: ClipTokenizerBuildOptions = {}): ClipTokenizerBuild {
  const padToken = options.padToken ?? '!';
  const headroom = options.headroom ?? 32;
  const modelMaxLength = options.modelMaxLength ?? 77;
  if (!Number.isInteger(headroom) || headroom < 0) throw new Error(`headroom must be a non-negative integer, got ${headroom}`);
  const unique = [...new Set(words)].sort();
  if (unique.length === 0) throw new Error('the tokenizer needs at least one word');
  for (const word of unique) {
    // CLIP lower-cases text and splits it into runs of letters, so only such runs can be single tokens
    if (!/^[a-z]+$/.test(word)) throw new Error(`word '${word}' is not lower-case ASCII letters; CLIP would split or change it`);
  }

  // Merges are added word by word: run BPE with the merges so far, then join the remaining pieces left to
  // right. Merges of earlier words keep their lower ranks, so each earlier word still collapses the same way.
  const merges: string[] = [];
  for (const word of unique) {
    let pieces = bpeTokens(merges, word);
    while (pieces.length > 1) {
      merges.push(`${pieces[0]} ${pieces[1]}`);
      pieces = [pieces[0]! + pieces[1]!, ...pieces.slice(2)];
    }
  }

  const vocab: Record<string, number> = {};
  const add = (token: string) => {
    if (!(token in vocab)) vocab[token] = Object.keys(vocab).length;
  };
  const symbols = baseSymbols();
  for (const symbol of symbols) add(symbol);
  for (const symbol of symbols) add(symbol + WORD_END);
  for (const merge of merges) add(merge.replace(' ', ''));
  add(START_TOKEN);
  add(END_TOKEN);
  const vocabSize = Object.keys(vocab).length;

  const tokenizer = new CLIPTokenizer({ vocab, merges, padToken });
  const wordIds: Record<string, number> = {};
  for (const word of unique) {
    const tokens = tokenizer.tokenize(word);
    if (tokens.length !== 1 || tokens[0] !== word + WORD_END) {
      throw new Error(`internal error: '${word}' tokenizes to ${JSON.stringify(tokens)}, not one token`);
    }
    wordIds[word] = vocab[tokens[0]]!;
  }

  const addedToken = (content: string) => ({ content, lstrip: false, normalized: true, rstrip: false, single_word: false });
  const specialTokensMap = {
    bos_token: addedToken(START_TOKEN),
    eos_token: addedToken(END_TOKEN),
    pad_token: padToken,
    unk_token: addedToken(END_TOKEN),
  };
  const tokenizerConfig = {
    bos_token: { __type: 'AddedToken', ...addedToken(START_TOKEN) },
    clean_up_tokenization_spaces: true,
    eos_token: { __type: 'AddedToken', ...addedToken(END_TOKEN) },
    errors: 'replace',
    model_max_length: modelMaxLength,
    pad_token: padToken,
    tokenizer_class: 'CLIPTokenizer',
    unk_token: { __type: 'AddedToken', ...addedToken(END_TOKEN) },
  };
  return {
    files: {
      'vocab.json': `${JSON.stringify(vocab, null, 2)}\n`,
      'merges.txt': `#version: 0.2\n${merges.join('\n')}\n`,
      'tokenizer_config.json': `${JSON.stringify(tokenizerConfig, null, 2)}\n`,
      'special_tokens_map.json': `${JSON.stringify(specialTokensMap, null, 2)}\n`,
    },
    vocabSize,
    textEncoderVocabSize: Math.ceil((vocabSize + headroom) / 8) * 8,
    wordIds,
  };
}

/** Writes the tokenizer folder and returns the build (sizes and word ids). */
export function writeClipTokenizer(dir: string, words: readonly string[], options: ClipTokenizerBuildOptions = {}): ClipTokenizerBuild {
  const build = buildClipTokenizerFiles(words, options);
  mkdirSync(dir, { recursive: true });
  for (const [name, contents] of Object.entries(build.files)) writeFileSync(join(dir, name), contents);
  return build;
}
