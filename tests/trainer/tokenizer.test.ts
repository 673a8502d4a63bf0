import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLIPTokenizer, TokenizerError } from '../../trainer/tokenizer/clip_tokenizer.ts';
import { fixturesDir, goldenFile, goldenInts, goldenManifest, goldenVariants } from '../helpers.ts';

const manifest = goldenManifest();
const prompts: string[] = manifest.prompts;
const tokensJson = JSON.parse(readFileSync(join(fixturesDir(), 'tiny-sd-golden', 'tokens.json'), 'utf8'));

function tokenizerOf(pipelineDir: string): CLIPTokenizer {
  return CLIPTokenizer.fromPretrained(join(pipelineDir, 'tokenizer'));
}

function rows(ints: { shape: number[]; data: Int32Array }): number[][] {
  const [count, length] = ints.shape;
  return Array.from({ length: count! }, (_, i) => Array.from(ints.data.subarray(i * length!, (i + 1) * length!)));
}

for (const variant of goldenVariants()) {
  test(`${variant.name}: padded ids, attention mask and untruncated ids equal the golden tokenizer`, () => {
    const tokenizer = tokenizerOf(variant.pipelineDir);
    const golden = goldenFile(variant.name, 'tokenizer');
    try {
      const maxLength = golden.info('input_ids').shape[1];
      const batch = tokenizer.encodeBatch(prompts, { padding: 'max_length', maxLength, truncation: true });
      assert.deepEqual(batch.inputIds, rows(goldenInts(golden, 'input_ids')));
      assert.deepEqual(batch.attentionMask, rows(goldenInts(golden, 'attention_mask')));
      const untruncatedKeys = golden.keys().filter((key) => key.startsWith('input_ids_untruncated_'));
      assert.ok(untruncatedKeys.length > 0, 'golden file has untruncated ids');
      for (const key of untruncatedKeys) {
        const promptIndex = Number(key.slice('input_ids_untruncated_'.length));
        const expected = Array.from(goldenInts(golden, key).data);
        assert.deepEqual(tokenizer.encode(prompts[promptIndex]!).inputIds, expected, key);
      }
    } finally {
      golden.close();
    }
  });

  test(`${variant.name}: BPE strings and ids equal tokens.json for every prompt`, () => {
    const tokenizer = tokenizerOf(variant.pipelineDir);
    const entries = tokensJson[variant.name] as { prompt: string; tokens: string[]; ids: number[]; padded_ids: number[] }[];
    assert.equal(entries.length, prompts.length);
    for (const entry of entries) {
      assert.deepEqual(tokenizer.tokenize(entry.prompt), entry.tokens, entry.prompt);
      assert.deepEqual(tokenizer.encode(entry.prompt).inputIds, entry.ids, entry.prompt);
      const padded = tokenizer.encode(entry.prompt, { padding: 'max_length', maxLength: entry.padded_ids.length, truncation: true });
      assert.deepEqual(padded.inputIds, entry.padded_ids, entry.prompt);
    }
  });

  test(`${variant.name}: tokenPositions finds the manifest's cat token`, () => {
    const tokenizer = tokenizerOf(variant.pipelineDir);
    const ids = tokenizer.encode(prompts[0]!, { padding: 'max_length', truncation: true }).inputIds;
    assert.deepEqual(tokenizer.tokenPositions(ids, 'cat'), [variant.info.cat_token_index]);
  });
}

const [firstVariant] = goldenVariants();
if (!firstVariant) throw new Error('the golden manifest lists no variants');

test('clean-up: whitespace, case, NFC and control characters do not change the ids', () => {
  const tokenizer = tokenizerOf(firstVariant.pipelineDir);
  const plain = tokenizer.encode('a photo of a café').inputIds;
  assert.deepEqual(tokenizer.encode('  A\tPHOTO\n of\u00a0a  Cafe\u0301 ').inputIds, plain);
  assert.deepEqual(tokenizer.encode('a pho\u0000to\u200b of a café').inputIds, tokenizer.encode('a photo of a café').inputIds);
  assert.deepEqual(tokenizer.encode('').inputIds, [tokenizer.bosTokenId, tokenizer.eosTokenId]);
});

