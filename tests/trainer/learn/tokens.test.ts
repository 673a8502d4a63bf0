import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { tf } from '../../../trainer/runtime/backend.ts';
import { StableDiffusionPipeline } from '../../../trainer/pipelines/stable_diffusion.ts';
import { addPlaceholders, initialRows, initializerTokenId, knownWord, placeholderTokens } from '../../../trainer/learn/tokens.ts';
import { Generator } from '../../../trainer/util/random.ts';
import { fixturesDir, setupRuntime } from '../../helpers.ts';

before(setupRuntime);

describe('placeholder initialisation (spec §1.2)', () => {
  const load = () => StableDiffusionPipeline.fromPretrained(join(fixturesDir(), 'tiny-sd'));

  test('mean: the vocabulary mean plus tiny seeded noise', () => {
    const pipe = load();
    const table = pipe.textEncoder.store.get(pipe.textEncoder.tokenEmbedding.weight) as tf.Tensor as tf.Tensor2D;
    const mean = tf.mean(table, 0).dataSync();
    const rows = initialRows(table, 2, 'mean', new Generator(0)).arraySync();
    for (const row of rows) row.forEach((v, i) => assert.ok(Math.abs(v - mean[i]!) < 1e-5, `row deviates from the mean by ${v - mean[i]!}`));
    assert.notDeepEqual(rows[0], rows[1], 'the seeded noise makes the rows differ');
    assert.deepEqual(initialRows(table, 2, 'mean', new Generator(0)).arraySync(), rows, 'the same seed gives the same rows');
    pipe.dispose();
  });

  test('normal: 𝒩(0, 0.02²); bas: rows [V − 2N, V − N) of the old table', () => {
    const pipe = load();
    const table = pipe.textEncoder.store.get(pipe.textEncoder.tokenEmbedding.weight) as tf.Tensor as tf.Tensor2D;
    const normal = initialRows(table, 64, 'normal', new Generator(3));
    const std = Math.sqrt(tf.moments(normal).variance.dataSync()[0]!);
    assert.ok(std > 0.018 && std < 0.022, `std ${std}`);
    const bas = initialRows(table, 3, 'bas', new Generator(0));
    assert.deepEqual(bas.arraySync(), tf.slice(table, [1000 - 6, 0], [3, -1]).arraySync());
    pipe.dispose();
  });

  test('addPlaceholders appends tokens, grows the table and copies initializer words', () => {
    const pipe = load();
    const tokens = placeholderTokens(2);
    const wordId = initializerTokenId(pipe.tokenizer, 'photo');
    const added = addPlaceholders(pipe.tokenizer, pipe.textEncoder, tokens, { init: 'mean', initializerWords: [null, 'photo'], generator: new Generator(0) });
    assert.deepEqual(added.tokenIds, [1000, 1001]);
    assert.equal(added.baseVocabSize, 1000);
    assert.equal(pipe.textEncoder.vocabSize, 1002);
    assert.deepEqual(pipe.tokenizer.encode('<asset1>').inputIds.slice(1, 2), [1001]);
    const [copied, word] = pipe.textEncoder.getTokenEmbeddings([1001, wordId]).arraySync();
    assert.deepEqual(copied, word);
    assert.throws(() => initializerTokenId(pipe.tokenizer, ''), /no tokens/);
    pipe.dispose();
  });

  test('knownWord: a name the tokenizer reads as one whole vocabulary word', () => {
    const pipe = load();
    assert.deepEqual(
      ['dog', ' Dog ', 'dogs', 'zqxj', 'red dog', '', '<asset0>'].map((name) => knownWord(pipe.tokenizer, name)),
      ['dog', 'dog', null, null, null, null, null],
    );
    pipe.dispose();
  });

  test('a text encoder with spare rows past the vocabulary keeps its table; the mean is the vocabulary\'s', () => {
    const pipe = load();
    const hidden = pipe.textEncoder.config.hidden_size;
    const vocabularyMean = tf.tidy(() => tf.mean(pipe.textEncoder.store.get(pipe.textEncoder.tokenEmbedding.weight), 0).dataSync());
    // spare rows as the embedded model ships them, here far from the vocabulary so that using them would show
    pipe.textEncoder.resizeTokenEmbeddings(1008);
    const spare = tf.fill([8, hidden], 50);
    pipe.textEncoder.setTokenEmbeddings([1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007], spare as tf.Tensor2D);
    spare.dispose();
    const added = addPlaceholders(pipe.tokenizer, pipe.textEncoder, placeholderTokens(2), { init: 'mean', generator: new Generator(0) });
    assert.deepEqual(added.tokenIds, [1000, 1001]);
    assert.equal(added.baseVocabSize, 1008);
    assert.equal(pipe.textEncoder.vocabSize, 1008, 'the spare rows hold the new tokens; the table neither grows nor shrinks');
    for (const row of pipe.textEncoder.getTokenEmbeddings(added.tokenIds).arraySync()) {
      row.forEach((v, i) => assert.ok(Math.abs(v - vocabularyMean[i]!) < 1e-5, `row deviates from the vocabulary mean by ${v - vocabularyMean[i]!}`));
    }
    pipe.textEncoder.resizeTokenEmbeddings(1000);
    pipe.tokenizer.addTokens(['<more0>', '<more1>']);
    assert.throws(() => addPlaceholders(pipe.tokenizer, pipe.textEncoder, ['<x>'], { init: 'mean', generator: new Generator(0) }), /1004 tokens but the text encoder only 1000 rows/);
    pipe.dispose();
  });
});
