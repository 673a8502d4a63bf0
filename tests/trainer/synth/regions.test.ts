import assert from 'node:assert/strict';
import { test } from 'node:test';
import { boxMask, boxRegions, boxSpan, resizeMaskNearestExact, roundHalfEven, validateBox, type Box } from '../../../trainer/synth/regions.ts';

test('roundHalfEven is Python 3 round()', () => {
  const cases: [number, number][] = [[0.5, 0], [1.5, 2], [2.5, 2], [3.5, 4], [4.5, 4], [2.4, 2], [2.6, 3], [7.2, 7], [0.49999999999999994, 0], [-1.5, -2], [3, 3]];
  for (const [x, expected] of cases) assert.equal(roundHalfEven(x), expected, `round(${x})`);
});

test('box -> rows/columns at every UNet resolution (the issue example boxes)', () => {
  const left: Box = [0.05, 0.3, 0.45, 0.9];
  const right: Box = [0.55, 0.3, 0.95, 0.9];
  // hand-computed: round(x·r) for x0 x1 (columns) and y0 y1 (rows)
  const expected: Record<number, [Box, { rows: [number, number]; cols: [number, number] }][]> = {
    8: [[left, { rows: [2, 7], cols: [0, 4] }], [right, { rows: [2, 7], cols: [4, 8] }]], // 2.4 7.2 | 0.4 3.6 | 4.4 7.6
    16: [[left, { rows: [5, 14], cols: [1, 7] }], [right, { rows: [5, 14], cols: [9, 15] }]], // 4.8 14.4 | 0.8 7.2 | 8.8 15.2
    32: [[left, { rows: [10, 29], cols: [2, 14] }], [right, { rows: [10, 29], cols: [18, 30] }]], // 9.6 28.8 | 1.6 14.4 | 17.6 30.4
    64: [[left, { rows: [19, 58], cols: [3, 29] }], [right, { rows: [19, 58], cols: [35, 61] }]], // 19.2 57.6 | 3.2 28.8 | 35.2 60.8
  };
  for (const [resolution, cases] of Object.entries(expected)) {
    const r = Number(resolution);
    for (const [box, span] of cases) assert.deepEqual(boxSpan(box, r, r), span, `${box} at ${r}²`);
  }
});

test('exact halves round to even at coarse grids', () => {
  const box: Box = [0.125, 0.375, 0.625, 0.875];
  assert.deepEqual(boxSpan(box, 4, 4), { rows: [2, 4], cols: [0, 2] }); // 1.5→2 3.5→4 | 0.5→0 2.5→2
  assert.deepEqual(boxSpan(box, 8, 8), { rows: [3, 7], cols: [1, 5] });
  assert.deepEqual(boxSpan(box, 2, 2), { rows: [1, 2], cols: [0, 1] }); // 0.75→1 1.75→2 | 0.25→0 1.25→1
  // non-square grids round rows by the height and columns by the width
  assert.deepEqual(boxSpan(box, 4, 8), { rows: [2, 4], cols: [1, 5] });
});

test('masks are row-major and the background is the complement of all boxes', () => {
  const mask = boxMask([0.25, 0.5, 0.75, 1], 4, 4);
  assert.deepEqual([...mask], [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0]);
  const regions = boxRegions([[0, 0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75]], 4, 4);
  assert.deepEqual(
    [...regions.background],
    [0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1],
  );
  // a box that rounds to nothing on a coarse grid is empty there
  assert.equal(boxMask([0.3, 0.3, 0.31, 0.31], 8, 8).reduce((a, b) => a + b, 0), 0);
});

test('nearest-exact resize picks floor((i + 0.5)·in/out)', () => {
  const line = (values: number[]) => Uint8Array.from(values);
  // 1 x 8 -> 1 x 4: sources 1, 3, 5, 7
  assert.deepEqual([...resizeMaskNearestExact(line([0, 1, 0, 1, 1, 0, 0, 1]), 1, 8, 1, 4)], [1, 1, 0, 1]);
  // 1 x 4 -> 1 x 8: sources 0 0 1 1 2 2 3 3
  assert.deepEqual([...resizeMaskNearestExact(line([1, 0, 1, 0]), 1, 4, 1, 8)], [1, 1, 0, 0, 1, 1, 0, 0]);
  // 1 x 16 -> 1 x 5: sources floor(3.2·(i + 0.5)) = 1, 4, 8, 11, 14
  const wide = new Uint8Array(16);
  for (const i of [1, 8, 14]) wide[i] = 1;
  assert.deepEqual([...resizeMaskNearestExact(wide, 1, 16, 1, 5)], [1, 0, 1, 0, 1]);
  // 2-D: rows and columns independently
  const square = Uint8Array.from([1, 0, 0, 0]);
  assert.deepEqual([...resizeMaskNearestExact(square, 2, 2, 4, 4)], [1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
});

test('invalid boxes are refused with the reason', () => {
  assert.throws(() => validateBox([0.1, 0.2, 0.3]), /four numbers/);
  assert.throws(() => validateBox([0.5, 0.2, 0.3, 0.4]), /x0 < x1/);
  assert.throws(() => validateBox([0, 0, 1.2, 1]), /\[0, 1\]/);
  assert.throws(() => validateBox([0, 0, Number.NaN, 1]), /four numbers/);
  assert.deepEqual(validateBox([0, 0.1, 1, 0.9]), [0, 0.1, 1, 0.9]);
});
