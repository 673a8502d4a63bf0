// COCO RLE (server/sam/rle.ts) against vectors made by pycocotools, and the SAM automatic-mask-generator JSON reader.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { AmgFormatError, parseAmgJson } from '../../server/sam/amg.ts';
import { decodeCountsString, encodeCountsString, encodeRle, parseRle, rasterizeRle, rleArea, rleBoundingBox, RleError, type CocoRle } from '../../server/sam/rle.ts';

interface Vector {
  name: string;
  size: [number, number];
  mask: string;
  compressed: string;
  uncompressed: number[];
  area: number;
}

const { vectors } = JSON.parse(readFileSync(join(import.meta.dirname, 'sam-rle-vectors.json'), 'utf8')) as { vectors: Vector[] };
const maskOf = (vector: Vector) => Uint8Array.from(vector.mask, (c) => Number(c));
const decodeRle = (rle: CocoRle) => {
  const runs = parseRle(rle);
  return { height: runs.height, width: runs.width, mask: rasterizeRle(runs) };
};

/** [x, y, width, height] of a row-major mask, the slow way. */
function rasterBox(mask: Uint8Array, height: number, width: number): [number, number, number, number] | null {
  const xs: number[] = [];
  const ys: number[] = [];
  mask.forEach((value, i) => {
    if (!value) return;
    xs.push(i % width);
    ys.push(Math.floor(i / width));
  });
  if (xs.length === 0) return null;
  return [Math.min(...xs), Math.min(...ys), Math.max(...xs) - Math.min(...xs) + 1, Math.max(...ys) - Math.min(...ys) + 1];
}

describe('COCO RLE', () => {
  test('the vectors cover counts above 32, negative deltas and both edge runs', () => {
    const all = vectors.flatMap((v) => v.uncompressed);
    assert.ok(all.some((c) => c >= 32));
    assert.ok(vectors.some((v) => v.uncompressed.some((c, i) => i > 2 && c < v.uncompressed[i - 2]!)));
    assert.ok(vectors.some((v) => v.uncompressed[0] === 0));
    assert.ok(vectors.some((v) => v.area === 0) && vectors.some((v) => v.area === v.size[0] * v.size[1]));
  });

  for (const vector of vectors) {
    test(`decodes pycocotools' "${vector.name}" (compressed and uncompressed)`, () => {
      assert.deepEqual(decodeCountsString(vector.compressed), vector.uncompressed);
      for (const counts of [vector.compressed, vector.uncompressed]) {
        const decoded = decodeRle({ size: vector.size, counts });
        assert.equal(decoded.height, vector.size[0]);
        assert.equal(decoded.width, vector.size[1]);
        assert.deepEqual(decoded.mask, maskOf(vector));
      }
      const runs = parseRle({ size: vector.size, counts: vector.compressed });
      assert.equal(rleArea(runs), vector.area);
      assert.deepEqual(rleBoundingBox(runs), rasterBox(maskOf(vector), vector.size[0], vector.size[1]));
    });

    test(`encodes "${vector.name}" exactly as pycocotools does`, () => {
      const [height, width] = vector.size;
      assert.equal(encodeRle(maskOf(vector), height, width).counts, vector.compressed);
      assert.deepEqual(encodeRle(maskOf(vector), height, width, false).counts, vector.uncompressed);
      assert.equal(encodeCountsString(vector.uncompressed), vector.compressed);
    });
  }

  test('a negative delta in one character and a long count across characters', () => {
    // count 3 is 4 − 10 = −6: one character, 26 + 48 = 'J' (sign bit set, no continuation)
    assert.deepEqual(decodeCountsString('3:2J'), [3, 10, 2, 4]);
    // 40 = 8 + 1·32: 'X' (8 | continuation) then '1'
    assert.deepEqual(decodeCountsString('5X172'), [5, 40, 7, 42]);
  });

  test('malformed RLE fails with a message that says what is wrong', () => {
    assert.throws(() => decodeRle({ size: [2, 3], counts: [1, 2] }), /cover 3 of the 2×3 = 6 pixels/);
    assert.throws(() => decodeRle({ size: [2, 3], counts: [4, 4] }), /more than the 2×3 = 6 pixels/);
    assert.throws(() => decodeRle({ size: [2, 3], counts: [1, -1, 6] }), /run 1 has length -1/);
    assert.throws(() => decodeRle({ size: [0, 3], counts: [] }), /positive integers/);
    assert.throws(() => decodeCountsString('0\u00ff'), /not part of a COCO RLE string/);
    assert.throws(() => decodeCountsString('0o'), /ends inside a count/);
    assert.throws(() => decodeRle({ size: [2, 3], counts: 7 as unknown as number[] }), RleError);
  });
});

describe('SAM automatic mask generator JSON', () => {
  const record = (vector: Vector, compressed: boolean, extra: object = {}) => ({
    segmentation: { size: vector.size, counts: compressed ? vector.compressed : vector.uncompressed },
    area: vector.area,
    ...extra,
  });

  test('reads a list of records with compressed and uncompressed RLE, scores and computed boxes', () => {
    const rectangle = vectors.find((v) => v.name === 'rectangle')!;
    const blobs = vectors.find((v) => v.name === 'blobs 17x23')!;
    const text = JSON.stringify([
      record(rectangle, true, { predicted_iou: 0.93, stability_score: 0.97, bbox: [2, 1, 4, 3] }),
      record(blobs, false, { predicted_iou: 0.81 }),
    ]);
    const [first, second] = parseAmgJson(text, 1000);
    assert.deepEqual(first!.decode(), maskOf(rectangle));
    assert.equal(first!.area, 12);
    // a row-major 3×4 block starting at row 1, column 2 of the 5×7 mask
    assert.deepEqual(first!.bbox, [2, 1, 4, 3]);
    assert.equal(first!.predictedIou, 0.93);
    assert.equal(first!.stabilityScore, 0.97);
    assert.deepEqual(second!.decode(), maskOf(blobs));
    assert.equal(second!.area, blobs.area);
    assert.equal(second!.stabilityScore, null);
  });

  test('reads a COCO file with annotations', () => {
    const rectangle = vectors.find((v) => v.name === 'rectangle')!;
    const [only] = parseAmgJson(JSON.stringify({ images: [], annotations: [record(rectangle, true)] }), 1000);
    assert.equal(only!.area, 12);
  });

  test('refuses what it cannot read, naming the record', () => {
    const rectangle = vectors.find((v) => v.name === 'rectangle')!;
    assert.throws(() => parseAmgJson('not json', 1000), AmgFormatError);
    assert.throws(() => parseAmgJson('[]', 1000), /no masks/);
    assert.throws(() => parseAmgJson('{"a": 1}', 1000), /list of masks/);
    assert.throws(() => parseAmgJson(JSON.stringify([record(rectangle, true), { segmentation: [[1, 2, 3, 4, 5, 6]] }]), 1000), /mask 1: .*polygons/);
    assert.throws(() => parseAmgJson(JSON.stringify([{ segmentation: { size: [5, 7], counts: [3] } }]), 1000), /mask 0: the runs cover 3 of/);
    assert.throws(() => parseAmgJson(JSON.stringify(Array.from({ length: 300 }, () => record(rectangle, true))), 1000), /at most 256/);
    // a few bytes can describe a huge mask: its size is checked before anything is rasterised
    const huge = { segmentation: { size: [60000, 60000], counts: [0, 3600000000] } };
    assert.throws(() => parseAmgJson(JSON.stringify([record(rectangle, true), huge]), 40_000_000), /mask 1 is 60000×60000 pixels; at most 40000000 are accepted/);
  });
});
