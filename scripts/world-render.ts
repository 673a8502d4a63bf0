// Renders seeded scenes of the procedural world, or measures how fast it renders.
//
//   npx tsx scripts/world-render.ts --out out/world --count 16        {seed}.png, {seed}.json (scene, caption, boxes)
//                                                                    and {seed}_mask{i}.png per object
//   --first-seed 0   --size 64|128   --split all|train|heldout   --min-objects 1   --max-objects 4   --no-masks
//   npx tsx scripts/world-render.ts --benchmark 3000 --size 64       scenes per second (sample + render), no files
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { isNonNegativeInteger, isPositiveInteger, parseNumber } from '../trainer/cli/args.ts';
import { writeMaskPng, writePng } from '../trainer/world/image.ts';
import { renderScene } from '../trainer/world/render.ts';
import { sampleScene, type Split } from '../trainer/world/sampler.ts';
import { captionOf } from '../trainer/world/scene.ts';

const { values } = parseArgs({
  options: {
    out: { type: 'string' },
    count: { type: 'string' },
    'first-seed': { type: 'string' },
    size: { type: 'string' },
    split: { type: 'string', default: 'all' },
    'min-objects': { type: 'string' },
    'max-objects': { type: 'string' },
    'no-masks': { type: 'boolean', default: false },
    benchmark: { type: 'string' },
  },
});

const size = parseNumber(values.size, 'size', 64, isPositiveInteger);
const firstSeed = parseNumber(values['first-seed'], 'first-seed', 0, isNonNegativeInteger);
const split = values.split as Split;
if (!['all', 'train', 'heldout'].includes(split)) throw new Error(`--split must be all, train or heldout, got ${values.split}`);
const sampleOptions = { split, minObjects: parseNumber(values['min-objects'], 'min-objects', 1, isPositiveInteger), maxObjects: parseNumber(values['max-objects'], 'max-objects', 4, isPositiveInteger) };

if (values.benchmark !== undefined) {
  const count = parseNumber(values.benchmark, 'benchmark', 0, isPositiveInteger);
  const masks = !values['no-masks'];
  for (let i = 0; i < Math.min(200, count); i++) renderScene(sampleScene(firstSeed + i, sampleOptions), size, { masks });
  const start = performance.now();
  const cpuStart = process.cpuUsage();
  for (let i = 0; i < count; i++) renderScene(sampleScene(firstSeed + i, sampleOptions), size, { masks });
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  // CPU time is what one core spends; wall time also counts waiting for a busy machine
  console.log(
    `${count} scenes at ${size}x${size}${masks ? ' with masks' : ''}: ${(count / cpuSeconds).toFixed(0)} scenes per CPU second ` +
      `(${(count / seconds).toFixed(0)} per wall second, one thread)`,
  );
} else {
  if (!values.out) throw new Error('--out DIR is required (or --benchmark N)');
  mkdirSync(values.out, { recursive: true });
  const count = parseNumber(values.count, 'count', 16, isPositiveInteger);
  for (let seed = firstSeed; seed < firstSeed + count; seed++) {
    const scene = sampleScene(seed, sampleOptions);
    const rendered = renderScene(scene, size, { masks: !values['no-masks'] });
    await writePng(join(values.out, `${seed}.png`), { width: size, height: size, data: rendered.image });
    for (const [i, mask] of rendered.masks.entries()) await writeMaskPng(join(values.out, `${seed}_mask${i}.png`), mask, size);
    const description = { seed, size, caption: captionOf(scene), scene, boxes: rendered.boxes };
    writeFileSync(join(values.out, `${seed}.json`), `${JSON.stringify(description, null, 2)}\n`);
  }
  console.log(`wrote ${count} scenes to ${values.out}`);
}
