// Learning variants compared on held-out two-object world scenes: each scene is learned once per variant, then
// "a photo of <asset0> and <asset1>" is drawn several times and the world's evaluator looks for both objects in every
// drawing. Also reported: each token's share of cross-attention inside its own mask and inside the other object's,
// before and after learning (the probe of the learning manifests, metrics.attentionMass), and for how many tokens and
// scenes learning grounded every token (its own-mask share grew and ends above the other object's).
//
//   npx tsx scripts/eval-learning.ts --compare init          tokens from the vocabulary mean vs from the shape word
//   npx tsx scripts/eval-learning.ts --compare attention     phase-1 attention: reward→penalty vs reward vs none
//     --model DIR            the embedded model when not given
//     --variants ID,ID       only these (init: mean, word; attention: reward-penalty, reward, none)
//     --seeds 1,4,10-19      held-out two-object scenes (sampleScene seeds; default 0-4)
//     --preset fast          learning preset        --samples 4   drawings per learned scene (seeds 0..)
//     --steps N              sampling steps         --guidance G  CFG scale (both default to the model's, as in
//                            `mifo generate`; its sampler and guidance rescale are used)
//     --set KEY=VALUE        a learning option for every variant, as mifo learn's --set (repeatable)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { isPositiveInteger, parseChoice, parseChoiceList, parseIntegerList, parseNumber } from '../trainer/cli/args.ts';
import { defaultModelDir } from '../trainer/cli/default_model.ts';
import { loadConcepts } from '../trainer/concepts/load.ts';
import { groundedTokens, type AttentionMass } from '../trainer/learn/events.ts';
import { tensorToRgbImages } from '../trainer/io/image.ts';
import { runLearning, type LearnRequest } from '../trainer/learn/learn.ts';
import { combineOverrides, parseOptionAssignment, PRESET_NAMES, type DeepPartial, type LearnOptions } from '../trainer/learn/options.ts';
import { readGenerationDefaults } from '../trainer/pipelines/generation_defaults.ts';
import { StableDiffusionPipeline } from '../trainer/pipelines/stable_diffusion.ts';
import { initRuntime } from '../trainer/runtime/backend.ts';
import { evaluateScene } from '../trainer/world/evaluator/evaluate.ts';
import { writeMaskPng, writePng } from '../trainer/world/image.ts';
import { renderScene } from '../trainer/world/render.ts';
import { sampleScene } from '../trainer/world/sampler.ts';

interface Variant {
  id: string;
  label: string;
  request: Pick<LearnRequest, 'initializeFromNames'> & { options?: DeepPartial<LearnOptions> };
}

const COMPARISONS: Record<string, Variant[]> = {
  init: [
    { id: 'mean', label: 'vocabulary mean', request: { initializeFromNames: false } },
    { id: 'word', label: 'shape word', request: { initializeFromNames: true } },
  ],
  attention: [
    { id: 'reward-penalty', label: 'reward→penalty', request: { options: { phase1: { attention: { mode: 'reward-penalty' } } } } },
    { id: 'reward', label: 'reward only', request: { options: { phase1: { attention: { mode: 'reward' } } } } },
    { id: 'none', label: 'no attention loss', request: { options: { phase1: { attention: { mode: 'none' } } } } },
  ],
};

const { values } = parseArgs({
  options: {
    compare: { type: 'string' },
    variants: { type: 'string' },
    model: { type: 'string' },
    seeds: { type: 'string', default: '0-4' },
    preset: { type: 'string', default: 'fast' },
    samples: { type: 'string' },
    steps: { type: 'string' },
    guidance: { type: 'string' },
    set: { type: 'string', multiple: true },
  },
});

const comparison = COMPARISONS[values.compare ?? ''];
if (!comparison) throw new Error(`--compare must be one of ${Object.keys(COMPARISONS).join(', ')}`);
const chosenIds = parseChoiceList(values.variants, 'variants', comparison.map((v) => v.id));
const variants = chosenIds ? comparison.filter((v) => chosenIds.includes(v.id)) : comparison;
const seeds = parseIntegerList(values.seeds, 'seeds');
const preset = parseChoice(values.preset, 'preset', PRESET_NAMES)!;
const samples = parseNumber(values.samples, 'samples', 4, isPositiveInteger);
const shared = (values.set ?? []).reduce<DeepPartial<LearnOptions>>((options, assignment) => combineOverrides(options, parseOptionAssignment(assignment)), {});
const model = resolve(values.model ?? defaultModelDir());
const drawing = readGenerationDefaults(model);
drawing.steps = parseNumber(values.steps, 'steps', drawing.steps, isPositiveInteger);
drawing.guidance = parseNumber(values.guidance, 'guidance', drawing.guidance, (g) => g >= 0);

