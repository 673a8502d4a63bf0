// CLIP's byte-level BPE tokenizer with the behaviour of transformers' slow CLIPTokenizer (no ftfy), loaded from a
// diffusers `tokenizer/` folder. Special and added tokens are cut out of the raw text first (leftmost, longest
// match, case-sensitive), like transformers' added-tokens trie; every other span is cleaned, split by CLIP's regex,
// byte-encoded and merged by BPE. With SD2's pad token "!" this splits every "!" out of a prompt on purpose: that
// is what the upstream tokenizer does, and the text encoder was trained with it.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readJson } from '../io/model_index.ts';
import { bytesToUnicode, unicodeToBytes } from './byte_level.ts';
import { basicClean } from './text_cleanup.ts';

export class TokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenizerError';
  }
}

const WORD_END = '</w>';
// CLIP's vocabulary was built from this many merges; longer merges.txt files are cut, as upstream does.
const MAX_MERGES = 49152 - 256 - 2;
const PRE_TOKEN_PATTERN = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+/giu;

export interface CLIPTokenizerOptions {
  /** token -> id (vocab.json) */
  vocab: Record<string, number>;
  /** merge rules in priority order, each "left right" (merges.txt without its version line) */
  merges: string[];
  bosToken?: string;
  eosToken?: string;
  unkToken?: string;
  padToken?: string;
  additionalSpecialTokens?: string[];
  /** null when the config sets none; then padding/truncation need an explicit maxLength */
  modelMaxLength?: number | null;
  cleanUpTokenizationSpaces?: boolean;
}

export interface EncodeOptions {
  /** wrap in <|startoftext|> ... <|endoftext|> (default true) */
  addSpecialTokens?: boolean;
  /** cut to maxLength, keeping the end token (default false) */
  truncation?: boolean;
  /** 'max_length' pads with the pad token up to maxLength (default: no padding) */
  padding?: 'max_length' | false;
  /** default: model_max_length from the tokenizer config */
  maxLength?: number;
}

export interface Encoding {
  inputIds: number[];
  /** 1 for real tokens (including the start and end tokens), 0 for padding */
  attentionMask: number[];
}

export interface BatchEncoding {
  inputIds: number[][];
  attentionMask: number[][];
}

interface TextSpan {
  text: string;
  /** a special or added token, kept whole */
  whole: boolean;
}

function tokenContent(value: unknown, where: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  throw new TokenizerError(`${where}: expected a token string or {"content": ...}, got ${JSON.stringify(value)}`);
}

export class CLIPTokenizer {
  readonly bosToken: string;
  readonly eosToken: string;
  readonly unkToken: string;
  readonly padToken: string;
  readonly modelMaxLength: number | null;
  readonly cleanUpTokenizationSpaces: boolean;

  private readonly encoder = new Map<string, number>();
  private readonly decoder = new Map<number, string>();
  private readonly addedTokensEncoder = new Map<string, number>();
  private readonly addedTokensDecoder = new Map<number, string>();
  private readonly bpeRanks = new Map<string, number>();
  private readonly bpeCache = new Map<string, string[]>();
  private readonly specialTokens: string[];
  /** tokens matched whole before BPE, grouped by first character, longest first */
  private wholeTokensByFirstChar = new Map<string, string[]>();

  constructor(options: CLIPTokenizerOptions) {
    for (const [token, id] of Object.entries(options.vocab)) {
      if (!Number.isInteger(id) || id < 0) throw new TokenizerError(`vocab entry '${token}' has invalid id ${JSON.stringify(id)}`);
      this.encoder.set(token, id);
      this.decoder.set(id, token);
    }
    options.merges.slice(0, MAX_MERGES).forEach((line, rank) => {
      const parts = line.trim().split(/\s+/);
      if (parts.length !== 2) throw new TokenizerError(`merge rule ${rank + 1} '${line}' does not have two parts`);
      this.bpeRanks.set(`${parts[0]} ${parts[1]}`, rank);
    });
    this.bosToken = options.bosToken ?? '<|startoftext|>';
    this.eosToken = options.eosToken ?? '<|endoftext|>';
    this.unkToken = options.unkToken ?? '<|endoftext|>';
    this.padToken = options.padToken ?? '<|endoftext|>';
    this.modelMaxLength = options.modelMaxLength ?? null;
    this.cleanUpTokenizationSpaces = options.cleanUpTokenizationSpaces ?? true;
    if (!this.encoder.has(this.unkToken)) throw new TokenizerError(`the unknown token '${this.unkToken}' is not in the vocabulary`);
    for (const literal of ['<|startoftext|>', '<|endoftext|>']) this.bpeCache.set(literal, [literal]);
    this.specialTokens = [...new Set([this.bosToken, this.eosToken, this.unkToken, this.padToken, ...(options.additionalSpecialTokens ?? [])])];
    this.rebuildWholeTokenIndex();
  }

