import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { tf } from '../../../trainer/runtime/backend.ts';
import { SafetensorsFile } from '../../../trainer/io/safetensors.ts';
import { StableDiffusionPipeline } from '../../../trainer/pipelines/stable_diffusion.ts';
import { hashModelWeights, readEmbeddings, readManifest, type ConceptManifest } from '../../../trainer/concepts/format.ts';
import { assertConceptTokensLoaded, loadConcepts } from '../../../trainer/concepts/load.ts';
import { runLearning } from '../../../trainer/learn/learn.ts';
import { combineOverrides, type DeepPartial, type LearnOptions } from '../../../trainer/learn/options.ts';
import { setupRuntime } from '../../helpers.ts';
import { fixtureModel, TINY_RUN, TWO_OBJECTS } from '../learn/support.ts';

const root = mkdtempSync(join(tmpdir(), 'mifo-concepts-'));
after(() => rmSync(root, { recursive: true, force: true }));

const model = fixtureModel('tiny-sd2');
const dirs = { lora: join(root, 'lora'), other: join(root, 'other'), full: join(root, 'full'), tokensOnly: join(root, 'tokens-only') };

async function learnInto(outDir: string, options: DeepPartial<LearnOptions>, names?: string[]): Promise<void> {
  await runLearning({ model, image: TWO_OBJECTS.image, masks: TWO_OBJECTS.masks, names, outDir, preset: 'fast', options: combineOverrides(TINY_RUN, options) });
}

before(async () => {
  await setupRuntime();
  await learnInto(dirs.lora, {}, ['white square', 'black square']);
  await learnInto(dirs.other, { seed: 1 });
  await learnInto(dirs.full, { phase2: { mode: 'full' } });
  await learnInto(dirs.tokensOnly, { phase2: { enabled: false } });
});

/** A fresh pipeline whose base weights have every LoRA delta of `files` added in (W + alpha/rank · B·A). */
function fusedPipeline(files: { path: string; alpha: number }[]): StableDiffusionPipeline {
  const pipe = StableDiffusionPipeline.fromPretrained(model);
  for (const { path, alpha } of files) {
    const file = SafetensorsFile.open(path);
    for (const key of file.keys().filter((k) => k.endsWith('.lora_A.weight'))) {
      const [, component, prefix] = /^(unet|text_encoder)\.(.+)\.lora_A\.weight$/.exec(key)!;
      const store = component === 'unet' ? pipe.unet.store : pipe.textEncoder.store;
      const down = file.readFloat32(key);
      const up = file.readFloat32(key.replace('lora_A', 'lora_B'));
      const rank = down.shape[0]!;
      const weight = store.get(`${prefix}.weight`);
      const fused = tf.tidy(() => tf.add(weight, tf.mul(tf.matMul(tf.tensor2d(up.data, up.shape as [number, number]), tf.tensor2d(down.data, down.shape as [number, number])), alpha / rank)));
      weight.assign(fused);
      fused.dispose();
    }
    file.close();
  }
  return pipe;
}

/** UNet output for a fixed latent and the prompt naming the tokens. */
function unetOutput(pipe: StableDiffusionPipeline, prompt: string): Float32Array {
  return tf.tidy(() => {
    const latents = tf.tensor4d(Float32Array.from({ length: 16 * 16 * 4 }, (_, i) => Math.sin(i * 0.37)), [1, 16, 16, 4]);
    return pipe.unet.forward(latents, [300], pipe.encodePrompt([prompt])).dataSync() as Float32Array;
  });
}

function maxDifference(a: Float32Array, b: Float32Array): number {
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
}