/** Mean share of the tokens' attention inside their own mask and inside the other instance's. */
function meanMass(mass: AttentionMass[]): { own: number; other: number } {
  const own = mass.reduce((sum, m) => sum + m.own, 0) / mass.length;
  const other = mass.reduce((sum, m, token) => sum + m.perMask.filter((_, i) => i !== token).reduce((a, b) => a + b, 0), 0) / mass.length;
  return { own, other };
}

const runtime = await initRuntime();
console.log(`model ${model}\nengine ${runtime.description}\npreset ${preset}${Object.keys(shared).length ? ` with ${JSON.stringify(shared)}` : ''}, ${samples} drawings per scene, ${drawing.steps} ${drawing.sampler} steps, guidance ${drawing.guidance}, rescale ${drawing.guidanceRescale}`);
const probe = StableDiffusionPipeline.fromPretrained(model);
const size = probe.defaultSize;
probe.dispose();
const work = mkdtempSync(join(tmpdir(), 'mifo-eval-learning-'));
const totals = variants.map(() => ({ objects: 0, colour: 0, shapeAndColour: 0, ownBefore: 0, otherBefore: 0, ownAfter: 0, otherAfter: 0, groundedTokens: 0, groundedScenes: 0 }));
const percent = (x: number) => `${(100 * x).toFixed(1)}%`;
try {
  for (const seed of seeds) {
    const scene = sampleScene(seed, { split: 'heldout', minObjects: 2, maxObjects: 2 });
    const rendered = renderScene(scene, size, { masks: true });
    const image = join(work, `${seed}.png`);
    await writePng(image, { width: size, height: size, data: rendered.image });
    const masks = await Promise.all(
      rendered.masks.map(async (mask, i) => {
        const path = join(work, `${seed}_mask${i}.png`);
        await writeMaskPng(path, mask, size);
        return path;
      }),
    );
    const requests = scene.objects.map((object) => ({ shape: object.shape, colour: object.colour, texture: object.texture }));
    const names = scene.objects.map((object) => object.shape);
    for (const [v, variant] of variants.entries()) {
      const outDir = join(work, `${seed}-${v}`);
      const { metrics } = await runLearning({
        model,
        image,
        masks,
        names,
        outDir,
        preset,
        initializeFromNames: variant.request.initializeFromNames ?? true,
        options: combineOverrides(shared, variant.request.options ?? {}),
      });
      const pipeline = StableDiffusionPipeline.fromPretrained(model);
      loadConcepts(pipeline, [outDir]);
      const drawn = await pipeline.generate({ ...drawing, prompt: 'a photo of <asset0> and <asset1>', seed: 0, batch: samples });
      let colour = 0;
      let shapeAndColour = 0;
      for (const drawing of tensorToRgbImages(drawn.images)) {
        for (const found of evaluateScene(drawing, requests)) {
          colour += Number(found.found && found.colour.correct);
          shapeAndColour += Number(found.found && found.colour.correct && found.shape.correct);
        }
      }
      pipeline.dispose();
      const before = meanMass(metrics.attentionMass.before);
      const after = meanMass(metrics.attentionMass.after);
      const grounded = groundedTokens(metrics.attentionMass.before, metrics.attentionMass.after);
      const total = totals[v]!;
      total.groundedTokens += grounded.filter(Boolean).length;
      total.groundedScenes += Number(grounded.every(Boolean));
      total.objects += requests.length * samples;
      total.colour += colour;
      total.shapeAndColour += shapeAndColour;
      total.ownBefore += before.own / seeds.length;
      total.otherBefore += before.other / seeds.length;
      total.ownAfter += after.own / seeds.length;
      total.otherAfter += after.other / seeds.length;
      console.log(
        `seed ${seed} "${names.join(' + ')}", ${variant.label}: right colour ${colour}/${requests.length * samples}, shape and colour ${shapeAndColour}/${requests.length * samples}; ` +
          `attention own/other ${percent(before.own)}/${percent(before.other)} before, ${percent(after.own)}/${percent(after.other)} after; grounded ${grounded.map((g) => (g ? 'yes' : 'no')).join('/')}`,
      );
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
console.log('\n| variant | objects in the right colour | right shape and colour | attention own / other mask, before | after | tokens grounded | scenes with every token grounded |\n|---|---|---|---|---|---|---|');
for (const [v, variant] of variants.entries()) {
  const t = totals[v]!;
  console.log(`| ${variant.label} | ${t.colour}/${t.objects} | ${t.shapeAndColour}/${t.objects} | ${percent(t.ownBefore)} / ${percent(t.otherBefore)} | ${percent(t.ownAfter)} / ${percent(t.otherAfter)} | ${t.groundedTokens}/${2 * seeds.length} | ${t.groundedScenes}/${seeds.length} |`);
}