  /**
   * Loads vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json (which wins over the config,
   * as in transformers), plus added_tokens.json when present (tokens added by an earlier session).
   */
  static fromPretrained(tokenizerDir: string): CLIPTokenizer {
    const vocabPath = join(tokenizerDir, 'vocab.json');
    const mergesPath = join(tokenizerDir, 'merges.txt');
    for (const path of [vocabPath, mergesPath]) {
      if (!existsSync(path)) throw new TokenizerError(`${tokenizerDir} is not a CLIP tokenizer folder: ${path} is missing`);
    }
    const vocab = readJson<Record<string, number>>(vocabPath);
    // The first line is the "#version" header; upstream drops it unconditionally.
    const merges = readFileSync(mergesPath, 'utf8').trim().split('\n').slice(1);
    const config = CLIPTokenizer.readOptionalJson(join(tokenizerDir, 'tokenizer_config.json'));
    const specialMap = CLIPTokenizer.readOptionalJson(join(tokenizerDir, 'special_tokens_map.json'));
    const special = (name: string) => tokenContent(specialMap[name] ?? config[name], `${tokenizerDir} ${name}`);
    const additional = specialMap.additional_special_tokens ?? config.additional_special_tokens ?? [];
    if (!Array.isArray(additional)) throw new TokenizerError(`${tokenizerDir}: additional_special_tokens must be a list`);
    const maxLength = config.model_max_length;
    if (maxLength !== undefined && (typeof maxLength !== 'number' || !(maxLength > 0))) {
      throw new TokenizerError(`${tokenizerDir}: model_max_length must be a positive number, got ${JSON.stringify(maxLength)}`);
    }
    const tokenizer = new CLIPTokenizer({
      vocab,
      merges,
      bosToken: special('bos_token'),
      eosToken: special('eos_token'),
      unkToken: special('unk_token'),
      padToken: special('pad_token'),
      additionalSpecialTokens: additional.map((token: unknown) => tokenContent(token, `${tokenizerDir} additional_special_tokens`)!),
      // Configs without a limit store a huge sentinel (int(1e30)); treat that as "no limit".
      modelMaxLength: typeof maxLength === 'number' && maxLength < 1e12 ? maxLength : null,
      cleanUpTokenizationSpaces: typeof config.clean_up_tokenization_spaces === 'boolean' ? config.clean_up_tokenization_spaces : true,
    });
    const addedPath = join(tokenizerDir, 'added_tokens.json');
    if (existsSync(addedPath)) tokenizer.restoreAddedTokens(readJson<Record<string, number>>(addedPath), addedPath);
    return tokenizer;
  }

  private static readOptionalJson(path: string): Record<string, any> {
    return existsSync(path) ? readJson<Record<string, any>>(path) : {};
  }

  /** Size of the base vocabulary (vocab.json), as transformers' `vocab_size`. */
  get vocabSize(): number {
    return this.encoder.size;
  }

  /** Base vocabulary plus added tokens, as transformers' `len(tokenizer)`; the text encoder needs this many rows. */
  get length(): number {
    return this.encoder.size + this.addedTokensEncoder.size;
  }

  get bosTokenId(): number {
    return this.tokenToId(this.bosToken);
  }

  get eosTokenId(): number {
    return this.tokenToId(this.eosToken);
  }

  get padTokenId(): number {
    return this.tokenToId(this.padToken);
  }

  get unkTokenId(): number {
    return this.tokenToId(this.unkToken);
  }

  /** Ids of the special tokens (start, end, unknown, pad, additional). */
  get allSpecialIds(): number[] {
    return [...new Set(this.specialTokens.map((token) => this.tokenToId(token)))];
  }

