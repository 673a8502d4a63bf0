// 1,000 mutated pack files (bit flips, truncation, header edits, wrong shapes and dtypes, huge sizes, bad metadata,
// hostile keys): each either imports into a concept folder that loadConcepts accepts, or fails with a PackError that
// says what is wrong, and a failure writes nothing next to the output folder.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { deflateSync, crc32 } from 'node:zlib';
import { loadConcepts } from '../../../trainer/concepts/load.ts';
import { parseSafetensorsBuffer, serializeSafetensors, toFloat32, type TensorToWrite } from '../../../trainer/io/safetensors.ts';
import { StableDiffusionPipeline } from '../../../trainer/pipelines/stable_diffusion.ts';
import { profileBaseModel, type BaseModelProfile } from '../../../trainer/packs/base.ts';
import { buildPack } from '../../../trainer/packs/export.ts';
import { METADATA_KEYS, PackError } from '../../../trainer/packs/format.ts';
import { importPack } from '../../../trainer/packs/import.ts';
import { Generator } from '../../../trainer/util/random.ts';
import { setupRuntime } from '../../helpers.ts';
import { learnConcept, TINY_SD } from './support.ts';

const CASES = 1000;
const root = mkdtempSync(join(tmpdir(), 'mifo-pack-fuzz-'));
after(() => rmSync(root, { recursive: true, force: true }));
let good: Buffer;
let base: BaseModelProfile;

before(async () => {
  await setupRuntime();
  const conceptDir = await learnConcept(join(root, 'learned'), { phase1: { steps: 1 }, phase2: { steps: 1 } });
  good = (await buildPack(conceptDir, { name: 'fuzz' })).bytes;
  base = await profileBaseModel(TINY_SD);
});

const HOSTILE_KEYS = [
  '../x',
  '../../etc/passwd',
  '/etc/passwd',
  '__proto__',
  'constructor',
  'prototype',
  '',
  ' ',
  '\u0000',
  'a'.repeat(5000),
  'bundle_emb.__proto__.string_to_param.*',
  'bundle_emb.<asset0>/../../x.string_to_param.*',
  'bundle_emb.<asset9>.string_to_param.*',
  'bundle_emb.<asset0>.string_to_param.*\u0000',
  'bundle_emb.<asset0>.clip_l',
  'lora_unet___proto__.alpha',
  'lora_unet_../../x.lora_down.weight',
  'lora_unet_not_a_module.lora_down.weight',
  'lora_te_text_model_encoder_layers_9_self_attn_q_proj.lora_up.weight',
  'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_mid.weight',
  'LORA_UNET_DOWN_BLOCKS_0.alpha',
  '__metadata__x',
];
const DTYPES = ['F64', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL', 'F8_E4M3', 'C64', 'f32', 7, null];
const HEADER_LENGTHS = [0n, 1n, 7n, 2n ** 63n, 2n ** 64n - 1n, 100_000_000n, 200_000_000n];

interface Parts {
  header: Record<string, any>;
  data: Buffer;
}

function split(bytes: Buffer): Parts {
  const length = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')), data: bytes.subarray(8 + length) };
}

function join8(headerText: string | Buffer, data: Buffer, declaredLength?: bigint): Buffer {
  const text = typeof headerText === 'string' ? Buffer.from(headerText) : headerText;
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(declaredLength ?? BigInt(text.length));
  return Buffer.concat([length, text, data]);
}

/** The good pack as tensors and metadata, to write back with one thing changed (a well-formed file). */
interface FloatTensor {
  dtype: 'F32';
  shape: number[];
  data: Float32Array;
}

function tensorsOf(bytes: Buffer): { tensors: Record<string, FloatTensor>; metadata: Record<string, string> } {
  const file = parseSafetensorsBuffer(bytes);
  const tensors: Record<string, FloatTensor> = {};
  for (const [key, info] of file.tensors) tensors[key] = { dtype: 'F32', shape: info.shape, data: toFloat32(file.read(key)) };
  return { tensors, metadata: { ...file.metadata } };
}

/** A PNG with a valid structure and CRCs whose IHDR claims `side` x `side` pixels. */
function pngClaiming(side: number): Buffer {
  const chunk = (type: string, body: Buffer) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(body.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([Buffer.from(type, 'latin1'), body])));
    return Buffer.concat([head, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr[8] = 8;
  ihdr[9] = 0;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(side + 1))), chunk('IEND', Buffer.alloc(0))]);
}

type Mutation = (rng: Generator) => { bytes: Buffer; maxBytes?: number };

