// The world's analytic evaluator from the command line.
//
// Accuracy against ground truth (the numbers in docs/world.md):
//   npx tsx scripts/world-eval.ts --scenes 1000 --size 64            clean renders of seeds 10000..
//   --first-seed 10000   --size 64|128   --degraded (blur, noise and a colour cast on every image)   --json
//   --generation-like (also saturation and brightness drift and wobbling outlines, as a model draws)
//   --multi-object-scale 1.2 (scenes of 2+ objects drawn with larger objects, as training may draw them)
//
// Judge one image:
//   npx tsx scripts/world-eval.ts --image out.png --caption "a photo of a red striped circle and a blue star on snow" \
//       [--boxes "0.1,0.1,0.5,0.5;0.5,0.5,0.9,0.9"]                one JSON result per object of the caption
import { parseArgs } from 'node:util';
import { isNonNegativeInteger, isPositiveInteger, parseNumber } from '../trainer/cli/args.ts';
import { degradeImage, generationLikeDegradation, randomDegradation } from '../trainer/world/degrade.ts';
import { measureAccuracy } from '../trainer/world/evaluator/accuracy.ts';
import { evaluateScene, type ObjectRequest } from '../trainer/world/evaluator/evaluate.ts';
import { readRgb } from '../trainer/world/image.ts';
import { Rng } from '../trainer/world/random.ts';
import { checkMultiObjectScale, sampleScene, type SampleOptions } from '../trainer/world/sampler.ts';
import { parseCaption, type Box } from '../trainer/world/scene.ts';

const { values } = parseArgs({
  options: {
    scenes: { type: 'string' },
    'first-seed': { type: 'string' },
    size: { type: 'string' },
    degraded: { type: 'boolean', default: false },
    'generation-like': { type: 'boolean', default: false },
    'multi-object-scale': { type: 'string' },
    json: { type: 'boolean', default: false },
    image: { type: 'string' },
    caption: { type: 'string' },
    boxes: { type: 'string' },
  },
});

function parseBoxes(text: string, count: number): Box[] {
  const boxes = text.split(';').map((part) => part.split(',').map(Number));
  if (boxes.length !== count || boxes.some((box) => box.length !== 4 || box.some((v) => !Number.isFinite(v)))) {
    throw new Error(`--boxes needs ${count} boxes "x0,y0,x1,y1" separated by ';', got ${JSON.stringify(text)}`);
  }
  return boxes as Box[];
}

/** "0.511 with 1 object, 0.391 with 2, ..." over the scenes of these seeds. */
function meanDiameterByCount(seeds: readonly number[], options: SampleOptions): string {
  const sums = new Map<number, { total: number; objects: number }>();
  for (const seed of seeds) {
    const { objects } = sampleScene(seed, options);
    const entry = sums.get(objects.length) ?? { total: 0, objects: 0 };
    for (const object of objects) entry.total += object.size;
    entry.objects += objects.length;
    sums.set(objects.length, entry);
  }
  return [...sums.entries()]
    .sort(([a], [b]) => a - b)
    .map(([count, { total, objects }], i) => `${(total / objects).toFixed(3)} with ${count}${i === 0 ? (count === 1 ? ' object' : ' objects') : ''}`)
    .join(', ');
}

if (values.image !== undefined) {
  if (!values.caption) throw new Error('--image needs --caption');
  const { objects } = parseCaption(values.caption);
  const boxes = values.boxes ? parseBoxes(values.boxes, objects.length) : null;
  const requests: ObjectRequest[] = objects.map((object, i) => ({ ...object, box: boxes ? boxes[i]! : null }));
  const results = evaluateScene(await readRgb(values.image), requests);
  for (const result of results) console.log(JSON.stringify(result));
} else {
  const size = parseNumber(values.size, 'size', 64, isPositiveInteger);
  const firstSeed = parseNumber(values['first-seed'], 'first-seed', 10000, isNonNegativeInteger);
  const seeds = Array.from({ length: parseNumber(values.scenes, 'scenes', 1000, isPositiveInteger) }, (_, i) => firstSeed + i);
  const multiObjectScale = parseNumber(values['multi-object-scale'], 'multi-object-scale', 1);
  checkMultiObjectScale(multiObjectScale, '--multi-object-scale');
  const report = measureAccuracy({
    seeds,
    size,
    sampleOptions: { multiObjectScale },
    transform: values['generation-like']
      ? (image, seed) => degradeImage(image, generationLikeDegradation(new Rng(seed)), seed)
      : values.degraded
        ? (image, seed) => degradeImage(image, randomDegradation(new Rng(seed)), seed)
        : undefined,
  });
  if (values.json) {
    console.log(JSON.stringify(report));
  } else {
    const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
    console.log(`${report.scenes} ${values['generation-like'] ? 'generation-like' : values.degraded ? 'degraded' : 'clean'} scenes at ${size}x${size}, seeds ${firstSeed}..${firstSeed + seeds.length - 1}${multiObjectScale === 1 ? '' : `, objects of 2+ scaled ${multiObjectScale}x`}`);
    console.log(`  plain-shape objects ${report.objects}: found ${pct(report.found)}, shape ${pct(report.shape)}, colour ${pct(report.colour)}, texture ${pct(report.texture)}`);
    console.log(`  rare objects ${report.rareObjects}: recognised ${pct(report.rareFound)}`);
    console.log(`  object diameter (share of the image side): mean ${meanDiameterByCount(seeds, { multiObjectScale })}`);
    console.log(`  box IoU: mean ${report.iouMean.toFixed(3)}, above 0.8 for ${pct(report.iouAbove08)}`);
    console.log(`  leakage score: mean ${report.leakageMean.toFixed(4)}, max ${report.leakageMax.toFixed(3)}`);
    console.log(`  shape errors ${JSON.stringify(report.shapeConfusions)}; texture errors ${JSON.stringify(report.textureConfusions)}`);
    console.log(`  ${report.seconds.toFixed(1)} s (plus building the reference set once)`);
  }
}