  /** The BPE token strings of `text`, without start/end tokens. */
  tokenize(text: string): string[] {
    const tokens: string[] = [];
    for (const span of this.splitOnWholeTokens(text)) {
      if (span.whole) {
        tokens.push(span.text);
        continue;
      }
      for (const word of basicClean(span.text).match(PRE_TOKEN_PATTERN) ?? []) tokens.push(...this.bpe(bytesToUnicode(word)));
    }
    return tokens;
  }

  convertTokensToIds(tokens: readonly string[]): number[] {
    return tokens.map((token) => this.tokenToId(token));
  }

  convertIdsToTokens(ids: readonly number[]): string[] {
    return ids.map((id) => {
      const token = this.addedTokensDecoder.get(id) ?? this.decoder.get(id);
      if (token === undefined) throw new TokenizerError(`token id ${id} is outside the vocabulary (size ${this.length})`);
      return token;
    });
  }

  encode(text: string, options: EncodeOptions = {}): Encoding {
    const addSpecialTokens = options.addSpecialTokens ?? true;
    let ids = this.convertTokensToIds(this.tokenize(text));
    const specialCount = addSpecialTokens ? 2 : 0;
    const needsLength = options.truncation || options.padding === 'max_length';
    const maxLength = options.maxLength ?? this.modelMaxLength;
    if (needsLength && maxLength === null) {
      throw new TokenizerError('truncation/padding need a maxLength: this tokenizer config sets no model_max_length');
    }
    if (maxLength !== null && needsLength && (!Number.isInteger(maxLength) || maxLength < specialCount)) {
      throw new TokenizerError(`maxLength ${maxLength} cannot hold the ${specialCount} start/end tokens`);
    }
    if (options.truncation && ids.length + specialCount > maxLength!) ids = ids.slice(0, maxLength! - specialCount);
    const inputIds = addSpecialTokens ? [this.bosTokenId, ...ids, this.eosTokenId] : ids;
    const attentionMask = inputIds.map(() => 1);
    if (options.padding === 'max_length') {
      while (inputIds.length < maxLength!) {
        inputIds.push(this.padTokenId);
        attentionMask.push(0);
      }
    }
    return { inputIds, attentionMask };
  }

  encodeBatch(texts: readonly string[], options: EncodeOptions = {}): BatchEncoding {
    const encodings = texts.map((text) => this.encode(text, options));
    return { inputIds: encodings.map((e) => e.inputIds), attentionMask: encodings.map((e) => e.attentionMask) };
  }

