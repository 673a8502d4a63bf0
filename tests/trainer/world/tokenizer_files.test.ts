import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { CLIPTokenizer } from '../../../trainer/tokenizer/clip_tokenizer.ts';
import { sampleScene } from '../../../trainer/world/sampler.ts';
import { captionOf } from '../../../trainer/world/scene.ts';
import { buildClipTokenizerFiles, writeClipTokenizer } from '../../../trainer/world/tokenizer_files.ts';
import { worldVocabulary } from '../../../trainer/world/vocabulary.ts';
import { fixturesDir } from '../../helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'mifo-world-tokenizer-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const words = worldVocabulary();
const build = writeClipTokenizer(dir, words);
const tokenizer = CLIPTokenizer.fromPretrained(dir);

test('every caption word is one token of the CLIPTokenizer read from the written folder', () => {
  for (const word of words) {
    const { inputIds } = tokenizer.encode(word, { addSpecialTokens: false });
    assert.deepEqual(inputIds, [build.wordIds[word]], `'${word}' -> ${JSON.stringify(inputIds)}`);
    assert.notEqual(inputIds[0], tokenizer.unkTokenId, `'${word}' is not unknown`);
  }
  assert.equal(new Set(Object.values(build.wordIds)).size, words.length, 'distinct words get distinct ids');
  for (let seed = 0; seed < 200; seed++) {
    const caption = captionOf(sampleScene(seed));
    const { inputIds } = tokenizer.encode(caption, { padding: 'max_length', truncation: true });
    const captionWords = caption.split(' ');
    assert.equal(inputIds.length, 77);
    assert.deepEqual(inputIds.slice(0, captionWords.length + 2), [tokenizer.bosTokenId, ...captionWords.map((w) => build.wordIds[w]), tokenizer.eosTokenId]);
    assert.equal(tokenizer.decode(inputIds, { skipSpecialTokens: true }), caption);
  }
});

test('the vocabulary has CLIP layout: byte symbols as in the fixtures, merges, then start and end tokens', () => {
  const vocab: Record<string, number> = JSON.parse(readFileSync(join(dir, 'vocab.json'), 'utf8'));
  const fixtureVocab: Record<string, number> = JSON.parse(readFileSync(join(fixturesDir(), 'tiny-sd', 'tokenizer', 'vocab.json'), 'utf8'));
  const byteLevel = (entries: Record<string, number>) => Object.entries(entries).filter(([, id]) => id < 512).sort((a, b) => a[1] - b[1]);
  assert.deepEqual(byteLevel(vocab), byteLevel(fixtureVocab));
  assert.equal(Object.keys(vocab).length, build.vocabSize);
  assert.equal(vocab['<|startoftext|>'], build.vocabSize - 2);
  assert.equal(vocab['<|endoftext|>'], build.vocabSize - 1);
  assert.deepEqual([...new Set(Object.values(vocab))].sort((a, b) => a - b), Array.from({ length: build.vocabSize }, (_, i) => i), 'ids are 0..n-1');
  const merges = readFileSync(join(dir, 'merges.txt'), 'utf8').trim().split('\n');
  assert.equal(merges[0], '#version: 0.2');
  for (const merge of merges.slice(1)) assert.ok(merge.replace(' ', '') in vocab, `merge result of '${merge}' is in the vocabulary`);
  const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
  assert.equal(config.tokenizer_class, 'CLIPTokenizer');
  assert.equal(config.model_max_length, 77);
  assert.equal(tokenizer.padToken, '!');
  assert.equal(tokenizer.padTokenId, 0);
});

test('placeholder tokens land in the text encoder headroom', () => {
  assert.ok(build.textEncoderVocabSize >= build.vocabSize + 32 && build.textEncoderVocabSize % 8 === 0, `${build.textEncoderVocabSize}`);
  const withPlaceholders = CLIPTokenizer.fromPretrained(dir);
  const ids = withPlaceholders.addTokens(['<asset0>', '<asset1>', '<asset2>']);
  assert.deepEqual(ids, [build.vocabSize, build.vocabSize + 1, build.vocabSize + 2]);
  for (const id of ids) assert.ok(id < build.textEncoderVocabSize, `placeholder id ${id} fits the text encoder`);
  const { inputIds } = withPlaceholders.encode('a photo of <asset1> and a red star on snow');
  assert.equal(inputIds[4], ids[1]);
});

test('other options and bad words', () => {
  const sd1 = buildClipTokenizerFiles(['red', 'star'], { padToken: '<|endoftext|>', headroom: 0, modelMaxLength: 64 });
  assert.equal(JSON.parse(sd1.files['special_tokens_map.json']).pad_token, '<|endoftext|>');
  assert.equal(JSON.parse(sd1.files['tokenizer_config.json']).model_max_length, 64);
  assert.equal(sd1.textEncoderVocabSize, Math.ceil(sd1.vocabSize / 8) * 8);
  // words sharing prefixes and suffixes still each collapse to one token
  const tricky = ['a', 'aa', 'aaa', 'ab', 'ba', 'bab', 'abab', 'star', 'start', 'tar', 'art'];
  const trickyBuild = buildClipTokenizerFiles(tricky);
  const trickyTokenizer = new CLIPTokenizer({
    vocab: JSON.parse(trickyBuild.files['vocab.json']),
    merges: trickyBuild.files['merges.txt'].trim().split('\n').slice(1),
  });
  for (const word of tricky) assert.equal(trickyTokenizer.tokenize(word).length, 1, `'${word}' is one token`);
  assert.throws(() => buildClipTokenizerFiles(['Red']), /lower-case/);
  assert.throws(() => buildClipTokenizerFiles(['two words']), /lower-case/);
  assert.throws(() => buildClipTokenizerFiles([]), /at least one word/);
  assert.throws(() => buildClipTokenizerFiles(['red'], { headroom: -1 }), /headroom/);
});