describe('the concept folder', () => {
  test('manifest, diffusers textual-inversion embeddings and PEFT-named LoRA', () => {
    const manifest: ConceptManifest = readManifest(dirs.lora);
    assert.deepEqual(manifest.tokens.map((t) => [t.token, t.name, t.mask]), [
      ['<asset0>', 'white square', 'masks/mask0.png'],
      ['<asset1>', 'black square', 'masks/mask1.png'],
    ]);
    assert.equal(manifest.baseModel.id, 'tiny-sd2');
    assert.match(manifest.baseModel.weightsHash, /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual([manifest.weights.type, manifest.baseModel.hiddenSize, manifest.resolution], ['lora', 48, 32]);
    for (const t of manifest.tokens) readFileSync(join(dirs.lora, t.attentionMap));

    const embeds = SafetensorsFile.open(join(dirs.lora, 'learned_embeds.safetensors'));
    assert.deepEqual(embeds.keys().sort(), ['<asset0>', '<asset1>']);
    for (const key of embeds.keys()) assert.deepEqual([embeds.info(key).dtype, embeds.info(key).shape], ['F32', [1, 48]]);
    assert.equal(embeds.metadata.format, 'pt');
    embeds.close();

    const lora = SafetensorsFile.open(join(dirs.lora, 'pytorch_lora_weights.safetensors'));
    assert.ok(lora.keys().every((k) => /^(unet|text_encoder)\..+\.lora_[AB]\.weight$/.test(k)), 'every key is PEFT-named');
    const unetKey = 'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight';
    assert.deepEqual(lora.info(unetKey).shape, [4, 48]);
    assert.deepEqual(lora.info(unetKey.replace('lora_A', 'lora_B')).shape, [32, 4]);
    assert.ok(lora.tensors.has('unet.up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0.lora_A.weight'));
    assert.deepEqual(lora.info('text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight').shape, [4, 48]);
    lora.close();
    assert.equal(readManifest(dirs.tokensOnly).weights.type, 'none');
  });

  test('loadConcepts adds the tokens with their rows and LoRA equal to the fused delta', () => {
    const pipe = StableDiffusionPipeline.fromPretrained(model);
    const [loaded] = loadConcepts(pipe, [dirs.lora]);
    assert.deepEqual(loaded!.tokens, ['<asset0>', '<asset1>']);
    const vectors = readEmbeddings(join(dirs.lora, 'learned_embeds.safetensors'));
    const rows = pipe.textEncoder.getTokenEmbeddings(loaded!.tokenIds).arraySync();
    assert.deepEqual(rows, [Array.from(vectors.get('<asset0>')!), Array.from(vectors.get('<asset1>')!)]);

    // The same tokens and rows on the base weights (a tokens-only concept gives the ids), with and without the delta.
    const withRows = (p: StableDiffusionPipeline) => {
      loadConcepts(p, [dirs.tokensOnly]);
      p.textEncoder.setTokenEmbeddings(loaded!.tokenIds, tf.tensor2d(rows));
      return p;
    };
    const fused = withRows(fusedPipeline([{ path: join(dirs.lora, 'pytorch_lora_weights.safetensors'), alpha: 4 }]));
    const base = withRows(StableDiffusionPipeline.fromPretrained(model));
    const prompt = 'a photo of <asset0> and <asset1>';
    const ours = unetOutput(pipe, prompt);
    const loraEffect = maxDifference(ours, unetOutput(base, prompt));
    assert.ok(loraEffect > 1e-3, `the LoRA changes the output by only ${loraEffect}`);
    assert.ok(maxDifference(ours, unetOutput(fused, prompt)) < loraEffect / 100);
    for (const p of [pipe, fused, base]) p.dispose();
  });

  test('two LoRA concepts stack (their deltas add); a token clash asks for a rename', () => {
    const pipe = StableDiffusionPipeline.fromPretrained(model);
    const loaded = loadConcepts(pipe, [dirs.lora, { dir: dirs.other, rename: { '<asset0>': '<b0>', '<asset1>': '<b1>' } }]);
    assert.deepEqual(loaded.map((c) => c.tokens), [['<asset0>', '<asset1>'], ['<b0>', '<b1>']]);
    assert.equal(pipe.unet.store.adapters.get('mid_block.attentions.0.transformer_blocks.0.attn2.to_v')!.down.shape[0], 8);

    const fused = fusedPipeline([
      { path: join(dirs.lora, 'pytorch_lora_weights.safetensors'), alpha: 4 },
      { path: join(dirs.other, 'pytorch_lora_weights.safetensors'), alpha: 4 },
    ]);
    const prompt = 'a photo of a cat';
    const single = fusedPipeline([{ path: join(dirs.lora, 'pytorch_lora_weights.safetensors'), alpha: 4 }]);
    const secondEffect = maxDifference(unetOutput(fused, prompt), unetOutput(single, prompt));
    assert.ok(secondEffect > 1e-3, `the second LoRA changes the output by only ${secondEffect}`);
    assert.ok(maxDifference(unetOutput(pipe, prompt), unetOutput(fused, prompt)) < secondEffect / 100);
    single.dispose();
    assert.throws(() => loadConcepts(pipe, [dirs.other]), /already in the vocabulary.*rename/);
    assertConceptTokensLoaded(pipe.tokenizer, 'a photo of <asset1> and <b0> next to <asset0>');
    assert.throws(
      () => assertConceptTokensLoaded(pipe.tokenizer, 'a photo of <b0>, <b2> and <Asset1>, then <b2>'),
      /^Error: the prompt names <b2>, <Asset1>, which no loaded concept provides \(loaded: <asset0>, <asset1>, <b0>, <b1>\)/,
    );
    pipe.dispose();
    fused.dispose();
  });

  test('a full fine-tuned concept replaces the weights, once and before any token', () => {
    const pipe = StableDiffusionPipeline.fromPretrained(model);
    loadConcepts(pipe, [dirs.full]);
    const saved = SafetensorsFile.open(join(dirs.full, 'unet', 'diffusion_pytorch_model.safetensors'));
    const key = 'up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight';
    assert.deepEqual(Array.from(pipe.unet.store.get(key).dataSync()), Array.from(saved.readFloat32(key).data));
    saved.close();
    const text = SafetensorsFile.open(join(dirs.full, 'text_encoder', 'model.safetensors'));
    assert.deepEqual(text.info('text_model.embeddings.token_embedding.weight').shape, [1000, 48]);
    text.close();
    assert.throws(() => loadConcepts(pipe, [dirs.full]), /load this concept first/);
    assert.throws(() => loadConcepts(StableDiffusionPipeline.fromPretrained(model), [dirs.full, dirs.full]), /only one concept with full/);
    pipe.dispose();
  });

  test('the weights hash identifies the base model', async () => {
    assert.equal(await hashModelWeights(model), readManifest(dirs.lora).baseModel.weightsHash);
    assert.notEqual(await hashModelWeights(fixtureModel('tiny-sd')), await hashModelWeights(model));
  });
});