  /**
   * Text of `ids`. Added tokens are kept verbatim and space-separated from their neighbours; word ends become
   * spaces; with cleanUpTokenizationSpaces the space before punctuation and English contractions is removed.
   */
  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean; cleanUpTokenizationSpaces?: boolean } = {}): string {
    const skipped = new Set(options.skipSpecialTokens ? this.allSpecialIds : []);
    const pieces: string[] = [];
    let bpeRun: string[] = [];
    const flushRun = () => {
      if (bpeRun.length > 0) pieces.push(unicodeToBytes(bpeRun.join('')).replaceAll(WORD_END, ' ').trim());
      bpeRun = [];
    };
    ids.forEach((id, index) => {
      if (skipped.has(id)) return;
      const [token] = this.convertIdsToTokens([id]);
      if (token === undefined) throw new TokenizerError(`cannot decode id at position ${index}`);
      if (this.addedTokensEncoder.has(token)) {
        flushRun();
        pieces.push(token);
      } else {
        bpeRun.push(token);
      }
    });
    flushRun();
    const text = pieces.join(' ');
    return options.cleanUpTokenizationSpaces ?? this.cleanUpTokenizationSpaces ? cleanUpTokenization(text) : text;
  }

  /**
   * Adds tokens that are matched whole in any later text (e.g. '<asset0>'), and returns their new ids, which
   * follow the current vocabulary (resize the text encoder's token embedding table to `length` after this).
   * Tokens already known, empty, or repeated are an error.
   */
  addTokens(tokens: readonly string[]): number[] {
    const seen = new Set<string>();
    for (const token of tokens) {
      if (typeof token !== 'string' || token.length === 0) throw new TokenizerError('cannot add an empty token');
      if (seen.has(token)) throw new TokenizerError(`token '${token}' is listed twice`);
      seen.add(token);
      const existing = this.addedTokensEncoder.get(token) ?? this.encoder.get(token);
      if (existing !== undefined) throw new TokenizerError(`token '${token}' is already in the vocabulary (id ${existing})`);
    }
    const ids = tokens.map((token) => {
      const id = this.length;
      this.addedTokensEncoder.set(token, id);
      this.addedTokensDecoder.set(id, token);
      return id;
    });
    this.rebuildWholeTokenIndex();
    return ids;
  }

  /** Added tokens and their ids, in id order (what transformers saves as added_tokens.json). */
  addedVocab(): Record<string, number> {
    return Object.fromEntries([...this.addedTokensEncoder].sort((a, b) => a[1] - b[1]));
  }

  /**
   * Positions in `ids` of every occurrence of the tokens of `text` (a word such as 'cat', several words, or an
   * added token); a multi-token match contributes all of its positions. Empty when `text` does not occur.
   */
  tokenPositions(ids: readonly number[], text: string): number[] {
    const needle = this.convertTokensToIds(this.tokenize(text));
    if (needle.length === 0) throw new TokenizerError(`'${text}' produces no tokens to look for`);
    const positions: number[] = [];
    for (let start = 0; start + needle.length <= ids.length; start++) {
      if (needle.every((id, offset) => ids[start + offset] === id)) {
        for (let offset = 0; offset < needle.length; offset++) positions.push(start + offset);
      }
    }
    return positions;
  }

  private tokenToId(token: string): number {
    return this.addedTokensEncoder.get(token) ?? this.encoder.get(token) ?? this.encoder.get(this.unkToken)!;
  }

  private restoreAddedTokens(added: Record<string, number>, path: string): void {
    const entries = Object.entries(added).sort((a, b) => a[1] - b[1]);
    for (const [token, id] of entries) {
      if (this.encoder.get(token) === id) continue;
      if (id !== this.length) throw new TokenizerError(`${path}: '${token}' has id ${id}, expected ${this.length} (ids must follow the vocabulary)`);
      this.addTokens([token]);
    }
  }

  private rebuildWholeTokenIndex(): void {
    const index = new Map<string, string[]>();
    for (const token of [...this.specialTokens, ...this.addedTokensEncoder.keys()]) {
      const first = token[0]!;
      const group = index.get(first) ?? [];
      if (!group.includes(token)) group.push(token);
      index.set(first, group);
    }
    for (const group of index.values()) group.sort((a, b) => b.length - a.length);
    this.wholeTokensByFirstChar = index;
  }

  private splitOnWholeTokens(text: string): TextSpan[] {
    const spans: TextSpan[] = [];
    let plainStart = 0;
    let position = 0;
    while (position < text.length) {
      const match = this.wholeTokensByFirstChar.get(text[position]!)?.find((token) => text.startsWith(token, position));
      if (match === undefined) {
        position++;
        continue;
      }
      if (position > plainStart) spans.push({ text: text.slice(plainStart, position), whole: false });
      spans.push({ text: match, whole: true });
      position += match.length;
      plainStart = position;
    }
    if (plainStart < text.length) spans.push({ text: text.slice(plainStart), whole: false });
    return spans;
  }

  /** Byte-level BPE of one pre-token; the last symbol carries the end-of-word marker. */
  private bpe(word: string): string[] {
    const cached = this.bpeCache.get(word);
    if (cached) return cached;
    const chars = Array.from(word);
    let symbols = [...chars.slice(0, -1), chars[chars.length - 1]! + WORD_END];
    while (symbols.length > 1) {
      let bestRank = Infinity;
      let bestIndex = -1;
      for (let i = 0; i + 1 < symbols.length; i++) {
        const rank = this.bpeRanks.get(`${symbols[i]} ${symbols[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          bestIndex = i;
        }
      }
      if (bestIndex < 0) break;
      const first = symbols[bestIndex]!;
      const second = symbols[bestIndex + 1]!;
      const merged: string[] = [];
      for (let i = 0; i < symbols.length; ) {
        if (symbols[i] === first && symbols[i + 1] === second && i + 1 < symbols.length) {
          merged.push(first + second);
          i += 2;
        } else {
          merged.push(symbols[i]!);
          i += 1;
        }
      }
      symbols = merged;
    }
    this.bpeCache.set(word, symbols);
    return symbols;
  }
}

/** transformers' clean_up_tokenization: no space before punctuation and English contractions. */
function cleanUpTokenization(text: string): string {
  return text
    .replaceAll(' .', '.')
    .replaceAll(' ?', '?')
    .replaceAll(' !', '!')
    .replaceAll(' ,', ',')
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}
