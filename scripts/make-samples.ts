// Regenerates public/samples/: sample photos from the procedural world (trainer/world) with their exact instance
// masks, so a new user can try the studio in a minute. Run: `node --import tsx scripts/make-samples.ts`.
// samples.json lists each sample's photo, caption and instances (name, mask, colour, a point well inside the object
// and its box), which the studio reads to open a sample and the e2e tests read to know where to click.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { renderScene } from '../trainer/world/render.ts';
import { sceneFromBoxes, type BoxedObject } from '../trainer/world/sampler.ts';
import { captionOf, type Box } from '../trainer/world/scene.ts';
import type { BackgroundSpec } from '../trainer/world/backgrounds.ts';

const SIZE = 512;
const OUT = join(import.meta.dirname, '..', 'public', 'samples');
/** The overlay colours of the studio's first instances (app/lib/colors.ts uses the same palette). */
const COLOURS = ['#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#42d4f4'];

interface SampleSpec {
  id: string;
  title: string;
  background: BackgroundSpec;
  objects: (BoxedObject & { name: string })[];
}

const SAMPLES: SampleSpec[] = [
  {
    id: 'two-toys',
    title: 'A striped circle and a star',
    background: { kind: 'wood', variant: 1, seed: 11 },
    objects: [
      { name: 'circle', shape: 'circle', colour: 'red', texture: 'striped', box: [0.08, 0.3, 0.46, 0.68] },
      { name: 'star', shape: 'star', colour: 'blue', texture: 'plain', box: [0.54, 0.26, 0.94, 0.66], rotation: 8 },
    ],
  },
  {
    id: 'similar-pair',
    title: 'Two yellow triangles, one dotted',
    background: { kind: 'grass', variant: 0, seed: 5 },
    objects: [
      { name: 'dotted', shape: 'triangle', colour: 'yellow', texture: 'dotted', box: [0.06, 0.34, 0.46, 0.74] },
      { name: 'plain', shape: 'triangle', colour: 'yellow', texture: 'plain', box: [0.54, 0.3, 0.94, 0.7] },
    ],
  },
  {
    id: 'three-on-snow',
    title: 'A heart, a hexagon and a moon on snow',
    background: { kind: 'snow', variant: 0, seed: 3 },
    objects: [
      { name: 'heart', shape: 'heart', colour: 'pink', texture: 'checkered', box: [0.05, 0.12, 0.4, 0.47] },
      { name: 'hexagon', shape: 'hexagon', colour: 'purple', texture: 'plain', box: [0.58, 0.1, 0.95, 0.47] },
      { name: 'moon', shape: 'moon', colour: 'orange', texture: 'gradient', box: [0.3, 0.55, 0.7, 0.95], rotation: -20 },
    ],
  },
];

/** The mask pixel with the largest square of mask pixels around it: where a person clicks to select the object. */
function innermostPoint(mask: Uint8Array, size: number): [number, number] {
  // Chebyshev distance to the nearest outside pixel, by two passes.
  const depth = new Int32Array(size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = y * size + x;
      if (!mask[i]) continue;
      const up = y > 0 ? Math.min(depth[i - size]!, x > 0 ? depth[i - size - 1]! : 0, x < size - 1 ? depth[i - size + 1]! : 0) : 0;
      depth[i] = Math.min(up, x > 0 ? depth[i - 1]! : 0) + 1;
    }
  }
  let best = 0;
  let bestDepth = -1;
  for (let y = size - 1; y >= 0; y--) {
    for (let x = size - 1; x >= 0; x--) {
      const i = y * size + x;
      if (!mask[i]) continue;
      const down = y < size - 1 ? Math.min(depth[i + size]!, x > 0 ? depth[i + size - 1]! : 0, x < size - 1 ? depth[i + size + 1]! : 0) + 1 : 1;
      depth[i] = Math.min(depth[i]!, down, x < size - 1 ? depth[i + 1]! + 1 : 1);
      if (depth[i]! > bestDepth) {
        bestDepth = depth[i]!;
        best = i;
      }
    }
  }
  return [best % size, Math.floor(best / size)];
}

async function main(): Promise<void> {
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  const manifest = [];
  for (const sample of SAMPLES) {
    const scene = sceneFromBoxes(sample.background, sample.objects);
    const rendered = renderScene(scene, SIZE);
    const photo = `${sample.id}.png`;
    await sharp(Buffer.from(rendered.image), { raw: { width: SIZE, height: SIZE, channels: 3 } }).png({ compressionLevel: 9 }).toFile(join(OUT, photo));
    const instances = [];
    for (const [i, object] of sample.objects.entries()) {
      const mask = rendered.masks[i]!;
      const box = rendered.boxes[i] as Box | null;
      if (!box) throw new Error(`${sample.id}: ${object.name} is hidden`);
      const file = `${sample.id}-${object.name}.png`;
      const grey = Buffer.from(Uint8Array.from(mask, (m) => (m ? 255 : 0)));
      await sharp(grey, { raw: { width: SIZE, height: SIZE, channels: 1 } }).toColourspace('b-w').png({ compressionLevel: 9 }).toFile(join(OUT, file));
      instances.push({ name: object.name, mask: file, color: COLOURS[i % COLOURS.length], click: innermostPoint(mask, SIZE), box: box.map((v) => Math.round(v * SIZE)) });
    }
    manifest.push({ id: sample.id, title: sample.title, caption: captionOf(scene), photo, width: SIZE, height: SIZE, instances });
    console.log(`${sample.id}: ${captionOf(scene)}`);
  }
  writeFileSync(join(OUT, 'samples.json'), `${JSON.stringify({ generator: 'scripts/make-samples.ts', samples: manifest }, null, 1)}\n`);
}

await main();
