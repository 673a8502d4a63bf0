import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { renderBackground } from '../../../trainer/world/backgrounds.ts';
import { COLOUR_GROW_DISTANCE, rgbToLab, shadeLineDistance } from '../../../trainer/world/colour.ts';
import {
  BACKGROUND_NAMES,
  BACKGROUNDS,
  COLOUR_NAMES,
  RARE_NAMES,
  SHAPE_NAMES,
  TEXTURE_NAMES,
} from '../../../trainer/world/definitions.ts';
import { evaluationSet } from '../../../trainer/world/evaluation_set.ts';
import { readRgb, writeMaskPng, writePng } from '../../../trainer/world/image.ts';
import { Rng } from '../../../trainer/world/random.ts';
import { renderScene } from '../../../trainer/world/render.ts';
import {
  DEFAULT_RARE_PROBABILITY,
  DEFAULT_SIMILAR_PAIR_PROBABILITY,
  HELDOUT_MODULUS,
  hasSimilarPair,
  isHeldOut,
  SAME_COLOUR_GAP,
  sampleScene,
  sceneFromBoxes,
} from '../../../trainer/world/sampler.ts';
import { captionOf, objectBox, parseCaption, parseScene, SceneError, type Box, type Scene } from '../../../trainer/world/scene.ts';
import { worldVocabulary } from '../../../trainer/world/vocabulary.ts';

function iou(a: Box, b: Box): number {
  const ix = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const iy = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = ix * iy;
  return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
}

test('the PRNG is deterministic, seed-sensitive and roughly uniform', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const c = new Rng(43);
  const seqA = Array.from({ length: 8 }, () => a.nextUint32());
  assert.deepEqual(seqA, Array.from({ length: 8 }, () => b.nextUint32()));
  assert.notDeepEqual(seqA, Array.from({ length: 8 }, () => c.nextUint32()));
  const rng = new Rng(7);
  const bins = new Array(10).fill(0);
  for (let i = 0; i < 20000; i++) bins[Math.floor(rng.next() * 10)]++;
  for (const count of bins) assert.ok(count > 1800 && count < 2200, `bin count ${count}`);
  assert.throws(() => new Rng(1.5), /integer/);
});

test('scenes and renders are a pure function of the seed', () => {
  for (const seed of [0, 1, 99, 123456]) {
    const scene = sampleScene(seed);
    assert.deepEqual(sampleScene(seed), scene);
    const first = renderScene(scene, 64);
    const second = renderScene(scene, 64);
    assert.deepEqual(first.image, second.image);
    assert.deepEqual(first.masks, second.masks);
  }
  assert.notDeepEqual(sampleScene(1), sampleScene(2));
});

test('a scene survives JSON and renders the same from it; bad scenes get clear errors', () => {
  const scene = sampleScene(5);
  const parsed = parseScene(JSON.parse(JSON.stringify(scene)));
  assert.deepEqual(parsed, scene);
  assert.deepEqual(renderScene(parsed, 64).image, renderScene(scene, 64).image);
  const object = { shape: 'circle', colour: 'red', texture: 'plain', center: [0.5, 0.5], size: 0.3, rotation: 0 };
  const background = { kind: 'snow', variant: 0, seed: 1 };
  assert.throws(() => parseScene({ background, objects: [{ ...object, shape: 'blob' }] }), SceneError);
  assert.throws(() => parseScene({ background, objects: [{ ...object, colour: 'teal' }] }), /colour/);
  assert.throws(() => parseScene({ background, objects: [{ ...object, shape: 'zorb' }] }), /fixed look/);
  assert.throws(() => parseScene({ background: { ...background, variant: 9 }, objects: [object] }), /variants/);
  assert.throws(() => parseScene({ background: { ...background, kind: 'lava' }, objects: [object] }), /background kind/);
  assert.throws(() => parseScene({ background, objects: [{ ...object, size: -1 }] }), /size/);
  assert.throws(() => renderScene(scene, 7), /render size/);
});

