import assert from 'node:assert/strict';
import { test } from 'node:test';
import { degradeImage, generationLikeDegradation, randomDegradation } from '../../../trainer/world/degrade.ts';
import { measureAccuracy, type AccuracyReport } from '../../../trainer/world/evaluator/accuracy.ts';
import { evaluateObject, evaluateScene, EvaluatorError, judgeScene, type ObjectRequest } from '../../../trainer/world/evaluator/evaluate.ts';
import { polygonCorners, traceBoundary } from '../../../trainer/world/evaluator/features.ts';
import { worldReference, REFERENCE_SEED_BASE } from '../../../trainer/world/evaluator/reference.ts';
import { resizeBilinear, type RgbImage } from '../../../trainer/world/image.ts';
import { Rng } from '../../../trainer/world/random.ts';
import { renderScene } from '../../../trainer/world/render.ts';
import { sampleScene } from '../../../trainer/world/sampler.ts';
import type { Scene, SceneObject } from '../../../trainer/world/scene.ts';

function summary(report: AccuracyReport): string {
  const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
  return (
    `${report.scenes} scenes, ${report.objects} objects: shape ${pct(report.shape)}, colour ${pct(report.colour)}, ` +
    `texture ${pct(report.texture)}, found ${pct(report.found)}; rare ${report.rareObjects} found ${pct(report.rareFound)}; ` +
    `IoU mean ${report.iouMean.toFixed(3)}, >0.8 ${pct(report.iouAbove08)}; leakage mean ${report.leakageMean.toFixed(4)}; ` +
    `${report.seconds.toFixed(1)} s`
  );
}

function image(scene: Scene, size: number): RgbImage {
  return { width: size, height: size, data: renderScene(scene, size).image };
}

function requestsOf(scene: Scene, size: number): ObjectRequest[] {
  const boxes = renderScene(scene, size).boxes;
  return scene.objects.map((o, i) => ({ shape: o.shape, colour: o.colour, texture: o.texture, box: boxes[i]! }));
}

test('the polygon fit counts the corners of simple outlines', () => {
  const width = 30;
  const height = 30;
  const maskOf = (inside: (x: number, y: number) => boolean) => Uint8Array.from({ length: width * height }, (_, i) => (inside(i % width, Math.floor(i / width)) ? 1 : 0));
  const square = maskOf((x, y) => x >= 5 && x < 25 && y >= 5 && y < 25);
  const boundary = traceBoundary(square, width, height);
  assert.equal(boundary.length, 80, 'one point per pixel edge of a 20x20 square');
  assert.deepEqual(polygonCorners(boundary, 1), { convex: 4, concave: 0 });
  const ell = maskOf((x, y) => x >= 5 && x < 25 && y >= 5 && y < 25 && !(x >= 15 && y < 15));
  assert.deepEqual(polygonCorners(traceBoundary(ell, width, height), 1), { convex: 5, concave: 1 });
  const triangle = maskOf((x, y) => y >= 4 && y < 26 && Math.abs(x + 0.5 - 15) <= (y - 4) / 2);
  assert.equal(polygonCorners(traceBoundary(triangle, width, height), 1.2).convex, 3);
});

test('the reference set is built from its own seeds, far from the seeds benchmarks and tests use', (t) => {
  const start = performance.now();
  const reference = worldReference();
  t.diagnostic(`reference built in ${((performance.now() - start) / 1000).toFixed(1)} s`);
  assert.ok(REFERENCE_SEED_BASE > 1_000_000_000);
  for (const [name, compositions] of Object.entries(reference.rares.compositions)) assert.ok(compositions.length >= 5, `${name} has references`);
});

for (const size of [64, 128]) {
  test(`clean ${size}x${size} renders: shape, colour and texture accuracy >= 95%, box IoU > 0.8, no leakage`, (t) => {
    const seeds = Array.from({ length: size === 64 ? 300 : 100 }, (_, i) => 10_000 + i);
    const report = measureAccuracy({ seeds, size });
    t.diagnostic(summary(report));
    if (Object.keys(report.shapeConfusions).length > 0) t.diagnostic(`shape errors: ${JSON.stringify(report.shapeConfusions)}`);
    if (Object.keys(report.textureConfusions).length > 0) t.diagnostic(`texture errors: ${JSON.stringify(report.textureConfusions)}`);
    assert.ok(report.objects > (size === 64 ? 600 : 200), `enough objects judged (${report.objects})`);
    assert.ok(report.found >= 0.99, `found ${report.found}`);
    assert.ok(report.shape >= 0.95, `shape accuracy ${report.shape}`);
    assert.ok(report.colour >= 0.95, `colour accuracy ${report.colour}`);
    assert.ok(report.texture >= 0.95, `texture accuracy ${report.texture}`);
    assert.ok(report.rareObjects >= 5 && report.rareFound >= 0.9, `rare objects found ${report.rareFound} of ${report.rareObjects}`);
    assert.ok(report.iouMean > 0.9, `mean IoU ${report.iouMean}`);
    assert.ok(report.iouAbove08 >= 0.95, `share of IoU > 0.8: ${report.iouAbove08}`);
    assert.ok(report.leakageMean < 0.02, `mean leakage ${report.leakageMean}`);
  });
}