test('truncation keeps the end token and padding fills with the pad token', () => {
  const tokenizer = tokenizerOf(firstVariant.pipelineDir);
  const maxLength = tokenizer.modelMaxLength!;
  const long = Array.from({ length: maxLength }, () => 'red chair').join(' ');
  const full = tokenizer.encode(long).inputIds;
  assert.ok(full.length > maxLength);
  const truncated = tokenizer.encode(long, { truncation: true }).inputIds;
  assert.deepEqual(truncated, [...full.slice(0, maxLength - 1), tokenizer.eosTokenId]);
  const short = tokenizer.encode('red', { padding: 'max_length', maxLength: 6 });
  assert.deepEqual(short.inputIds.slice(3), [tokenizer.padTokenId, tokenizer.padTokenId, tokenizer.padTokenId]);
  assert.deepEqual(short.attentionMask, [1, 1, 1, 0, 0, 0]);
  assert.throws(() => tokenizer.encode('red', { truncation: true, maxLength: 1 }), TokenizerError);
});

test('added tokens are matched whole, get new ids, decode back and can be located', () => {
  const tokenizer = tokenizerOf(firstVariant.pipelineDir);
  const before = tokenizer.length;
  const ids = tokenizer.addTokens(['<asset0>', '<asset1>']);
  assert.deepEqual(ids, [before, before + 1]);
  assert.equal(tokenizer.length, before + 2);
  const prompt = 'a photo of <asset0> and <asset1>';
  const tokens = tokenizer.tokenize(prompt);
  assert.deepEqual(tokens.slice(-3), ['<asset0>', 'and</w>', '<asset1>']);
  const encoded = tokenizer.encode(prompt).inputIds;
  assert.deepEqual(tokenizer.tokenPositions(encoded, '<asset0>'), [encoded.indexOf(ids[0]!)]);
  assert.deepEqual(tokenizer.tokenPositions(encoded, '<asset1>'), [encoded.length - 2]);
  assert.deepEqual(tokenizer.tokenize('<asset0>s'), ['<asset0>', 's</w>']);
  assert.deepEqual(tokenizer.convertIdsToTokens(ids), ['<asset0>', '<asset1>']);
  assert.equal(tokenizer.decode(encoded, { skipSpecialTokens: true }), prompt);
  assert.throws(() => tokenizer.addTokens(['<asset0>']), /already in the vocabulary/);
  assert.throws(() => tokenizer.addTokens(['cat</w>']), /already in the vocabulary/);
  assert.throws(() => tokenizer.convertIdsToTokens([before + 2]), TokenizerError);
});

test('added_tokens.json in the folder restores added tokens', (t) => {
  const source = join(firstVariant.pipelineDir, 'tokenizer');
  const dir = mkdtempSync(join(tmpdir(), 'mifo-tok-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const name of ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(source, name), join(dir, name));
  const base = tokenizerOf(firstVariant.pipelineDir);
  writeFileSync(join(dir, 'added_tokens.json'), JSON.stringify({ '<b>': base.length + 1, '<a>': base.length }));
  const restored = CLIPTokenizer.fromPretrained(dir);
  assert.deepEqual(restored.encode('<a> <b>').inputIds, [base.bosTokenId, base.length, base.length + 1, base.eosTokenId]);
  writeFileSync(join(dir, 'added_tokens.json'), JSON.stringify({ '<a>': base.length + 5 }));
  assert.throws(() => CLIPTokenizer.fromPretrained(dir), /ids must follow the vocabulary/);
  assert.throws(() => CLIPTokenizer.fromPretrained(join(dir, 'missing')), /not a CLIP tokenizer folder/);
});