test('captions follow the grammar (colour, texture, shape; background phrase) and parse back', () => {
  const base = { center: [0.3, 0.3] as [number, number], size: 0.3, rotation: 0 };
  const scene: Scene = {
    background: { kind: 'snow', variant: 0, seed: 0 },
    objects: [
      { ...base, shape: 'circle', colour: 'red', texture: 'striped' },
      { ...base, shape: 'star', colour: 'blue', texture: 'plain' },
    ],
  };
  assert.equal(captionOf(scene), 'a photo of a red striped circle and a blue star on snow');
  const orange: Scene = {
    background: { kind: 'sky', variant: 0, seed: 0 },
    objects: [
      { ...base, shape: 'heart', colour: 'orange', texture: 'dotted' },
      { ...base, shape: 'zorb', colour: null, texture: null },
    ],
  };
  assert.equal(captionOf(orange), 'a photo of an orange dotted heart and a zorb in front of a horizon');
  for (let seed = 0; seed < 300; seed++) {
    const sampled = sampleScene(seed);
    const parsed = parseCaption(captionOf(sampled));
    assert.equal(parsed.background, sampled.background.kind);
    assert.deepEqual(
      parsed.objects,
      sampled.objects.map(({ shape, colour, texture }) => ({ shape, colour, texture })),
    );
  }
  assert.throws(() => parseCaption('a photo of a red striped circle on the moon'), /background/);
  assert.throws(() => parseCaption('a photo of a striped red circle on snow'), /cannot read/);
});

test('the vocabulary holds exactly the words captions use', () => {
  const vocabulary = new Set(worldVocabulary());
  const used = new Set<string>();
  for (let seed = 0; seed < 3000; seed++) for (const word of captionOf(sampleScene(seed)).split(' ')) used.add(word);
  for (const word of used) assert.ok(vocabulary.has(word), `caption word '${word}' missing from the vocabulary`);
  for (const word of vocabulary) assert.ok(used.has(word), `vocabulary word '${word}' never used in 3000 captions`);
  for (const name of [...SHAPE_NAMES, ...COLOUR_NAMES, ...RARE_NAMES]) assert.ok(vocabulary.has(name), `${name} in the vocabulary`);
});

test('masks are the exact visible pixels: disjoint, occlusion-aware, consistent with the image', () => {
  let overlapsSeen = 0;
  for (let seed = 0; seed < 150; seed++) {
    const scene = sampleScene(seed);
    const size = seed % 2 === 0 ? 64 : 128;
    const rendered = renderScene(scene, size);
    const backgroundOnly = renderScene({ ...scene, objects: [] }, size).image;
    let softPixels = 0;
    for (let p = 0; p < size * size; p++) {
      let alphaSum = 0;
      let maskSum = 0;
      rendered.alphas.forEach((alpha, i) => {
        alphaSum += alpha[p]!;
        maskSum += rendered.masks[i]![p]!;
        if (rendered.masks[i]![p]) assert.ok(alpha[p]! >= 0.5, 'a mask pixel is less than half visible');
        else assert.ok(alpha[p]! <= 0.5, 'a pixel more than half visible is missing from the mask');
        if (alpha[p]! > 0 && alpha[p]! < 1) softPixels++;
      });
      assert.ok(alphaSum <= 1 + 1e-5, `visible alphas sum to ${alphaSum}`);
      assert.ok(maskSum <= 1, 'two masks claim one pixel');
      if (alphaSum === 0) {
        for (let c = 0; c < 3; c++) assert.equal(rendered.image[p * 3 + c], backgroundOnly[p * 3 + c], 'a pixel outside every object changed');
      }
    }
    assert.ok(softPixels > 0, 'edges are anti-aliased');
    // an object drawn later hides the earlier one: its visible mask is smaller than its own silhouette
    scene.objects.forEach((object, i) => {
      const alone = renderScene({ ...scene, objects: [object] }, size).masks[0]!;
      const visible = rendered.masks[i]!.reduce((s, v) => s + v, 0);
      const full = alone.reduce((s, v) => s + v, 0);
      assert.ok(visible <= full, `object ${i} of seed ${seed} shows more than its silhouette`);
      if (visible < full) overlapsSeen++;
      assert.ok(visible >= 0.6 * full, `object ${i} of seed ${seed} is mostly hidden (${visible}/${full})`);
      const box = rendered.boxes[i]!;
      assert.ok(iou(box, objectBox(object)) > 0.8, `rendered box ${box} vs geometric box ${objectBox(object)}`);
    });
  }
  assert.ok(overlapsSeen > 5, `partial occlusion happens (${overlapsSeen} objects)`);
});