test('degraded renders (blur, noise, colour cast) are still judged mostly right', (t) => {
  const report = measureAccuracy({
    seeds: Array.from({ length: 150 }, (_, i) => 20_000 + i),
    size: 64,
    transform: (clean, seed) => degradeImage(clean, randomDegradation(new Rng(seed)), seed),
  });
  t.diagnostic(`degraded 64x64: ${summary(report)}`);
  assert.ok(report.shape >= 0.9, `shape ${report.shape}`);
  assert.ok(report.colour >= 0.95, `colour ${report.colour}`);
  assert.ok(report.texture >= 0.85, `texture ${report.texture}`);
  assert.ok(report.rareFound >= 0.8, `rare ${report.rareFound}`);
});

test('renders drawn as a model would (colour drift, wobbling outlines) are judged mostly right too', (t) => {
  const report = measureAccuracy({
    seeds: Array.from({ length: 150 }, (_, i) => 20_000 + i),
    size: 64,
    transform: (clean, seed) => degradeImage(clean, generationLikeDegradation(new Rng(seed)), seed),
  });
  t.diagnostic(`generation-like 64x64: ${summary(report)}`);
  if (Object.keys(report.shapeConfusions).length > 0) t.diagnostic(`shape errors: ${JSON.stringify(report.shapeConfusions)}`);
  assert.ok(report.found >= 0.98, `found ${report.found}`);
  assert.ok(report.shape >= 0.92, `shape ${report.shape}`);
  assert.ok(report.colour >= 0.97, `colour ${report.colour}`);
  assert.ok(report.rareFound >= 0.8, `rare ${report.rareFound}`);
});

test('a colour drifted past the match distance still joins its region: a ring drawn in a too-saturated blue stays one ring', () => {
  const size = 64;
  const ring: Scene = { background: { kind: 'plain', variant: 0, seed: 1 }, objects: [{ shape: 'ring', colour: 'blue', texture: 'plain', center: [0.5, 0.5], size: 0.5, rotation: 0 }] };
  const rendered = renderScene(ring, size);
  // a model's blue, saturated past the world's: most of the ring lies between 16 and 22.4 Lab units from the blue line
  const drifted = degradeImage({ width: size, height: size, data: rendered.image }, { blur: 0, noise: 0, cast: [0, 0, 0], saturation: 1.4 }, 1);
  const [result] = evaluateScene(drifted, [{ shape: 'ring', colour: 'blue', texture: 'plain' }]);
  assert.equal(result!.colour.label, 'blue');
  assert.equal(result!.shape.label, 'ring');
});

test('a rare object needs all its colours: a pink heart is no plimset without its black dot and band', () => {
  const alone = (object: SceneObject): RgbImage => image({ background: { kind: 'plain', variant: 0, seed: 1 }, objects: [object] }, 64);
  const placed = { center: [0.5, 0.5] as [number, number], size: 0.5, rotation: 0 };
  assert.equal(evaluateScene(alone({ shape: 'plimset', colour: null, texture: null, ...placed }), [{ shape: 'plimset' }])[0]!.found, true);
  assert.equal(evaluateScene(alone({ shape: 'heart', colour: 'pink', texture: 'plain', ...placed }), [{ shape: 'plimset' }])[0]!.found, false);
});

/** Two-object scenes of plain shapes in different colours, the first with a pattern. */
function pairScenes(count: number): Scene[] {
  const scenes: Scene[] = [];
  for (let seed = 30_000; scenes.length < count; seed++) {
    const scene = sampleScene(seed, { minObjects: 2, maxObjects: 2, rareProbability: 0, similarPairProbability: 0 });
    const [a, b] = scene.objects as [SceneObject, SceneObject];
    if (a.colour !== b.colour && a.texture !== 'plain' && a.texture !== b.texture) scenes.push(scene);
  }
  return scenes;
}