function pick<T>(rng: Generator, items: readonly T[]): T {
  return items[rng.randint(items.length)]!;
}

function editMetadataDocument(rng: Generator): Buffer {
  const { tensors, metadata } = tensorsOf(good);
  const key = pick(rng, Object.values(METADATA_KEYS));
  const doc = JSON.parse(metadata[key]!);
  const instance = () => doc[rng.randint(doc.length)];
  const edits: Record<string, (() => void)[]> = {
    [METADATA_KEYS.pack]: [() => (doc.version = 2), () => (doc.format = 'other'), () => (doc.name = ''), () => (doc.name = 'x'.repeat(500)), () => (doc.createdAt = 'yesterday'), () => (doc.extra = 1), () => (doc.note = '\u0007bell'), () => delete doc.generator],
    [METADATA_KEYS.baseModel]: [() => (doc.id = 'other-model'), () => (doc.weightsHash = `sha256:${'0'.repeat(64)}`), () => (doc.weightsHash = 'abc'), () => (doc.hiddenSize = 64), () => (doc.hiddenSize = -1), () => (doc.baseVocabSize = 1.5)],
    [METADATA_KEYS.instances]: [
      () => (instance().token = '../x'),
      () => (instance().token = '<ASSET0>'),
      () => (instance().token = '__proto__'),
      () => (instance().token = '<asset9>'),
      () => (doc[1].token = doc[0].token),
      () => (instance().box = [1, 0, 0, 1]),
      () => (instance().box = [0, 0, 2, 1]),
      () => (instance().mask = '!!!not base64'),
      () => (instance().mask = pngClaiming(100_000).toString('base64')),
      () => (instance().mask = pngClaiming(16).toString('base64')),
      () => (instance().attention = Buffer.from(instance().attention, 'base64').subarray(0, 40).toString('base64')),
      () => (instance().thumbnail = Buffer.from('GIF89a').toString('base64')),
      () => (instance().name = 7),
      () => doc.splice(0, doc.length),
      () => doc.push(...Array.from({ length: 20 }, () => ({ ...doc[0] }))),
      () => (instance().extra = true),
    ],
    [METADATA_KEYS.source]: [() => (doc.resolution = 64), () => (doc.resolution = 1e9), () => (doc.image = pngClaiming(32).toString('base64')), () => (doc.thumbnail = ''), () => delete doc.image],
    [METADATA_KEYS.training]: [() => (doc.lora.rank = 8), () => (doc.lora.alpha = -1), () => (doc.lora = null), () => (doc.lora.components = ['unet']), () => (doc.lora.components = ['vae']), () => (doc.options = [1, 2]), () => (doc.learnedAt = 3)],
  };
  pick(rng, edits[key]!)();
  metadata[key] = JSON.stringify(doc);
  return serializeSafetensors(tensors, metadata);
}