test('similar pairs (same shape and colour, other texture) are common', () => {
  let multi = 0;
  let similar = 0;
  for (let seed = 0; seed < 4000; seed++) {
    const scene = sampleScene(seed);
    if (scene.objects.length < 2) continue;
    multi++;
    if (hasSimilarPair(scene)) similar++;
  }
  const rate = similar / multi;
  // drawn on purpose with the documented probability, plus the occasional accidental pair
  assert.ok(rate >= DEFAULT_SIMILAR_PAIR_PROBABILITY - 0.03 && rate <= DEFAULT_SIMILAR_PAIR_PROBABILITY + 0.08, `similar-pair rate ${rate}`);
});

test('every shape, colour, texture, rare object and background is drawn', () => {
  const seen = new Set<string>();
  let objects = 0;
  let rares = 0;
  for (let seed = 0; seed < 2000; seed++) {
    const scene = sampleScene(seed);
    seen.add(`bg:${scene.background.kind}`);
    for (const object of scene.objects) {
      objects++;
      if (object.colour === null) rares++;
      seen.add(`shape:${object.shape}`);
      if (object.colour) seen.add(`colour:${object.colour}`);
      if (object.texture) seen.add(`texture:${object.texture}`);
    }
  }
  const expected = [
    ...BACKGROUND_NAMES.map((n) => `bg:${n}`),
    ...[...SHAPE_NAMES, ...RARE_NAMES].map((n) => `shape:${n}`),
    ...COLOUR_NAMES.map((n) => `colour:${n}`),
    ...TEXTURE_NAMES.map((n) => `texture:${n}`),
  ];
  for (const name of expected) assert.ok(seen.has(name), `${name} never drawn`);
  // slots of deliberate similar pairs and backgrounds that exclude a rare object's colours lower the rate a little
  const rareRate = rares / objects;
  assert.ok(rareRate > 0.6 * DEFAULT_RARE_PROBABILITY && rareRate <= DEFAULT_RARE_PROBABILITY, `rare objects are ${rareRate} of all objects`);
});

test('shape weights draw the named shapes that much more often, and change nothing when absent', () => {
  const shares = (options: { shapeWeights?: Record<string, number> }) => {
    const counts = new Map<string, number>();
    let plain = 0;
    for (let seed = 0; seed < 3000; seed++) {
      for (const object of sampleScene(seed, options).objects) {
        if (object.colour === null) continue;
        plain++;
        counts.set(object.shape, (counts.get(object.shape) ?? 0) + 1);
      }
    }
    return Object.fromEntries(SHAPE_NAMES.map((shape) => [shape, (counts.get(shape) ?? 0) / plain]));
  };
  const weighted = shares({ shapeWeights: { hexagon: 3, star: 2, moon: 0 } });
  // 3 + 2 + 0 + 7 others: hexagon 3/12, star 2/12, moon never, each other shape 1/12 (similar pairs repeat a draw)
  assert.ok(Math.abs(weighted.hexagon! - 3 / 12) < 0.025, `hexagon share ${weighted.hexagon}`);
  assert.ok(Math.abs(weighted.star! - 2 / 12) < 0.02, `star share ${weighted.star}`);
  assert.equal(weighted.moon, 0);
  assert.ok(Math.abs(weighted.circle! - 1 / 12) < 0.015, `circle share ${weighted.circle}`);
  for (let seed = 0; seed < 50; seed++) assert.deepEqual(sampleScene(seed, { shapeWeights: {} }), sampleScene(seed));
  assert.throws(() => sampleScene(0, { shapeWeights: { hexagonn: 2 } as never }), /unknown shape 'hexagonn'/);
  assert.throws(() => sampleScene(0, { shapeWeights: { star: -1 } }), /shapeWeights\.star must be a finite number ≥ 0/);
  assert.throws(() => sampleScene(0, { shapeWeights: Object.fromEntries(SHAPE_NAMES.map((shape) => [shape, 0])) }), /every shape has weight 0/);
});

