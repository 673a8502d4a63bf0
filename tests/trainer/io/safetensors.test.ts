import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
} from '../../../trainer/io/half.ts';
import {
  parseSafetensorsBuffer,
  SafetensorsError,
  SafetensorsFile,
  serializeSafetensors,
  writeSafetensors,
} from '../../../trainer/io/safetensors.ts';
import { findWeightFiles, WeightSource } from '../../../trainer/io/diffusers.ts';
import { fixturesDir } from '../../helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'mifo-st-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('float16 conversion rounds to nearest even and keeps specials', () => {
  assert.equal(float32ToFloat16Bits(1), 0x3c00);
  assert.equal(float32ToFloat16Bits(-2), 0xc000);
  assert.equal(float32ToFloat16Bits(65504), 0x7bff);
  assert.equal(float32ToFloat16Bits(65520), 0x7c00); // rounds up to infinity
  assert.equal(float32ToFloat16Bits(Infinity), 0x7c00);
  assert.ok(Number.isNaN(float16BitsToFloat32(float32ToFloat16Bits(NaN))));
  assert.equal(float32ToFloat16Bits(2 ** -24), 0x0001); // smallest subnormal
  assert.equal(float32ToFloat16Bits(2 ** -26), 0x0000); // below half the smallest subnormal
  // 1 + 2^-11 lies exactly between 1 and the next half (1 + 2^-10): ties go to the even mantissa (1).
  assert.equal(float32ToFloat16Bits(1 + 2 ** -11), 0x3c00);
  assert.equal(float32ToFloat16Bits(1 + 3 * 2 ** -11), 0x3c02);
  for (const v of [0.1, -3.75, 1e-5, 1234.5, 6.1e-5]) {
    const back = float16BitsToFloat32(float32ToFloat16Bits(v));
    assert.ok(Math.abs(back - v) <= Math.abs(v) * 2 ** -11 + 2 ** -25, `${v} -> ${back}`);
  }
});

test('bfloat16 conversion rounds to nearest even', () => {
  assert.equal(float32ToBfloat16Bits(1), 0x3f80);
  assert.equal(bfloat16BitsToFloat32(0x3f80), 1);
  assert.equal(float32ToBfloat16Bits(1 + 2 ** -8), 0x3f80); // tie -> even
  assert.equal(float32ToBfloat16Bits(1 + 3 * 2 ** -8), 0x3f82);
  assert.ok(Number.isNaN(bfloat16BitsToFloat32(float32ToBfloat16Bits(NaN))));
});

test('write then read round-trips F32, F16, BF16 and I64 with metadata', () => {
  const path = join(tmp, 'a.safetensors');
  const values = new Float32Array([0, 1, -2.5, 3.25, 100, -0.125]);
  writeSafetensors(
    path,
    {
      f32: { dtype: 'F32', shape: [2, 3], data: values },
      f16: { dtype: 'F16', shape: [6], data: values },
      bf16: { dtype: 'BF16', shape: [3, 2], data: values },
      ids: { dtype: 'I64', shape: [2], data: new Int32Array([49406, 7]) },
    },
    { format: 'pt', note: 'hello' },
  );
  const file = SafetensorsFile.open(path);
  assert.deepEqual(file.metadata, { format: 'pt', note: 'hello' });
  for (const key of ['f32', 'f16', 'bf16']) assert.deepEqual([...file.readFloat32(key).data], [...values], key);
  assert.deepEqual(file.readFloat32('bf16').shape, [3, 2]);
  assert.deepEqual([...file.readInt32('ids').data], [49406, 7]);
  file.close();
  const bytes = readFileSync(path);
  assert.equal(Number(bytes.readBigUInt64LE(0)) % 8, 0, 'data section is 8-byte aligned');
  const parsed = parseSafetensorsBuffer(bytes);
  assert.deepEqual([...parsed.tensors.keys()], ['f32', 'f16', 'bf16', 'ids']);
});

function corrupt(mutate: (header: Record<string, any>) => void, extraBytes = 0): Buffer {
  const good = serializeSafetensors({ a: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) }, b: { dtype: 'F32', shape: [1], data: new Float32Array([3]) } });
  const headerLength = Number(good.readBigUInt64LE(0));
  const header = JSON.parse(good.subarray(8, 8 + headerLength).toString());
  mutate(header);
  const text = Buffer.from(JSON.stringify(header));
  const lengthBytes = Buffer.alloc(8);
  lengthBytes.writeBigUInt64LE(BigInt(text.length));
  return Buffer.concat([lengthBytes, text, good.subarray(8 + headerLength), Buffer.alloc(extraBytes)]);
}

test('invalid headers are refused with a clear error', () => {
  const cases: [string, Buffer, RegExp][] = [
    ['unknown dtype', corrupt((h) => (h.a.dtype = 'F8')), /unsupported dtype/],
    ['size mismatch', corrupt((h) => (h.a.shape = [3])), /needs 12 bytes/],
    ['hole', corrupt((h) => (h.b.data_offsets = [12, 16])), /hole|cover/],
    ['overlap', corrupt((h) => (h.b.data_offsets = [4, 8])), /overlap/],
    ['trailing bytes', corrupt(() => {}, 4), /data section has/],
    ['bad metadata', corrupt((h) => (h.__metadata__ = { x: 1 })), /not a string/],
    ['negative dim', corrupt((h) => (h.a.shape = [-2])), /invalid shape/],
  ];
  for (const [what, bytes, message] of cases) {
    assert.throws(() => parseSafetensorsBuffer(bytes), (e: unknown) => e instanceof SafetensorsError && message.test((e as Error).message), what);
    const path = join(tmp, `bad-${what.replace(/ /g, '_')}.safetensors`);
    writeFileSync(path, bytes);
    assert.throws(() => SafetensorsFile.open(path), SafetensorsError, what);
  }
  const hugeHeader = Buffer.alloc(16);
  hugeHeader.writeBigUInt64LE(1n << 40n);
  assert.throws(() => parseSafetensorsBuffer(hugeHeader), /impossible/);
  assert.throws(() => parseSafetensorsBuffer(Buffer.alloc(3)), /too short/);
});

test('pickle checkpoints are refused, naming the safetensors alternative', () => {
  const dir = mkdtempSync(join(tmp, 'pickle-'));
  writeFileSync(join(dir, 'diffusion_pytorch_model.bin'), 'not really a pickle');
  assert.throws(() => findWeightFiles(dir), /pickle.*safetensors/s);
  assert.throws(() => SafetensorsFile.open(join(dir, 'model.ckpt')), /\.ckpt files are Python pickles/);
});

test('the fixture pipelines open as weight sources', () => {
  const source = WeightSource.forComponent(join(fixturesDir(), 'tiny-sd', 'unet'));
  assert.ok(source.keys().includes('conv_in.weight'));
  assert.equal(source.shape('conv_in.weight').length, 4);
  source.close();
});
