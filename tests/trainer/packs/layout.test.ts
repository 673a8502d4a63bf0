// The pack's key names and shapes against the documented layouts (../shared/research/ecosystem.md §3, docs/packs.md):
// kohya LoRA as diffusers' PEFT -> kohya conversion names it, the module names A1111 builds from a model, A1111's and
// ComfyUI's bundled-embedding rules, and the diffusers export (learned_embeds + PEFT pytorch_lora_weights).
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { readEmbeddings, readManifest } from '../../../trainer/concepts/format.ts';
import { WeightSource } from '../../../trainer/io/diffusers.ts';
import { parseSafetensorsBuffer, SafetensorsFile, toFloat32 } from '../../../trainer/io/safetensors.ts';
import { buildPack, exportDiffusers } from '../../../trainer/packs/export.ts';
import { METADATA_KEYS } from '../../../trainer/packs/format.ts';
import { setupRuntime } from '../../helpers.ts';
import { learnConcept, TINY_SD } from './support.ts';

const root = mkdtempSync(join(tmpdir(), 'mifo-pack-layout-'));
after(() => rmSync(root, { recursive: true, force: true }));
let conceptDir: string;
let pack: ReturnType<typeof parseSafetensorsBuffer>;
let packBytes: Buffer;

before(async () => {
  await setupRuntime();
  // alpha 8 on rank 4: a scale of 2, so a lost or doubled alpha shows.
  conceptDir = await learnConcept(join(root, 'learned'), { phase1: { steps: 1 }, phase2: { steps: 1, loraAlpha: 8 } });
  packBytes = (await buildPack(conceptDir, { name: 'layout' })).bytes;
  pack = parseSafetensorsBuffer(packBytes);
});

/** The concept folder's PEFT LoRA tensors. */
function peftTensors(): Map<string, { shape: number[]; data: Float32Array }> {
  const file = SafetensorsFile.open(join(conceptDir, 'pytorch_lora_weights.safetensors'));
  const tensors = new Map(file.keys().map((key) => [key, file.readFloat32(key)]));
  file.close();
  return tensors;
}

/** diffusers' convert_state_dict_to_kohya for SD1.x/2.x: lora_A/B -> lora_down/up, '.' -> '_' except the last two. */
function diffusersToKohya(peftKey: string): string {
  const renamed = peftKey.replace(/^unet\./, 'lora_unet.').replace(/^text_encoder\./, 'lora_te.').replace('.lora_A.', '.lora_down.').replace('.lora_B.', '.lora_up.');
  const parts = renamed.split('.');
  return `${parts.slice(0, -2).join('_')}.${parts.slice(-2).join('.')}`;
}

/** A1111 names a network module "lora_unet_" / "lora_te_" + the model's module name with '.' -> '_'. */
function a1111ModuleNames(): Set<string> {
  const names = new Set<string>();
  for (const [component, prefix] of [['unet', 'lora_unet_'], ['text_encoder', 'lora_te_']] as const) {
    const weights = WeightSource.forComponent(join(TINY_SD, component));
    for (const key of weights.keys()) if (key.endsWith('.weight')) names.add(prefix + key.slice(0, -'.weight'.length).replaceAll('.', '_'));
    weights.close();
  }
  return names;
}

test('LoRA keys are the kohya names of the concept\'s PEFT LoRA, with the same values and a scalar alpha', () => {
  const peft = peftTensors();
  const manifest = readManifest(conceptDir);
  assert.equal(manifest.weights.type, 'lora');
  const alpha = manifest.weights.type === 'lora' ? manifest.weights.alpha : NaN;
  const loraKeys = [...pack.tensors.keys()].filter((key) => key.startsWith('lora_'));
  assert.deepEqual(loraKeys.filter((key) => !key.endsWith('.alpha')).sort(), [...peft.keys()].map(diffusersToKohya).sort());
  for (const [key, tensor] of peft) {
    const packed = pack.read(diffusersToKohya(key));
    assert.deepEqual([packed.dtype, packed.shape], ['F32', tensor.shape], key);
    assert.deepEqual(toFloat32(packed), tensor.data, key);
  }
  assert.equal(loraKeys.filter((key) => key.endsWith('.alpha')).length, peft.size / 2);
  const example = 'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q';
  assert.deepEqual(pack.tensors.get(`${example}.alpha`)!.shape, []);
  assert.equal(toFloat32(pack.read(`${example}.alpha`))[0], alpha);
  assert.ok(pack.tensors.has('lora_unet_up_blocks_1_attentions_0_transformer_blocks_0_attn2_to_out_0.lora_up.weight'));
  assert.ok(pack.tensors.has('lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight'));
});

