import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLIPTokenizer } from '../../../trainer/tokenizer/clip_tokenizer.ts';
import { analysePrompt, nounPhrases, resolveSubjects } from '../../../trainer/synth/tokens.ts';
import { classifyWord, isFilteredClass } from '../../../trainer/synth/words.ts';
import { goldenVariants } from '../../helpers.ts';

const tokenizerDir = goldenVariants().map((v) => join(v.pipelineDir, 'tokenizer'));
const tokenizer = () => CLIPTokenizer.fromPretrained(tokenizerDir[0]!);

test('word classes: closed classes are filtered like the reference NLTK tags, open classes are not', () => {
  const filtered = ['a', 'an', 'the', 'of', 'on', 'in', 'at', 'and', 'or', 'two', '4', 'to', 'its', 'their', 'can', 'which', 'where', 'there', "'s", 'up', 'left', 'right', 'top', 'bottom', 'oh', 'both'];
  for (const word of filtered) assert.ok(isFilteredClass(classifyWord(word)), `${word} (${classifyWord(word)}) is filtered`);
  const kept: [string, string][] = [['cat', 'noun'], ['Beach', 'noun'], ['kitten', 'noun'], ['red', 'adjective'], ['wooden', 'adjective'], ['beautiful', 'adjective'], ['sitting', 'verb'], ['is', 'verb'], ['painting', 'noun'], ['building', 'noun'], [',', 'punctuation'], ['!!', 'punctuation']];
  for (const [word, cls] of kept) {
    assert.equal(classifyWord(word), cls, word);
    assert.ok(!isFilteredClass(classifyWord(word)), `${word} is not filtered`);
  }
  assert.throws(() => classifyWord(''), /empty word/);
});

test('prompt analysis: EOS position, words with their token positions, function-word positions', () => {
  const analysis = analysePrompt(tokenizer(), 'a photo of a cat and a dog on the beach');
  assert.equal(analysis.ids.length, 77);
  assert.equal(analysis.eosIndex, 12);
  assert.equal(analysis.tokens[analysis.eosIndex], '<|endoftext|>');
  assert.deepEqual(analysis.words.map((w) => [w.text, w.cls, w.positions]), [
    ['a', 'determiner', [1]], ['photo', 'noun', [2]], ['of', 'preposition', [3]], ['a', 'determiner', [4]], ['cat', 'noun', [5]],
    ['and', 'conjunction', [6]], ['a', 'determiner', [7]], ['dog', 'noun', [8]], ['on', 'preposition', [9]], ['the', 'determiner', [10]],
    ['beach', 'noun', [11]],
  ]);
  assert.deepEqual(analysis.filterIndices, [1, 3, 4, 6, 7, 9, 10]);
});

test('EOS of a truncated prompt is the last position', () => {
  const analysis = analysePrompt(tokenizer(), Array(100).fill('cat').join(' '));
  assert.equal(analysis.eosIndex, 76);
});

test('boxes take noun phrases in order, skipping the framing "photo of"; verbs end a phrase', () => {
  const tok = tokenizer();
  const subjects = resolveSubjects(tok, analysePrompt(tok, 'a photo of a cat and a dog on the beach'), 2);
  assert.deepEqual(subjects, [
    { text: 'cat', positions: [5], leading: 5 },
    { text: 'dog', positions: [8], leading: 8 },
  ]);
  const sitting = resolveSubjects(tok, analysePrompt(tok, 'a cat sitting on a red chair'), 2);
  assert.deepEqual(sitting, [
    { text: 'cat', positions: [2], leading: 2 },
    { text: 'red chair', positions: [6, 7], leading: 7 },
  ]);
  assert.throws(() => resolveSubjects(tok, analysePrompt(tok, 'a photo of a cat'), 2), /only 1 noun phrase/);
});

test('multi-token words: the subject holds every token and leads with the noun’s last token', () => {
  const tok = tokenizer();
  const analysis = analysePrompt(tok, 'a ginger kitten and a gray puppy in a yard');
  assert.deepEqual(nounPhrases(analysis).map((p) => p.map((w) => w.text).join(' ')), ['ginger kitten', 'gray puppy', 'yard']);
  const [kitten, puppy] = resolveSubjects(tok, analysis, 2);
  const tokensOf = (positions: number[]) => positions.map((p) => analysis.tokens[p]).join(' ');
  assert.equal(kitten!.text, 'ginger kitten');
  assert.equal(tokensOf(kitten!.positions), tok.tokenize('ginger kitten').join(' '));
  assert.equal(analysis.tokens[kitten!.leading], tok.tokenize('kitten').at(-1));
  assert.equal(kitten!.leading, Math.max(...kitten!.positions));
  assert.equal(puppy!.text, 'gray puppy');
  assert.equal(tokensOf(puppy!.positions), tok.tokenize('gray puppy').join(' '));
});

test('explicit subjects: found by their tokens, repeats take successive occurrences, in box order', () => {
  const tok = tokenizer();
  const analysis = analysePrompt(tok, 'a photo of a cat and a dog on the beach');
  assert.deepEqual(resolveSubjects(tok, analysis, 2, ['dog', 'cat']).map((s) => s.positions), [[8], [5]]);
  const twice = analysePrompt(tok, 'a cat and a cat');
  assert.deepEqual(resolveSubjects(tok, twice, 2, ['cat', 'cat']).map((s) => s.positions), [[2], [5]]);
  assert.throws(() => resolveSubjects(tok, twice, 3, ['cat', 'cat', 'cat']), /more often than the prompt/);
  assert.throws(() => resolveSubjects(tok, analysis, 2, ['cat', 'horse']), /'horse' does not occur/);
  assert.throws(() => resolveSubjects(tok, analysis, 2, ['cat']), /2 boxes but 1 subjects/);
  // a subject spelled over several words keeps its noun as the leading token
  const [redChair] = resolveSubjects(tok, analysePrompt(tok, 'a red chair next to a cat'), 1, ['red chair']);
  assert.deepEqual(redChair, { text: 'red chair', positions: [2, 3], leading: 3 });
});

test('placeholder tokens take the boxes in prompt order and are never filtered', () => {
  const tok = tokenizer();
  tok.addTokens(['<asset0>', '<asset1>']);
  const analysis = analysePrompt(tok, 'a photo of <asset1> and <asset0> on the beach');
  assert.deepEqual(analysis.words.filter((w) => w.cls === 'placeholder').map((w) => [w.text, w.positions]), [['<asset1>', [4]], ['<asset0>', [6]]]);
  assert.ok(!analysis.filterIndices.includes(4) && !analysis.filterIndices.includes(6));
  assert.deepEqual(resolveSubjects(tok, analysis, 2), [
    { text: '<asset1>', positions: [4], leading: 4 },
    { text: '<asset0>', positions: [6], leading: 6 },
  ]);
  assert.deepEqual(resolveSubjects(tok, analysis, 2, ['<asset0>', '<asset1>']).map((s) => s.positions), [[6], [4]]);
  assert.throws(() => resolveSubjects(tok, analysis, 3), /3 boxes but the prompt has 2 placeholder/);
});

test('every fixture tokenizer analyses the same prompt the same way', () => {
  const results = tokenizerDir.map((dir) => {
    const tok = CLIPTokenizer.fromPretrained(dir);
    const analysis = analysePrompt(tok, 'a photo of a cat and a dog on the beach');
    return { eos: analysis.eosIndex, filter: analysis.filterIndices, subjects: resolveSubjects(tok, analysis, 2) };
  });
  for (const result of results.slice(1)) assert.deepEqual(result, results[0]);
});