const MUTATIONS: Record<string, Mutation> = {
  'bit flips': (rng) => {
    const bytes = Buffer.from(good);
    const flips = 1 + rng.randint(8);
    for (let i = 0; i < flips; i++) {
      const at = rng.randint(bytes.length);
      bytes[at]! ^= 1 << rng.randint(8);
    }
    return { bytes };
  },
  'bit flips in the header': (rng) => {
    const bytes = Buffer.from(good);
    const headerEnd = 8 + Number(good.readBigUInt64LE(0));
    const at = rng.randint(headerEnd);
    bytes[at]! ^= 1 << rng.randint(8);
    return { bytes };
  },
  truncation: (rng) => ({ bytes: good.subarray(0, rng.randint(good.length)) }),
  'trailing bytes': (rng) => ({ bytes: Buffer.concat([good, Buffer.alloc(1 + rng.randint(64), rng.randint(256))]) }),
  'header length field': (rng) => {
    const { header, data } = split(good);
    const text = JSON.stringify(header);
    return { bytes: join8(text, data, pick(rng, [...HEADER_LENGTHS, BigInt(text.length + 1), BigInt(text.length - 1), BigInt(good.length)])) };
  },
  'header not JSON': (rng) => {
    const { header, data } = split(good);
    const text = JSON.stringify(header);
    const broken = pick(rng, [text.slice(0, rng.randint(text.length)), text.replace('{', '['), `${text}}`, 'null', '[]', '"x"', '\uFEFF' + text, text.replace(/"dtype"/, '"dtype":"F32","dtype"')]);
    return { bytes: join8(Buffer.concat([Buffer.from(broken), Buffer.from([0xff, 0xfe])]), data) };
  },
  'tensor entry edits': (rng) => {
    const { header, data } = split(good);
    const keys = Object.keys(header).filter((k) => k !== '__metadata__');
    const key = pick(rng, keys);
    const entry = header[key];
    pick(rng, [
      () => (entry.dtype = pick(rng, DTYPES)),
      () => (entry.shape = pick(rng, [[], [0], [1e9, 1e9], [2 ** 53, 2], [-1], [1.5], [...entry.shape].reverse(), [...entry.shape, 1], 'x', null])),
      () => (entry.data_offsets = pick(rng, [[0, 0], [-4, 0], [entry.data_offsets[1], entry.data_offsets[0]], [0, 2 ** 60], [entry.data_offsets[0] + 4, entry.data_offsets[1] + 4], [0], 'x'])),
      () => delete header[key],
      () => (header[`${key}x`] = { ...entry }),
      () => (header[key] = pick(rng, [null, 1, 'x', [], { dtype: 'F32' }])),
    ])();
    return { bytes: join8(JSON.stringify(header), data) };
  },
  'hostile keys': (rng) => {
    const { header, data } = split(good);
    const key = pick(rng, Object.keys(header).filter((k) => k !== '__metadata__'));
    const hostile = pick(rng, HOSTILE_KEYS);
    const entries = Object.entries(header).map(([k, v]) => (k === key ? [hostile, v] : [k, v]));
    return { bytes: join8(JSON.stringify(Object.fromEntries(entries)), data) };
  },
  'hostile metadata': (rng) => {
    const { header, data } = split(good);
    const key = pick(rng, Object.values(METADATA_KEYS));
    pick(rng, [
      () => (header.__metadata__[key] = header.__metadata__[key].slice(0, rng.randint(header.__metadata__[key].length))),
      () => (header.__metadata__[key] = pick(rng, ['null', '1', '"x"', '[]', '{"__proto__":{"polluted":1}}', '{"constructor":{"prototype":{"polluted":1}}}', ''])),
      () => delete header.__metadata__[key],
      () => (header.__metadata__[key] = { nested: true }),
      () => (header.__metadata__['mifo.unknown'] = '{}'),
      () => (header.__metadata__ = pick(rng, [null, [], 'x'])),
    ])();
    return { bytes: join8(JSON.stringify(header), data) };
  },
  'metadata documents': (rng) => ({ bytes: editMetadataDocument(rng) }),
  'wrong shapes': (rng) => {
    const { tensors, metadata } = tensorsOf(good);
    const key = pick(rng, Object.keys(tensors));
    const tensor = tensors[key]!;
    const [rows, columns] = [tensor.shape[0] ?? 1, tensor.shape[1] ?? 1];
    const shape = pick(rng, [[columns, rows], [rows + 1, columns], [rows, columns, 1]]);
    const length = shape.reduce((a, b) => a * b, 1);
    tensors[key] = { dtype: 'F32', shape, data: Float32Array.from({ length }, (_, i) => tensor.data[i % tensor.data.length]!) };
    return { bytes: serializeSafetensors(tensors, metadata) };
  },
  'other dtypes': (rng) => {
    const { tensors, metadata } = tensorsOf(good);
    const key = pick(rng, Object.keys(tensors));
    const tensor = tensors[key]!;
    const dtype = pick(rng, ['F16', 'BF16', 'I32', 'U8', 'F64'] as const);
    const data = dtype === 'I32' ? Int32Array.from(tensor.data, Math.round) : dtype === 'U8' ? Uint8Array.from(tensor.data, (v) => v & 255) : dtype === 'F64' ? Float64Array.from(tensor.data) : tensor.data;
    const written: Record<string, TensorToWrite> = { ...tensors, [key]: { dtype, shape: tensor.shape, data } };
    return { bytes: serializeSafetensors(written, metadata) };
  },
  'non-finite values': (rng) => {
    const { tensors, metadata } = tensorsOf(good);
    const tensor = tensors[pick(rng, Object.keys(tensors))]!;
    tensor.data[rng.randint(tensor.data.length)] = pick(rng, [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]);
    return { bytes: serializeSafetensors(tensors, metadata) };
  },
  'modules added or missing': (rng) => {
    const { tensors, metadata } = tensorsOf(good);
    const loraKeys = Object.keys(tensors).filter((k) => k.startsWith('lora_'));
    pick(rng, [
      () => delete tensors[pick(rng, loraKeys)],
      () => delete tensors[pick(rng, Object.keys(tensors).filter((k) => k.startsWith('bundle_emb.')))],
      () => {
        const name = pick(rng, ['lora_unet_conv_in', 'lora_unet_mid_block_resnets_0_conv1', 'lora_te_text_model_final_layer_norm', 'lora_unet_down_blocks_0_attentions_0_proj_in']);
        tensors[`${name}.lora_down.weight`] = { dtype: 'F32', shape: [4, 32], data: new Float32Array(128) };
        tensors[`${name}.lora_up.weight`] = { dtype: 'F32', shape: [32, 4], data: new Float32Array(128) };
        tensors[`${name}.alpha`] = { dtype: 'F32', shape: [], data: Float32Array.of(4) };
      },
      () => (tensors[pick(rng, loraKeys.filter((k) => k.endsWith('.alpha')))] = { dtype: 'F32', shape: [], data: Float32Array.of(3) }),
    ])();
    return { bytes: serializeSafetensors(tensors, metadata) };
  },
  'size limit': (rng) => ({ bytes: good, maxBytes: good.length - 1 - rng.randint(1000) }),
  'float mantissa noise': (rng) => {
    const { tensors, metadata } = tensorsOf(good);
    const tensor = tensors[pick(rng, Object.keys(tensors))]!;
    tensor.data[rng.randint(tensor.data.length)]! *= 1 + 1e-3 * rng.normal();
    return { bytes: serializeSafetensors(tensors, metadata) };
  },
};