test('a same-colour gap keeps objects of one colour that far apart, and the default gap is the world’s', () => {
  const smallestGap = (gap?: number) => {
    let smallest = Infinity;
    for (let seed = 0; seed < 1500; seed++) {
      const { objects } = sampleScene(seed, { minObjects: 2, similarPairProbability: 1, sameColourGap: gap });
      for (const [i, a] of objects.entries()) {
        for (const b of objects.slice(i + 1)) {
          if (a.colour === null || a.colour !== b.colour) continue;
          smallest = Math.min(smallest, Math.hypot(a.center[0] - b.center[0], a.center[1] - b.center[1]) - (a.size + b.size) / 2);
        }
      }
    }
    return smallest;
  };
  const world = smallestGap();
  const wide = smallestGap(0.12);
  assert.ok(world >= SAME_COLOUR_GAP - 1e-9 && world < SAME_COLOUR_GAP + 0.01, `the world's closest same-colour pair is ${world} apart`);
  assert.ok(wide >= 0.12 - 1e-9 && wide < 0.13, `with a 0.12 gap the closest is ${wide} apart`);
  for (let seed = 0; seed < 50; seed++) assert.deepEqual(sampleScene(seed, { sameColourGap: SAME_COLOUR_GAP }), sampleScene(seed));
  assert.throws(() => sampleScene(0, { sameColourGap: 0.3 }), /sameColourGap must be a number from 0 to 0.2, got 0.3/);
  assert.throws(() => sampleScene(0, { sameColourGap: Number.NaN }), /sameColourGap must be a number/);
});

test('multiObjectScale draws the objects of crowded scenes larger and leaves single objects and the default as they were', () => {
  const meanDiameter = (count: number, multiObjectScale?: number) => {
    let sum = 0;
    for (let seed = 0; seed < 400; seed++) {
      const { objects } = sampleScene(seed, { minObjects: count, maxObjects: count, multiObjectScale });
      sum += objects.reduce((total, object) => total + object.size, 0) / count;
    }
    return sum / 400;
  };
  for (const count of [2, 3]) {
    const world = meanDiameter(count);
    const scaled = meanDiameter(count, 1.2);
    // layouts that do not fit shrink and are drawn again, so the mean grows by a little less than the factor
    assert.ok(scaled > world * 1.1 && scaled <= world * 1.2, `${count} objects: mean diameter ${world.toFixed(3)} -> ${scaled.toFixed(3)} with 1.2`);
  }
  for (let seed = 0; seed < 50; seed++) {
    assert.deepEqual(sampleScene(seed, { minObjects: 1, maxObjects: 1, multiObjectScale: 1.3 }), sampleScene(seed, { minObjects: 1, maxObjects: 1 }));
    assert.deepEqual(sampleScene(seed, { multiObjectScale: 1 }), sampleScene(seed));
  }
  for (let seed = 0; seed < 200; seed++) {
    for (const object of sampleScene(seed, { minObjects: 2, multiObjectScale: 1.4 }).objects) {
      const [x0, y0, x1, y1] = objectBox(object);
      assert.ok(x0 >= 0 && y0 >= 0 && x1 <= 1 && y1 <= 1, `seed ${seed}: an object leaves the frame: ${JSON.stringify([x0, y0, x1, y1])}`);
    }
  }
  assert.throws(() => sampleScene(0, { multiObjectScale: 0.9 }), /multiObjectScale must be a number from 1 to 1.4, got 0.9/);
  assert.throws(() => sampleScene(0, { multiObjectScale: Number.POSITIVE_INFINITY }), /multiObjectScale must be a number/);
});

test('background colour exclusions match the renders', () => {
  // a colour is "near" a background pixel within the distance its regions grow to
  const near = COLOUR_GROW_DISTANCE;
  for (const kind of BACKGROUND_NAMES) {
    const nearShare = new Array(COLOUR_NAMES.length).fill(0);
    let pixels = 0;
    for (let variant = 0; variant < BACKGROUNDS[kind].variants; variant++) {
      for (let seed = 0; seed < 3; seed++) {
        const picture = renderBackground({ kind, variant, seed }, 64);
        for (let p = 0; p < 64 * 64; p += 3) {
          const lab = rgbToLab(Math.round(picture[p * 3]!), Math.round(picture[p * 3 + 1]!), Math.round(picture[p * 3 + 2]!));
          COLOUR_NAMES.forEach((_, c) => {
            if (shadeLineDistance(c, lab).distance < near) nearShare[c]++;
          });
          pixels++;
        }
      }
    }
    COLOUR_NAMES.forEach((colour, c) => {
      const share = nearShare[c] / pixels;
      if (BACKGROUNDS[kind].excludedColours.includes(colour)) assert.ok(share > 0.005, `${colour} is excluded on ${kind} but nowhere near it`);
      else assert.ok(share < 0.005, `${colour} is allowed on ${kind} but ${(share * 100).toFixed(1)}% of it is near`);
    });
  }
  for (let seed = 0; seed < 500; seed++) {
    const scene = sampleScene(seed);
    for (const object of scene.objects) {
      if (object.colour) assert.ok(!BACKGROUNDS[scene.background.kind].excludedColours.includes(object.colour), `seed ${seed} puts ${object.colour} on ${scene.background.kind}`);
    }
  }
});