/** A free spot for a disc of `size` away from every object, or null. */
function freeSpot(scene: Scene, size: number): [number, number] | null {
  for (let gy = 0; gy < 8; gy++) {
    for (let gx = 0; gx < 8; gx++) {
      const center: [number, number] = [size / 2 + 0.02 + (gx / 7) * (0.96 - size), size / 2 + 0.02 + (gy / 7) * (0.96 - size)];
      if (scene.objects.every((o) => Math.hypot(o.center[0] - center[0], o.center[1] - center[1]) > (o.size + size) / 2 + 0.03)) return center;
    }
  }
  return null;
}

test('leakage is near zero on clean renders and clearly higher on leaking images', (t) => {
  const clean: number[] = [];
  const copied: number[] = [];
  const painted: number[] = [];
  const textured: number[] = [];
  for (const scene of pairScenes(60)) {
    const size = 64;
    const requests = requestsOf(scene, size);
    const [a, b] = scene.objects as [SceneObject, SceneObject];
    clean.push(evaluateScene(image(scene, size), requests)[0]!.leakage.score);
    // the first object's colour and pattern appear a second time, outside its box
    const spot = freeSpot(scene, a.size);
    if (spot) {
      const copy = { ...a, shape: b.shape, center: spot };
      copied.push(evaluateScene(image({ ...scene, objects: [...scene.objects, copy] }, size), requests)[0]!.leakage.outsideBox);
    }
    // a patch of the first object's colour on the second object
    const patch = { ...a, shape: 'circle' as const, texture: 'plain' as const, center: b.center, size: b.size * 0.35 };
    painted.push(evaluateScene(image({ ...scene, objects: [...scene.objects, patch] }, size), requests)[0]!.leakage.onOthers);
    // the second object takes the first object's pattern
    const retextured = { ...scene, objects: [a, { ...b, texture: a.texture }] };
    textured.push(evaluateScene(image(retextured, size), requests)[0]!.leakage.textureOnOthers);
  }
  const mean = (values: number[]) => values.reduce((s, v) => s + v, 0) / values.length;
  t.diagnostic(
    `leakage mean: clean ${mean(clean).toFixed(3)}, copy outside the box ${mean(copied).toFixed(3)} (${copied.length}), ` +
      `patch on the other object ${mean(painted).toFixed(3)}, pattern on the other object ${mean(textured).toFixed(3)}`,
  );
  assert.ok(copied.length >= 20, 'enough scenes with room for a copy');
  assert.ok(mean(clean) < 0.02 && Math.max(...clean) < 0.1, `clean leakage ${mean(clean)} (max ${Math.max(...clean)})`);
  assert.ok(mean(copied) > 0.5 && copied.filter((v) => v > 0.2).length >= 0.9 * copied.length, `copy leakage ${mean(copied)}`);
  assert.ok(mean(painted) > 0.05 && painted.filter((v) => v > 0.02).length >= 0.9 * painted.length, `patch leakage ${mean(painted)}`);
  assert.ok(mean(textured) > 0.5, `pattern leakage ${mean(textured)}`);
});

test('wrong objects are reported as wrong, missing ones as not found', () => {
  const scene: Scene = {
    background: { kind: 'grass', variant: 0, seed: 4 },
    objects: [
      { shape: 'star', colour: 'red', texture: 'striped', center: [0.3, 0.35], size: 0.4, rotation: 10 },
      { shape: 'square', colour: 'blue', texture: 'plain', center: [0.72, 0.7], size: 0.36, rotation: 0 },
    ],
  };
  const picture = image(scene, 64);
  const [star, square] = requestsOf(scene, 64) as [ObjectRequest, ObjectRequest];
  const right = evaluateObject(picture, star, [square]);
  assert.ok(right.found && right.shape.correct && right.colour.correct && right.texture.correct, JSON.stringify(right));
  assert.ok(right.shape.confidence > 0.5 && right.colour.confidence > 0.5 && right.texture.confidence > 0.5, 'confident on a clean render');
  const wrongShape = evaluateObject(picture, { ...star, shape: 'heart' }, [square]);
  assert.equal(wrongShape.shape.label, 'star');
  assert.equal(wrongShape.shape.correct, false);
  const wrongTexture = evaluateObject(picture, { ...star, texture: 'dotted' }, [square]);
  assert.equal(wrongTexture.texture.label, 'striped');
  assert.equal(wrongTexture.texture.correct, false);
  // nothing yellow: without a box it is not found; with a box, what fills the box is read
  const absent = evaluateObject(picture, { shape: 'star', colour: 'yellow', texture: 'striped' });
  assert.equal(absent.found, false);
  const elsewhere = evaluateObject(picture, { shape: 'star', colour: 'yellow', texture: 'striped', box: star.box });
  assert.ok(elsewhere.found && elsewhere.colour.label === 'red' && !elsewhere.colour.correct, JSON.stringify(elsewhere.colour));
  const missingRare = evaluateObject(picture, { shape: 'zorb' });
  assert.equal(missingRare.found, false);
  // a box in the wrong place gives a low IoU
  const misplaced = evaluateObject(picture, { ...star, box: [0.6, 0.6, 0.95, 0.95] }, [square]);
  assert.ok(misplaced.found && misplaced.iou! < 0.2, `IoU ${misplaced.iou}`);
});

