import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { WeightSource } from '../../trainer/io/diffusers.ts';
import { CLIPTextModel } from '../../trainer/models/clip_text_model.ts';
import { tf } from '../../trainer/runtime/backend.ts';
import { CLIPTokenizer } from '../../trainer/tokenizer/clip_tokenizer.ts';
import { assertClose, goldenFile, goldenInts, goldenTensor, goldenVariants, setupRuntime, suggestedTolerance } from '../helpers.ts';

before(setupRuntime);

function idsTensor(ints: { shape: number[]; data: Int32Array }): tf.Tensor2D {
  return tf.tensor2d(ints.data, ints.shape as [number, number], 'int32');
}

function allFinite(values: Float32Array): boolean {
  return values.every((v) => Number.isFinite(v));
}

const variants = goldenVariants();
const [firstVariant] = variants;
if (!firstVariant) throw new Error('the golden manifest lists no variants');

for (const variant of variants) {
  test(`${variant.name}: every golden text-encoder output within the suggested tolerance`, () => {
    const model = CLIPTextModel.fromPretrained(join(variant.pipelineDir, 'text_encoder'));
    const golden = goldenFile(variant.name, 'text_encoder');
    try {
      tf.tidy(() => {
        const output = model.forward({ inputIds: idsTensor(goldenInts(golden, 'input_ids')), outputHiddenStates: true });
        const hiddenStates = output.hiddenStates!;
        assert.equal(hiddenStates.length, model.config.num_hidden_layers + 1);
        const check = (name: string, actual: tf.Tensor) =>
          assertClose(actual, goldenTensor(golden, name), suggestedTolerance(variant.name, 'text_encoder', name), `${variant.name} ${name}`);
        check('last_hidden_state', output.lastHiddenState);
        check('pooler_output', output.poolerOutput);
        const hiddenKeys = golden.keys().filter((key) => key.startsWith('hidden_states.'));
        assert.equal(hiddenKeys.length, hiddenStates.length);
        for (const key of hiddenKeys) check(key, hiddenStates[Number(key.slice('hidden_states.'.length))]!);
        check('penultimate_final_layer_norm', model.finalLayerNorm.forward(hiddenStates[hiddenStates.length - 2]!));
      });
    } finally {
      golden.close();
      model.dispose();
    }
  });
}

test('fromConfig declares exactly the checkpoint keys and initialises like transformers', () => {
  const componentDir = join(firstVariant.pipelineDir, 'text_encoder');
  const loaded = CLIPTextModel.fromPretrained(componentDir);
  const config = { ...loaded.config };
  loaded.dispose();
  const model = CLIPTextModel.fromConfig(config);
  try {
    const source = WeightSource.forComponent(componentDir);
    const fileKeys = source.keys().filter((key) => key !== 'text_model.embeddings.position_ids');
    source.close();
    assert.deepEqual(model.store.keys().sort(), fileKeys.sort());
    model.store.initialize(7);
    const std = (key: string) => tf.tidy(() => Math.sqrt(tf.moments(model.store.get(key)).variance.dataSync()[0]!));
    const tokenStd = std('text_model.embeddings.token_embedding.weight');
    assert.ok(Math.abs(tokenStd - 0.02 * config.initializer_factor) < 0.004, `token embedding std ${tokenStd}`);
    const qStd = std('text_model.encoder.layers.0.self_attn.q_proj.weight');
    const expectedQStd = config.hidden_size ** -0.5 * (2 * config.num_hidden_layers) ** -0.5 * config.initializer_factor;
    assert.ok(Math.abs(qStd - expectedQStd) < 0.25 * expectedQStd, `q_proj std ${qStd} vs ${expectedQStd}`);
    assert.ok(model.store.get('text_model.encoder.layers.0.mlp.fc1.bias').dataSync().every((v) => v === 0));
    assert.ok(model.store.get('text_model.final_layer_norm.weight').dataSync().every((v) => v === 1));
    const output = model.forward({ inputIds: [[0, 1, 2, config.vocab_size - 1]] });
    assert.ok(allFinite(output.lastHiddenState.dataSync() as Float32Array));
    tf.dispose([output.lastHiddenState, output.poolerOutput]);
  } finally {
    model.dispose();
  }
});

