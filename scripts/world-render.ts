// Renders seeded scenes of the procedural world, or measures how fast it renders.
//
//   npx tsx scripts/world-render.ts --out out/world --count 16        {seed}.png, {seed}.json (scene, caption, boxes)
//                                                                    and {seed}_mask{i}.png per object
//   --first-seed 0   --size 64|128   --split all|train|heldout   --min-objects 1   --max-objects 4   --no-masks
//   npx tsx scripts/world-render.ts --benchmark 3000 --size 64       scenes per second (sample + render), no files
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeMaskPng, writePng } from '../trainer/world/image.ts';
import { renderScene } from '../trainer/world/render.ts';
import { sampleScene, type Split } from '../trainer/world/sampler.ts';
import { captionOf } from '../trainer/world/scene.ts';

const { values } = parseArgs({
  options: {
    out: { type: 'string' },
    count: { type: 'string', default: '16' },
    'first-seed': { type: 'string', default: '0' },
    size: { type: 'string', default: '64' },
    split: { type: 'string', default: 'all' },
    'min-objects': { type: 'string', default: '1' },
    'max-objects': { type: 'string', default: '4' },
    'no-masks': { type: 'boolean', default: false },
    benchmark: { type: 'string' },
  },
});

function integer(name: string, text: string | undefined): number {
  const value = Number(text);
  if (!Number.isInteger(value)) throw new Error(`--${name} must be an integer, got ${JSON.stringify(text)}`);
  return value;
}

const size = integer('size', values.size);
const firstSeed = integer('first-seed', values['first-seed']);
const split = values.split as Split;
if (!['all', 'train', 'heldout'].includes(split)) throw new Error(`--split must be all, train or heldout, got ${values.split}`);
const sampleOptions = { split, minObjects: integer('min-objects', values['min-objects']), maxObjects: integer('max-objects', values['max-objects']) };

if (values.benchmark !== undefined) {
  const count = integer('benchmark', values.benchmark);
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
  const count = integer('count', values.count);
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