function listing(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}

test(`${CASES} mutated packs each import cleanly or fail with a clear error, writing nothing`, () => {
  const started = Date.now();
  const rng = new Generator(2024);
  const outRoot = join(root, 'out');
  mkdirSync(outRoot);
  const outDir = join(outRoot, 'concept');
  const names = Object.keys(MUTATIONS);
  const tally = new Map<string, { loaded: number; refused: number }>(names.map((name) => [name, { loaded: 0, refused: 0 }]));
  const messages = new Set<string>();
  let loadChecks = 0;
  for (let i = 0; i < CASES; i++) {
    const name = names[i % names.length]!;
    const { bytes, maxBytes } = MUTATIONS[name]!(rng);
    try {
      const result = importPack(bytes, { base, outDir, maxBytes, takenTokens: rng.random() < 0.3 ? ['<asset1>'] : [] });
      tally.get(name)!.loaded++;
      if (loadChecks++ < 40) {
        const pipe = StableDiffusionPipeline.fromPretrained(TINY_SD);
        assert.deepEqual(loadConcepts(pipe, [outDir])[0]!.tokens, result.tokens, `case ${i} (${name})`);
        pipe.dispose();
      }
      rmSync(outDir, { recursive: true });
    } catch (error) {
      assert.ok(error instanceof PackError, `case ${i} (${name}) threw ${(error as Error)?.constructor?.name}: ${(error as Error)?.stack}`);
      const message = error.message;
      assert.ok(message.length > 10 && message.length < 4000 && !/\[object |\bat .*\.ts:\d/.test(message), `case ${i} (${name}): unclear message ${JSON.stringify(message.slice(0, 300))}`);
      messages.add(message.split('\n')[0]!.replace(/\d+/g, 'N').slice(0, 60));
      tally.get(name)!.refused++;
      assert.deepEqual(listing(outRoot), [], `case ${i} (${name}) wrote into the output folder`);
    }
  }
  const seconds = (Date.now() - started) / 1000;
  console.log(`${CASES} mutated packs in ${seconds.toFixed(1)} s, ${messages.size} distinct error kinds`);
  for (const [name, { loaded, refused }] of tally) console.log(`  ${name.padEnd(26)} loaded ${String(loaded).padStart(3)}  refused ${String(refused).padStart(3)}`);
  assert.equal(Object.getPrototypeOf({}).polluted, undefined, 'no prototype pollution');
  const totals = [...tally.values()].reduce((sum, t) => ({ loaded: sum.loaded + t.loaded, refused: sum.refused + t.refused }), { loaded: 0, refused: 0 });
  assert.equal(totals.loaded + totals.refused, CASES);
  assert.ok(totals.loaded > 0 && totals.refused > 0, 'the mutations both keep and break packs');
  for (const name of ['truncation', 'header length field', 'hostile keys', 'non-finite values', 'size limit', 'wrong shapes']) assert.equal(tally.get(name)!.loaded, 0, `${name} never loads`);
  assert.ok(tally.get('float mantissa noise')!.loaded > 0, 'a pack with slightly different values still loads');
  assert.ok(seconds < 60, `took ${seconds} s`);
});