test('gradients flow to input embeddings and to override rows of the token table', () => {
  const model = CLIPTextModel.fromPretrained(join(firstVariant.pipelineDir, 'text_encoder'));
  const golden = goldenFile(firstVariant.name, 'text_encoder');
  try {
    tf.tidy(() => {
      const inputIds = idsTensor(goldenInts(golden, 'input_ids'));
      const [batch, tokens] = inputIds.shape;
      const weights = tf.randomNormal([batch, tokens, model.config.hidden_size], 0, 1, 'float32', 3);
      const loss = (embeds: tf.Tensor) =>
        tf.sum(tf.mul(model.forward({ inputIds, inputsEmbeds: embeds as tf.Tensor3D }).lastHiddenState, weights)) as tf.Scalar;
      const plainEmbeds = model.embedTokens(inputIds);
      const gradient = tf.grad(loss)(plainEmbeds);
      assert.deepEqual(gradient.shape, plainEmbeds.shape);
      const values = gradient.dataSync() as Float32Array;
      assert.ok(allFinite(values), 'finite input-embedding gradient');
      // Causal attention: the first token still influences every output, the last one only its own.
      const perToken = tf.sum(tf.abs(gradient), -1).arraySync() as number[][];
      assert.ok(perToken.every((row) => row.every((v) => v > 0)), 'every token position receives gradient');
      assertClose(model.forward({ inputIds, inputsEmbeds: plainEmbeds }).lastHiddenState, model.forward({ inputIds }).lastHiddenState, 0, 'inputsEmbeds path');

      const [firstRow] = inputIds.arraySync();
      const overridden = [firstRow![1]!, firstRow![2]!];
      const rows = model.getTokenEmbeddings(overridden);
      const viaOverrides = model.embedTokens(inputIds, { tokenIds: overridden, rows });
      assertClose(viaOverrides, plainEmbeds, 0, 'override rows equal to the table rows');
      const rowGradient = tf.grad((r: tf.Tensor) => loss(model.embedTokens(inputIds, { tokenIds: overridden, rows: r as tf.Tensor2D })))(rows);
      const rowNorms = tf.sum(tf.abs(rowGradient), -1).dataSync() as Float32Array;
      assert.ok(allFinite(rowNorms) && rowNorms.every((v) => v > 0), `override-row gradients ${rowNorms}`);
    });
  } finally {
    golden.close();
    model.dispose();
  }
});

test('the token table grows for added tokens, keeps old rows and accepts new rows', () => {
  const model = CLIPTextModel.fromPretrained(join(firstVariant.pipelineDir, 'text_encoder'));
  const tokenizer = CLIPTokenizer.fromPretrained(join(firstVariant.pipelineDir, 'tokenizer'));
  try {
    const oldTable = model.store.get(model.tokenEmbedding.weight).dataSync().slice();
    const inputIds = [tokenizer.encode('a photo of a cat', { padding: 'max_length', truncation: true }).inputIds];
    const before = model.forward({ inputIds });
    const newIds = tokenizer.addTokens(['<asset0>', '<asset1>']);
    model.resizeTokenEmbeddings(tokenizer.length, 1);
    assert.equal(model.vocabSize, tokenizer.length);
    assert.equal(model.config.vocab_size, tokenizer.length);
    const table = model.store.get(model.tokenEmbedding.weight);
    assert.deepEqual(table.shape, [tokenizer.length, model.config.hidden_size]);
    assert.deepEqual(table.dataSync().slice(0, oldTable.length), oldTable);
    assertClose(model.forward({ inputIds }).lastHiddenState, before.lastHiddenState, 0, 'old tokens unchanged after resize');

    const catRow = model.getTokenEmbeddings(tokenizer.convertTokensToIds(['cat</w>']));
    model.setTokenEmbeddings([newIds[0]!], catRow);
    const withPlaceholder = [tokenizer.encode('a photo of a <asset0>', { padding: 'max_length', truncation: true }).inputIds];
    assertClose(model.forward({ inputIds: withPlaceholder }).lastHiddenState, before.lastHiddenState, 0, '<asset0> set to the cat row');
    assert.throws(() => model.getTokenEmbeddings([tokenizer.length]), /outside the embedding table/);

    model.store.get(model.tokenEmbedding.weight).trainable = true;
    model.resizeTokenEmbeddings(oldTable.length / model.config.hidden_size);
    assert.deepEqual(model.store.get(model.tokenEmbedding.weight).dataSync(), oldTable);
    assert.equal(model.store.get(model.tokenEmbedding.weight).trainable, true, 'resizing keeps the trainable flag');
  } finally {
    model.dispose();
  }
});

test('bad inputs get clear errors', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mifo-clip-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const componentDir = join(firstVariant.pipelineDir, 'text_encoder');
  const config = JSON.parse(readFileSync(join(componentDir, 'config.json'), 'utf8'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, num_hidden_layers: config.num_hidden_layers - 1 }));
  symlinkSync(join(componentDir, 'model.safetensors'), join(dir, 'model.safetensors'));
  assert.throws(() => CLIPTextModel.fromPretrained(dir), /does not use .*layers\.\d+/);
  assert.throws(() => CLIPTextModel.fromConfig({ vocab_size: 10, hidden_size: 10, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 3, max_position_embeddings: 8 }), /not divisible/);
  assert.throws(() => CLIPTextModel.fromConfig({ vocab_size: 10, hidden_size: 8 }), /intermediate_size/);
  const model = CLIPTextModel.fromConfig({ vocab_size: 10, hidden_size: 8, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 4 });
  try {
    model.store.initialize(0);
    assert.throws(() => model.forward({ inputIds: [[0, 1, 2, 3, 4]] }), /max_position_embeddings/);
    assert.throws(() => model.forward({ inputIds: [[0, 10]] }), /outside the embedding table/);
  } finally {
    model.dispose();
  }
});