test('the held-out split is disjoint from training and about one caption in ten', () => {
  let heldOut = 0;
  for (let seed = 0; seed < 2000; seed++) {
    const scene = sampleScene(seed);
    if (isHeldOut(scene.objects, scene.background.kind)) heldOut++;
    const train = sampleScene(seed, { split: 'train' });
    assert.equal(isHeldOut(train.objects, train.background.kind), false);
  }
  const share = heldOut / 2000;
  assert.ok(Math.abs(share - 1 / HELDOUT_MODULUS) < 0.03, `held-out share ${share}`);
  const cases = evaluationSet(50);
  for (const item of cases) {
    assert.ok(isHeldOut(item.scene.objects, item.scene.background.kind), `case ${item.seed} is held out`);
    assert.ok(item.scene.objects.length >= 1 && item.scene.objects.length <= 3, `case ${item.seed} has 1-3 objects`);
    assert.equal(item.caption, captionOf(item.scene));
    assert.equal(item.requests.length, item.scene.objects.length);
  }
  assert.deepEqual(evaluationSet(5), cases.slice(0, 5));
});

test('scenes built from requested boxes fill those boxes', () => {
  const boxes: Box[] = [
    [0.05, 0.1, 0.45, 0.5],
    [0.55, 0.5, 0.95, 0.8],
    [0.3, 0.6, 0.5, 0.95],
  ];
  const scene = sceneFromBoxes({ kind: 'grass', variant: 0, seed: 3 }, [
    { shape: 'star', colour: 'red', texture: 'striped', box: boxes[0]! },
    { shape: 'diamond', colour: 'blue', texture: 'plain', box: boxes[1]!, rotation: 20 },
    { shape: 'zorb', colour: null, texture: null, box: boxes[2]! },
  ]);
  const rendered = renderScene(scene, 128);
  scene.objects.forEach((_, i) => {
    const box = rendered.boxes[i]!;
    const want = boxes[i]!;
    // centred in the requested box and filling it along its tighter side
    assert.ok(Math.abs((box[0] + box[2]) / 2 - (want[0] + want[2]) / 2) < 0.02, `object ${i} centred in x`);
    assert.ok(Math.abs((box[1] + box[3]) / 2 - (want[1] + want[3]) / 2) < 0.02, `object ${i} centred in y`);
    assert.ok(box[0] >= want[0] - 0.01 && box[2] <= want[2] + 0.01 && box[1] >= want[1] - 0.01 && box[3] <= want[3] + 0.01, `object ${i} inside its box`);
    assert.ok(Math.max(box[2] - box[0] - (want[2] - want[0]), box[3] - box[1] - (want[3] - want[1])) > -0.02, `object ${i} fills its box`);
  });
  assert.throws(() => sceneFromBoxes({ kind: 'grass', variant: 0, seed: 3 }, [{ shape: 'star', colour: 'red', texture: 'plain', box: [0.5, 0.5, 0.4, 0.6] }]), /empty/);
});

test('renders and masks round-trip through PNG files', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mifo-world-png-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const rendered = renderScene(sampleScene(8), 64);
  await writePng(join(dir, 'scene.png'), { width: 64, height: 64, data: rendered.image });
  assert.deepEqual((await readRgb(join(dir, 'scene.png'))).data, rendered.image);
  await writeMaskPng(join(dir, 'mask.png'), rendered.masks[0]!, 64);
  const mask = await readRgb(join(dir, 'mask.png'));
  assert.deepEqual(Array.from({ length: 64 * 64 }, (_, p) => (mask.data[p * 3] === 255 ? 1 : 0)), Array.from(rendered.masks[0]!));
});
