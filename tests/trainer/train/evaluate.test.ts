// The generation report on images whose verdicts are known: each case's own render with some of its objects left out.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { evaluateGeneration } from '../../../trainer/train/evaluate.ts';
import type { EvaluationCase } from '../../../trainer/world/evaluation_set.ts';
import { renderScene } from '../../../trainer/world/render.ts';

const SIZE = 64;
const settings = { steps: 25, guidance: 5, guidanceRescale: 0, sampler: 'ddim' as const };

test('by object count: the images all right and the share of their objects of the right shape', async () => {
  // one-object cases drawn whole, two-object cases without their second object, three-object cases without any
  const keptObjects = (objects: number) => (objects === 1 ? 1 : objects === 2 ? 1 : 0);
  const drawn = async (testCase: EvaluationCase) => {
    const scene = { ...testCase.scene, objects: testCase.scene.objects.slice(0, keptObjects(testCase.scene.objects.length)) };
    return { width: SIZE, height: SIZE, data: renderScene(scene, SIZE, { masks: false }).image };
  };
  const report = await evaluateGeneration(drawn, 24, settings, { firstSeed: 500 });
  assert.deepEqual(
    report.byObjectCount.map((b) => [b.objects, b.shapeAndColourRate, b.shapeAccuracy]),
    [[1, 1, 1], [2, 0, 0.5], [3, 0, 0]],
  );
  assert.equal(report.byObjectCount.reduce((n, b) => n + b.images, 0), 24);
  const objectsRight = report.byObjectCount.reduce((n, b) => n + b.shapeAccuracy * b.objects * b.images, 0);
  assert.ok(Math.abs(report.shapeAccuracy - objectsRight / report.objects) < 1e-12);
});