test('A1111 finds a module for every LoRA key and reads each bundled embedding as a single-term embedding', () => {
  const modules = a1111ModuleNames();
  const bundles = new Map<string, Map<string, number[]>>();
  for (const [key, info] of pack.tensors) {
    if (key.startsWith('bundle_emb.')) {
      // networks.py: emb_name, vec_name = key[len("bundle_emb."):].split(".", 1)
      const rest = key.slice('bundle_emb.'.length);
      const dot = rest.indexOf('.');
      const [name, vector] = [rest.slice(0, dot), rest.slice(dot + 1)];
      bundles.set(name, (bundles.get(name) ?? new Map()).set(vector, info.shape));
      continue;
    }
    // networks.py: key_network_without_network_parts, network_part = key_network.split(".", 1)
    const dot = key.indexOf('.');
    const [module, part] = [key.slice(0, dot), key.slice(dot + 1)];
    assert.ok(modules.has(module), `A1111 has no module ${module}`);
    assert.ok(['lora_down.weight', 'lora_up.weight', 'alpha'].includes(part), part);
  }
  const manifest = readManifest(conceptDir);
  assert.deepEqual([...bundles.keys()], manifest.tokens.map((t) => t.token));
  for (const vectors of bundles.values()) {
    assert.deepEqual([...vectors.entries()], [['string_to_param.*', [1, manifest.baseModel.hiddenSize]]]);
  }
});

test('ComfyUI\'s bundled_embed rule yields one row per token, the learned vectors', () => {
  const learned = readEmbeddings(join(conceptDir, 'learned_embeds.safetensors'));
  const rows = [...pack.tensors.keys()].filter((key) => key.startsWith('bundle_emb.') && key.endsWith('.string_to_param.*')).map((key) => toFloat32(pack.read(key)));
  assert.deepEqual(rows, [...learned.values()]);
});

test('metadata: string values, our documents as JSON, the kohya network fields; the data section is 8-byte aligned', () => {
  const { metadata } = pack;
  for (const key of Object.values(METADATA_KEYS)) assert.doesNotThrow(() => JSON.parse(metadata[key]!), key);
  assert.equal(JSON.parse(metadata[METADATA_KEYS.pack]!).format, 'mifo-pack');
  assert.deepEqual([metadata.format, metadata.ss_network_module, metadata.ss_network_dim, metadata.ss_network_alpha, metadata['modelspec.title']], ['pt', 'networks.lora', '4', '8', 'layout']);
  const instances = JSON.parse(metadata[METADATA_KEYS.instances]!) as { token: string; box: number[] }[];
  // The fixture's white square sits in the left half, the black one in the right half.
  assert.ok(instances[0]!.box[2]! <= 0.5 && instances[1]!.box[0]! >= 0.5, JSON.stringify(instances.map((i) => i.box)));
  assert.equal(Number(packBytes.readBigUInt64LE(0)) % 8, 0);
  assert.equal(JSON.parse(metadata[METADATA_KEYS.training]!).options.phase2.loraRank, 4);
});

test('the diffusers export: learned_embeds, one single-key file per token, PEFT LoRA with alpha/rank folded into lora_B', () => {
  const out = join(root, 'diffusers');
  exportDiffusers(conceptDir, out, { rename: { '<asset1>': '<dark>' } });
  assert.deepEqual(readdirSync(out).sort(), ['embeddings', 'learned_embeds.safetensors', 'pytorch_lora_weights.safetensors']);
  assert.deepEqual(readdirSync(join(out, 'embeddings')).sort(), ['asset0.safetensors', 'dark.safetensors']);
  const learned = readEmbeddings(join(conceptDir, 'learned_embeds.safetensors'));
  assert.deepEqual([...readEmbeddings(join(out, 'learned_embeds.safetensors')).entries()], [['<asset0>', learned.get('<asset0>')], ['<dark>', learned.get('<asset1>')]]);
  const single = SafetensorsFile.open(join(out, 'embeddings', 'dark.safetensors'));
  assert.deepEqual([single.keys(), single.info('<dark>').shape, single.metadata.format], [['<dark>'], [1, 32], 'pt']);
  single.close();

  const peft = peftTensors();
  const manifest = readManifest(conceptDir);
  const scale = manifest.weights.type === 'lora' ? manifest.weights.alpha / manifest.weights.rank : NaN;
  const exported = SafetensorsFile.open(join(out, 'pytorch_lora_weights.safetensors'));
  assert.deepEqual(exported.keys().sort(), [...peft.keys()].sort());
  for (const [key, tensor] of peft) {
    const expected = key.endsWith('.lora_B.weight') ? tensor.data.map((v) => v * scale) : tensor.data;
    assert.deepEqual(exported.readFloat32(key).data, expected, key);
  }
  exported.close();
  assert.equal(scale, 2);
  assert.throws(() => exportDiffusers(conceptDir, out), /already exists/);
});
