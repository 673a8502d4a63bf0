// Does a token learn its object better when it starts from the object's name? Learns each two-object held-out world
// scene twice (tokens from the vocabulary mean, as the MIFO reference; tokens from the objects' shape words), draws
// "a photo of <asset0> and <asset1>" and lets the world's evaluator look for every object in every drawing.
//
//   npx tsx scripts/eval-token-init.ts --model DIR          the embedded model when no --model is given
//     --seeds 1,4,5,10,11    held-out two-object scenes (sampleScene seeds; default 0-4)
//     --preset fast          learning preset        --samples 4   drawings per learned scene (seeds 0..)
//     --steps 25             DDIM steps             --guidance 5  CFG scale
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { isPositiveInteger, parseNumber } from '../trainer/cli/args.ts';
import { defaultModelDir } from '../trainer/cli/default_model.ts';
import { loadConcepts } from '../trainer/concepts/load.ts';
import { tensorToRgbImages } from '../trainer/io/image.ts';
import { runLearning } from '../trainer/learn/learn.ts';
import { PRESET_NAMES, type PresetName } from '../trainer/learn/options.ts';
import { StableDiffusionPipeline } from '../trainer/pipelines/stable_diffusion.ts';
import { initRuntime } from '../trainer/runtime/backend.ts';
import { evaluateScene } from '../trainer/world/evaluator/evaluate.ts';
import { writeMaskPng, writePng } from '../trainer/world/image.ts';
import { renderScene } from '../trainer/world/render.ts';
import { sampleScene } from '../trainer/world/sampler.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    seeds: { type: 'string', default: '0,1,2,3,4' },
    preset: { type: 'string', default: 'fast' },
    samples: { type: 'string' },
    steps: { type: 'string' },
    guidance: { type: 'string' },
  },
});

const seeds = values.seeds.split(',').map((s) => Number(s.trim()));
if (seeds.some((s) => !Number.isInteger(s) || s < 0)) throw new Error(`--seeds takes a comma-separated list of integers ≥ 0, got ${values.seeds}`);
if (!PRESET_NAMES.includes(values.preset as PresetName)) throw new Error(`--preset must be one of ${PRESET_NAMES.join(', ')}`);
const preset = values.preset as PresetName;
const samples = parseNumber(values.samples, 'samples', 4, isPositiveInteger);
const steps = parseNumber(values.steps, 'steps', 25, isPositiveInteger);
const guidance = parseNumber(values.guidance, 'guidance', 5, (g) => g >= 0);
const model = resolve(values.model ?? defaultModelDir());

const runtime = await initRuntime();
console.log(`model ${model}\nengine ${runtime.description}\npreset ${preset}, ${samples} drawings per scene, ${steps} steps, guidance ${guidance}`);
const probe = StableDiffusionPipeline.fromPretrained(model);
const size = probe.defaultSize;
probe.dispose();
const work = mkdtempSync(join(tmpdir(), 'mifo-token-init-'));
const INITS = ['mean', 'name'] as const;
const totals = Object.fromEntries(INITS.map((init) => [init, { objects: 0, colour: 0, shapeAndColour: 0 }]));
try {
  for (const seed of seeds) {
    const scene = sampleScene(seed, { split: 'heldout', minObjects: 2, maxObjects: 2 });
    const rendered = renderScene(scene, size, { masks: true });
    const image = join(work, `${seed}.png`);
    await writePng(image, { width: size, height: size, data: rendered.image });
    const masks = await Promise.all(rendered.masks.map(async (mask, i) => {
      const path = join(work, `${seed}_mask${i}.png`);
      await writeMaskPng(path, mask, size);
      return path;
    }));
    const requests = scene.objects.map((object) => ({ shape: object.shape, colour: object.colour, texture: object.texture }));
    const names = scene.objects.map((object) => object.shape);
    for (const init of INITS) {
      const outDir = join(work, `${seed}-${init}`);
      await runLearning({ model, image, masks, names, outDir, preset, initializeFromNames: init === 'name' });
      const pipeline = StableDiffusionPipeline.fromPretrained(model);
      const [concept] = loadConcepts(pipeline, [outDir]);
      const drawn = await pipeline.generate({ prompt: 'a photo of <asset0> and <asset1>', steps, guidance, seed: 0, batch: samples });
      const score = { objects: 0, colour: 0, shapeAndColour: 0 };
      for (const drawing of tensorToRgbImages(drawn.images)) {
        for (const found of evaluateScene(drawing, requests)) {
          score.objects++;
          score.colour += Number(found.found && found.colour.correct);
          score.shapeAndColour += Number(found.found && found.colour.correct && found.shape.correct);
        }
      }
      pipeline.dispose();
      for (const key of Object.keys(score) as (keyof typeof score)[]) totals[init]![key] += score[key];
      const initializers = concept!.manifest.tokens.map((t) => t.initializer ?? 'mean').join(', ');
      console.log(`seed ${seed} "${names.join(' + ')}" from ${init} (${initializers}): right colour ${score.colour}/${score.objects}, shape and colour ${score.shapeAndColour}/${score.objects}`);
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
console.log('\n| start | objects in the right colour | right shape and colour |\n|---|---|---|');
for (const init of INITS) {
  const t = totals[init]!;
  console.log(`| ${init === 'mean' ? 'vocabulary mean' : 'shape word'} | ${t.colour}/${t.objects} | ${t.shapeAndColour}/${t.objects} |`);
}