test('an object nobody asked for is counted as unclaimed', () => {
  const scene: Scene = {
    background: { kind: 'plain', variant: 0, seed: 1 },
    objects: [
      { shape: 'circle', colour: 'red', texture: 'plain', center: [0.3, 0.3], size: 0.3, rotation: 0 },
      { shape: 'circle', colour: 'red', texture: 'plain', center: [0.72, 0.7], size: 0.3, rotation: 0 },
      { shape: 'star', colour: 'blue', texture: 'plain', center: [0.7, 0.25], size: 0.3, rotation: 0 },
    ],
  };
  const picture = image(scene, 64);
  const [circle, , star] = requestsOf(scene, 64).map((request) => ({ ...request, box: null })) as [ObjectRequest, ObjectRequest, ObjectRequest];
  assert.equal(judgeScene(picture, requestsOf(scene, 64)).unclaimedRegions, 0);
  const askedForTwo = judgeScene(picture, [circle, star]);
  assert.ok(askedForTwo.objects.every((o) => o.found && o.shape.correct && o.colour.correct), JSON.stringify(askedForTwo.objects));
  assert.equal(askedForTwo.unclaimedRegions, 1, 'the second red circle was drawn but not asked for');
});

test('images of any size are judged the same', () => {
  const scene = sampleScene(40_001, { minObjects: 3, maxObjects: 3, rareProbability: 0 });
  const requests = requestsOf(scene, 128);
  const native = evaluateScene(image(scene, 128), requests);
  for (const [width, height] of [
    [256, 256],
    [200, 160],
  ]) {
    const resized = evaluateScene(resizeBilinear(image(scene, 128), width!, height!), requests);
    resized.forEach((result, i) => {
      assert.equal(result.shape.label, native[i]!.shape.label, `${width}x${height} object ${i} shape`);
      assert.equal(result.colour.label, native[i]!.colour.label, `${width}x${height} object ${i} colour`);
      assert.equal(result.texture.label, native[i]!.texture.label, `${width}x${height} object ${i} texture`);
      assert.ok(result.iou! > 0.8, `${width}x${height} object ${i} IoU ${result.iou}`);
    });
  }
});

test('bad requests and images get clear errors', () => {
  const picture = image(sampleScene(1), 64);
  assert.throws(() => evaluateScene(picture, []), EvaluatorError);
  assert.throws(() => evaluateObject(picture, { shape: 'blob' as never, colour: 'red', texture: 'plain' }), /unknown shape/);
  assert.throws(() => evaluateObject(picture, { shape: 'star', colour: 'teal' as never, texture: 'plain' }), /unknown colour/);
  assert.throws(() => evaluateObject(picture, { shape: 'star', colour: 'red' }), /unknown texture/);
  assert.throws(() => evaluateObject(picture, { shape: 'zorb', colour: 'red' }), /fixed look/);
  assert.throws(() => evaluateObject(picture, { shape: 'star', colour: 'red', texture: 'plain', box: [0.5, 0.5, 0.2, 0.9] }), /box/);
  assert.throws(() => evaluateObject({ width: 64, height: 64, data: new Uint8Array(10) }, { shape: 'star', colour: 'red', texture: 'plain' }), /needs/);
  assert.throws(() => evaluateObject({ width: 16, height: 16, data: new Uint8Array(16 * 16 * 3) }, { shape: 'star', colour: 'red', texture: 'plain' }), /smaller/);
});
