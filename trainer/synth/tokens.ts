// Token bookkeeping for bounded attention (reference: `_determine_tokens`): which positions of the tokenized prompt
// belong to each boxed subject, each subject's leading token, the end-of-text (EOS) position, and the function-word
// positions that are hidden from every pixel. Positions index the padded id sequence the text encoder sees
// (position 0 is the start token), i.e. the key axis of cross-attention.
import type { CLIPTokenizer } from '../tokenizer/clip_tokenizer.ts';
import { classifyWord, isFilteredClass, isFramingNoun, isNominal, type WordClass } from './words.ts';

export interface PromptWord {
  text: string;
  cls: WordClass;
  /** token positions of this word in the padded ids */
  positions: number[];
}

export interface PromptAnalysis {
  prompt: string;
  /** padded (and truncated) ids, the text encoder's input */
  ids: number[];
  /** the token string of every id */
  tokens: string[];
  /** position of the end-of-text token that closes the prompt */
  eosIndex: number;
  words: PromptWord[];
  /** positions of function words (closed word classes), hidden from every pixel */
  filterIndices: number[];
}

export interface Subject {
  /** the words of the subject as they read in the prompt */
  text: string;
  /** token positions; all of them are confined to the subject's region */
  positions: number[];
  /** the position whose cross-attention map seeds mask refinement (the subject's last noun token) */
  leading: number;
}

export class SubjectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SubjectError';
  }
}

/** Splits the tokenized prompt into words and classifies them. */
export function analysePrompt(tokenizer: CLIPTokenizer, prompt: string): PromptAnalysis {
  const ids = tokenizer.encode(prompt, { padding: 'max_length', truncation: true }).inputIds;
  const unpadded = tokenizer.encode(prompt, { truncation: true }).inputIds;
  const eosIndex = unpadded.length - 1;
  const tokens = tokenizer.convertIdsToTokens(ids);
  const added = new Set(Object.keys(tokenizer.addedVocab()));
  const special = new Set(tokenizer.allSpecialIds);

  const words: PromptWord[] = [];
  let pending: number[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    const text = tokenizer.decode(pending.map((p) => ids[p]!)).trim();
    words.push({ text, cls: classifyWord(text), positions: pending });
    pending = [];
  };
  for (let position = 1; position < eosIndex; position++) {
    const token = tokens[position]!;
    // Added and special tokens are matched whole by the tokenizer: each is a word of its own.
    if (added.has(token) || special.has(ids[position]!)) {
      flush();
      words.push({ text: token, cls: added.has(token) ? 'placeholder' : 'punctuation', positions: [position] });
      continue;
    }
    pending.push(position);
    if (token.endsWith('</w>')) flush();
  }
  flush();
  const filterIndices = words.filter((w) => isFilteredClass(w.cls)).flatMap((w) => w.positions);
  return { prompt, ids, tokens, eosIndex, words, filterIndices };
}

function leadingPosition(analysis: PromptAnalysis, positions: readonly number[]): number {
  const inSubject = new Set(positions);
  const nominal = analysis.words.filter((w) => isNominal(w.cls) && w.positions.some((p) => inSubject.has(p)));
  const candidates = nominal.length > 0 ? nominal.flatMap((w) => w.positions.filter((p) => inSubject.has(p))) : positions;
  return Math.max(...candidates);
}

function makeSubject(analysis: PromptAnalysis, positions: number[]): Subject {
  const inSubject = new Set(positions);
  const text = analysis.words
    .filter((w) => w.positions.some((p) => inSubject.has(p)))
    .map((w) => w.text)
    .join(' ');
  return { text, positions, leading: leadingPosition(analysis, positions) };
}

/** Runs of adjectives and nouns that end in a noun, minus framing nouns such as the "photo" of "a photo of". */
export function nounPhrases(analysis: PromptAnalysis): PromptWord[][] {
  const phrases: PromptWord[][] = [];
  let run: PromptWord[] = [];
  const close = (next: PromptWord | undefined) => {
    while (run.length > 0 && !isNominal(run[run.length - 1]!.cls)) run.pop();
    const head = run[run.length - 1];
    const framing = head !== undefined && head.cls === 'noun' && isFramingNoun(head.text) && next?.text.toLowerCase() === 'of';
    if (head && !framing) phrases.push(run);
    run = [];
  };
  analysis.words.forEach((word, i) => {
    if (word.cls === 'placeholder') {
      // A placeholder is a subject of its own; a modifier before it still belongs to it.
      run.push(word);
      close(analysis.words[i + 1]);
    } else if (word.cls === 'noun' || word.cls === 'adjective') {
      run.push(word);
    } else {
      close(word);
    }
  });
  close(undefined);
  return phrases;
}

function findSpans(haystack: readonly number[], needle: readonly number[], from: number, to: number): number[][] {
  const spans: number[][] = [];
  for (let start = from; start + needle.length <= to; start++) {
    if (needle.every((id, offset) => haystack[start + offset] === id)) spans.push(needle.map((_, offset) => start + offset));
  }
  return spans;
}

/**
 * One subject per box, in box order:
 * - `subjects` given: each text is found in the tokenized prompt (the k-th repeat of a text takes its k-th occurrence);
 * - otherwise the prompt's placeholder tokens (learned concepts), in order;
 * - otherwise its noun phrases, in order.
 */
export function resolveSubjects(tokenizer: CLIPTokenizer, analysis: PromptAnalysis, boxCount: number, subjects?: readonly string[]): Subject[] {
  if (!Number.isInteger(boxCount) || boxCount < 1) throw new SubjectError(`need at least one box, got ${boxCount}`);
  const prompt = `'${analysis.prompt}' (tokens: ${analysis.tokens.slice(1, analysis.eosIndex).join(' ')})`;
  if (subjects && subjects.length > 0) {
    if (subjects.length !== boxCount) throw new SubjectError(`${boxCount} boxes but ${subjects.length} subjects: give one subject per box`);
    const claimed = new Set<number>();
    return subjects.map((text) => {
      const needle = tokenizer.encode(text, { addSpecialTokens: false }).inputIds;
      if (needle.length === 0) throw new SubjectError(`subject '${text}' has no tokens`);
      const spans = findSpans(analysis.ids, needle, 1, analysis.eosIndex);
      if (spans.length === 0) throw new SubjectError(`subject '${text}' does not occur in the prompt ${prompt}`);
      const span = spans.find((s) => s.every((p) => !claimed.has(p)));
      if (!span) throw new SubjectError(`subject '${text}' is given more often than the prompt ${prompt} contains it`);
      for (const p of span) claimed.add(p);
      return makeSubject(analysis, span);
    });
  }
  const placeholders = analysis.words.filter((w) => w.cls === 'placeholder');
  if (placeholders.length > 0) {
    if (placeholders.length < boxCount) {
      throw new SubjectError(`${boxCount} boxes but the prompt has ${placeholders.length} placeholder token(s) ${prompt}; pass one --subject per box`);
    }
    return placeholders.slice(0, boxCount).map((w) => makeSubject(analysis, w.positions));
  }
  const phrases = nounPhrases(analysis);
  if (phrases.length < boxCount) {
    throw new SubjectError(`${boxCount} boxes but only ${phrases.length} noun phrase(s) found in ${prompt}; pass one --subject per box`);
  }
  return phrases.slice(0, boxCount).map((phrase) => makeSubject(analysis, phrase.flatMap((w) => w.positions)));
}
