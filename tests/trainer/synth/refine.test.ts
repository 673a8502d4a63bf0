import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Generator } from '../../../trainer/util/random.ts';
import { assignClusters, fixEmptyMasks, kmeans, normalizeSelfMap, refineMasks, softSubjectMaps } from '../../../trainer/synth/refine.ts';
import { boxMask } from '../../../trainer/synth/regions.ts';

const close = (actual: ArrayLike<number>, expected: number[], tol: number, what: string) => {
  assert.equal(actual.length, expected.length, what);
  expected.forEach((e, i) => assert.ok(Math.abs(actual[i]! - e) <= tol, `${what}[${i}]: ${actual[i]} vs ${e}`));
};

function blobs(seed: number): { points: Float32Array; truth: number[] } {
  const generator = new Generator(seed);
  const centres = [[0, 0], [5, 5], [-5, 5]];
  const points: number[] = [];
  const truth: number[] = [];
  for (let i = 0; i < 60; i++) {
    const c = i % 3;
    points.push(centres[c]![0]! + 0.3 * generator.normal(), centres[c]![1]! + 0.3 * generator.normal());
    truth.push(c);
  }
  return { points: Float32Array.from(points), truth };
}

test('k-means separates blobs, is deterministic for its seed, and warm-starts from given centres', () => {
  const { points, truth } = blobs(5);
  const options = { clusters: 3, inits: 10, maxIterations: 100, tolerance: 1e-4, seed: 123 };
  const result = kmeans(points, 60, 2, options);
  const labelOfBlob = [0, 1, 2].map((c) => result.labels[truth.indexOf(c)]!);
  assert.equal(new Set(labelOfBlob).size, 3, 'three blobs, three labels');
  truth.forEach((c, i) => assert.equal(result.labels[i], labelOfBlob[c], `point ${i}`));
  assert.deepEqual(kmeans(points, 60, 2, options), result, 'same seed, same clustering');
  const warm = kmeans(points, 60, 2, options, result.centers);
  assert.deepEqual([...warm.labels], [...result.labels]);
  assert.ok(Math.abs(warm.inertia - result.inertia) < 1e-9);
  assert.throws(() => kmeans(points, 60, 2, { ...options, clusters: 60 }), /2 ≤ clusters < points/);
  assert.throws(() => kmeans(points, 61, 2, options), /120 values for 61 points/);
});

test('self maps are normalised per key column by their maximum over queries', () => {
  // [q][k]: column 0 max 0.5, column 1 max 0.8
  close(normalizeSelfMap(Float32Array.from([0.5, 0.2, 0.25, 0.8]), 2), [0.5 / 0.50001, 0.2 / 0.80001, 0.25 / 0.50001, 0.8 / 0.80001], 1e-6, 'normalised');
});

test('soft subject maps: max-normalise, sigmoid(10(x − 0.2)), min-max, times the current mask', () => {
  // x/max = 0, .25, .5, 1 -> sigmoid -> min-max = 0, 0.57156, 0.94650, 0.99999; the mask removes the last pixel
  const [soft] = softSubjectMaps(Float32Array.from([0, 0.1, 0.2, 0.4]), 4, [Uint8Array.from([1, 1, 1, 0])], 0.2);
  close(soft!, [0, 0.5715593, 0.946499, 0], 1e-5, 'soft map');
});

test('clusters go to the subject with the best intersection over the smaller area; weak clusters become background', () => {
  const labels = Int32Array.from([0, 0, 1, 1, 2, 2]);
  const soft = [Float32Array.from([1, 1, 0.5, 0, 0, 0]), Float32Array.from([0, 0, 0.5, 0.1, 1, 1])];
  // s0: area 2.5, scores c0 2/2 = 1, c1 0.5/2 = 0.25, c2 0; s1: area 2.6, scores c0 0, c1 0.6/2 = 0.3, c2 1
  const result = assignClusters(labels, 3, soft, 0.2);
  assert.deepEqual([...result.subjectOfCluster], [0, 1, 1]);
  close(result.scoreOfCluster, [1, 0.3, 1], 1e-6, 'scores');
  assert.deepEqual(result.masks.map((m) => [...m]), [[1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 1]]);
  const strict = assignClusters(labels, 3, soft, 0.35);
  assert.deepEqual(strict.masks.map((m) => [...m]), [[1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1]]);
});

test('an empty mask falls back to its box, cut out of the others, in subject order', () => {
  const boxes = [Uint8Array.from([1, 1, 0, 0]), Uint8Array.from([0, 0, 1, 1])];
  const result = fixEmptyMasks([Uint8Array.from([0, 0, 0, 0]), Uint8Array.from([1, 1, 0, 0])], boxes);
  // subject 0 takes its box, which empties subject 1; subject 1 then takes its own box
  assert.deepEqual(result.masks.map((m) => [...m]), [[1, 1, 0, 0], [0, 0, 1, 1]]);
  assert.deepEqual(result.fixed, [0, 1]);
  const untouched = fixEmptyMasks([Uint8Array.from([1, 0, 0, 0]), Uint8Array.from([0, 0, 1, 0])], boxes);
  assert.deepEqual(untouched.fixed, []);
  assert.deepEqual(untouched.masks.map((m) => [...m]), [[1, 0, 0, 0], [0, 0, 1, 0]]);
});

test('refinement recovers the subjects’ shapes from block-structured attention', () => {
  // 6x6 grid; the left object is columns 0-1 of rows 1-4, the right object columns 4-5 of rows 1-4, the rest is scene.
  const side = 6;
  const n = side * side;
  const objectOf = (q: number) => {
    const r = Math.floor(q / side);
    const c = q % side;
    if (r < 1 || r > 4) return -1;
    return c <= 1 ? 0 : c >= 4 ? 1 : -1;
  };
  const selfMap = new Float32Array(n * n);
  for (let q = 0; q < n; q++) {
    const members = Array.from({ length: n }, (_, k) => k).filter((k) => objectOf(k) === objectOf(q));
    for (const k of members) selfMap[q * n + k] = 1 / members.length;
  }
  const crossMap = new Float32Array(n * 2);
  for (let q = 0; q < n; q++) {
    const object = objectOf(q);
    crossMap[q * 2] = object === 0 ? 0.5 : 0.01;
    crossMap[q * 2 + 1] = object === 1 ? 0.5 : 0.01;
  }
  // boxes larger than the objects
  const boxes = [boxMask([0, 0, 0.5, 1], side, side), boxMask([0.5, 0, 1, 1], side, side)];
  const options = { clustersPerSubject: 2, selfMaskThreshold: 0.2, crossMaskThreshold: 0.2, kmeans: { inits: 8, maxIterations: 50, tolerance: 1e-4, seed: 123 } };
  const result = refineMasks({ selfMap, crossMap, n, current: boxes, boxes }, options);
  for (const s of [0, 1]) {
    const expected = Array.from({ length: n }, (_, q) => (objectOf(q) === s ? 1 : 0));
    assert.deepEqual([...result.masks[s]!], expected, `subject ${s}`);
  }
  assert.deepEqual(result.fellBack, []);
  const again = refineMasks({ selfMap, crossMap, n, current: result.masks, boxes, centers: result.centers }, options);
  assert.deepEqual(again.masks, result.masks, 'a warm-started refinement keeps stable masks');
});
