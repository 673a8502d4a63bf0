// The acceptance measurements of the embedded default model (the figures of models/default/README.md):
//
//   npx tsx scripts/eval-default-model.ts                      all three on models/default (or $MIFO_MODEL)
//     --model DIR          another diffusers folder
//     --cases N            held-out captions (1-3 objects, seeds 0..N-1), default 200
//     --first-seed S       start the cases at seed S instead of 0: checks on progress (10000 on, as the training
//                          previews) that leave the acceptance cases unseen until the final measurement
//     --steps N            sampling steps                 --guidance G   CFG scale
//     --guidance-rescale F diffusers' guidance_rescale
//     --sampler NAME       ddim or dpm-solver++
//                          these four default to the model's, as in `mifo generate` (its scheduler and
//                          generation_config.json)
//     --psnr-scenes N      held-out scenes for the VAE PSNR (default 200)
//     --timing-runs N      timed generations after a warm-up (default 5)
//     --only LIST          a subset of: generation,psnr,timing
//     --out DIR            also write every generated image, a grid and report.json there
//     --card               write the model card (README.md in the model folder) from its training.json and these
//                          figures; needs all three parts
//
//   npx tsx scripts/eval-default-model.ts --judge DIR [--out DIR2]
//                          judges again the images a run kept with --out DIR (same cases and settings, from its
//                          report.json), e.g. after the evaluator changed; no model is loaded
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { writePng, type RgbImage } from '../trainer/io/image.ts';
import { isNonNegativeInteger, isPositiveInteger, parseChoice, parseChoiceList, parseNumber } from '../trainer/cli/args.ts';
import { defaultModelDir } from '../trainer/cli/default_model.ts';
import { StableDiffusionPipeline } from '../trainer/pipelines/stable_diffusion.ts';
import { readGenerationDefaults, SAMPLER_NAMES } from '../trainer/pipelines/generation_defaults.ts';
import { initRuntime } from '../trainer/runtime/backend.ts';
import { caseImageFile, evaluateGeneration, evaluateReconstruction, generatedImages, measureCeiling, savedImages, timeGeneration, type GenerationReport } from '../trainer/train/evaluate.ts';
import { readTrainingRecord, renderModelCard, TRAINING_RECORD_FILE, type EvaluationReport } from '../trainer/train/model_card.ts';
import { writePreviewGrid } from '../trainer/train/preview.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    cases: { type: 'string' },
    steps: { type: 'string' },
    guidance: { type: 'string' },
    'guidance-rescale': { type: 'string' },
    sampler: { type: 'string' },
    'psnr-scenes': { type: 'string' },
    'timing-runs': { type: 'string' },
    only: { type: 'string' },
    out: { type: 'string' },
    card: { type: 'boolean', default: false },
    'first-seed': { type: 'string' },
    judge: { type: 'string' },
  },
});

const percent = (x: number) => `${(100 * x).toFixed(1)}%`;

function printGeneration(g: GenerationReport, firstSeed: number): void {
  const { settings } = g;
  console.log(
    `text-to-image on ${g.cases} held-out captions (seeds ${firstSeed}-${firstSeed + g.cases - 1}, ${settings.steps} ${settings.sampler} steps, guidance ${settings.guidance}, rescale ${settings.guidanceRescale}):\n` +
      `  every object found with the right shape and colour: ${percent(g.shapeAndColourRate)} of images` +
      ` (${g.byObjectCount.map((b) => `${b.objects} object(s): ${percent(b.shapeAndColourRate)} of ${b.images}`).join(', ')})\n` +
      `  objects of the right shape, by objects in the image: ${g.byObjectCount.map((b) => `${b.objects}: ${percent(b.shapeAccuracy)} of ${b.objects * b.images}`).join(', ')}\n` +
      `  ... and the right texture: ${percent(g.allAttributesRate)}\n` +
      `  right shape and colour and nothing else drawn: ${percent(g.exactRate)}\n` +
      `  per object (${g.objects}): found ${percent(g.foundRate)}, shape ${percent(g.shapeAccuracy)}, colour ${percent(g.colourAccuracy)}, texture ${percent(g.textureAccuracy)} (plain shapes)\n` +
      `  right shape by requested shape: ${g.byShape.map((b) => `${b.shape} ${b.shapeCorrect}/${b.objects}${Object.keys(b.misreadAs).length ? ` (${Object.entries(b.misreadAs).map(([seen, n]) => `${n} ${seen}`).join(', ')})` : ''}`).join('; ')}`,
  );
}

if (values.judge !== undefined) {
  const keptDir = resolve(values.judge);
  const given = (['model', 'cases', 'steps', 'guidance', 'guidance-rescale', 'sampler', 'psnr-scenes', 'timing-runs', 'only', 'first-seed'] as const).filter((name) => values[name] !== undefined);
  if (given.length > 0 || values.card) throw new Error(`--judge takes the cases and settings from ${join(keptDir, 'report.json')}: leave out ${[...given.map((name) => `--${name}`), ...(values.card ? ['--card'] : [])].join(', ')}`);
  const kept = (JSON.parse(readFileSync(join(keptDir, 'report.json'), 'utf8')) as EvaluationReport).generation;
  if (!kept || kept.results.length === 0) throw new Error(`${join(keptDir, 'report.json')} holds no generation results`);
  const keptFirstSeed = kept.results[0]!.seed;
  const report: EvaluationReport = { model: `images of ${keptDir}`, engine: 'none (images read back)' };
  // runs from before guidance rescale and the sampler choice drew plainly with DDIM
  const keptSettings = { ...kept.settings, guidanceRescale: kept.settings.guidanceRescale ?? 0, sampler: kept.settings.sampler ?? 'ddim' };
  report.generation = await evaluateGeneration(savedImages(keptDir), kept.cases, keptSettings, { firstSeed: keptFirstSeed });
  printGeneration(report.generation, keptFirstSeed);
  if (values.out) {
    mkdirSync(resolve(values.out), { recursive: true });
    writeFileSync(join(resolve(values.out), 'report.json'), `${JSON.stringify(report, null, 1)}\n`);
  }
  process.exit(0);
}

const EVALUATION_PARTS = ['generation', 'psnr', 'timing'] as const;
const parts = new Set(parseChoiceList(values.only, 'only', EVALUATION_PARTS) ?? EVALUATION_PARTS);
if (values.card && parts.size < 3) throw new Error('--card needs all three parts (leave out --only)');
const firstSeed = parseNumber(values['first-seed'], 'first-seed', 0, isNonNegativeInteger);
if (values.card && firstSeed !== 0) throw new Error('--card reports the acceptance cases, seeds 0..N-1: leave out --first-seed');
const cases = parseNumber(values.cases, 'cases', 200, isPositiveInteger);
const psnrScenes = parseNumber(values['psnr-scenes'], 'psnr-scenes', 200, isPositiveInteger);
const timingRuns = parseNumber(values['timing-runs'], 'timing-runs', 5, isPositiveInteger);
const modelDir = resolve(values.model ?? defaultModelDir());
const modelDefaults = readGenerationDefaults(modelDir);
const settings = {
  steps: parseNumber(values.steps, 'steps', modelDefaults.steps, isPositiveInteger),
  guidance: parseNumber(values.guidance, 'guidance', modelDefaults.guidance, (g) => g >= 0),
  guidanceRescale: parseNumber(values['guidance-rescale'], 'guidance-rescale', modelDefaults.guidanceRescale, (f) => f >= 0 && f <= 1),
  sampler: parseChoice(values.sampler, 'sampler', SAMPLER_NAMES) ?? modelDefaults.sampler,
};
const outDir = values.out ? resolve(values.out) : null;
if (outDir) mkdirSync(outDir, { recursive: true });

const runtime = await initRuntime();
console.log(`model ${modelDir}\nengine ${runtime.description}`);
const pipeline = StableDiffusionPipeline.fromPretrained(modelDir);
const training = values.card ? readTrainingRecord(modelDir) : null;
if (values.card && !training) throw new Error(`${modelDir} has no ${TRAINING_RECORD_FILE}: export it with scripts/train-default-model.ts --export first`);
const report: EvaluationReport = {
  model: modelDir,
  engine: runtime.description,
};
if (parts.has('psnr')) {
  report.psnr = evaluateReconstruction(pipeline, psnrScenes);
  const p = report.psnr;
  console.log(`VAE reconstruction on ${p.images} held-out scenes: mean PSNR ${p.meanPsnr.toFixed(2)} dB, pooled ${p.pooledPsnr.toFixed(2)} dB, worst ${p.worstPsnr.toFixed(2)} dB`);
}

if (parts.has('timing')) {
  report.timing = await timeGeneration(pipeline, timingRuns, settings);
  const t = report.timing;
  console.log(`one ${settings.steps}-step ${settings.sampler} generation (guidance ${settings.guidance}): median ${(t.medianMs / 1000).toFixed(2)} s (min ${(t.minMs / 1000).toFixed(2)}, max ${(t.maxMs / 1000).toFixed(2)}, ${t.runs} runs)`);
}

if (parts.has('generation')) {
  const images: RgbImage[] = [];
  const started = Date.now();
  report.generation = await evaluateGeneration(generatedImages(pipeline, settings), cases, settings, {
    firstSeed,
    onImage: async (index, image, result) => {
      images.push(image);
      if (outDir) await writePng(caseImageFile(outDir, result.seed), image);
      if ((index + 1) % 20 === 0) console.log(`  ${index + 1} images, ${((Date.now() - started) / 1000).toFixed(0)} s`);
    },
  });
  const g = report.generation;
  printGeneration(g, firstSeed);
  report.ceiling = await measureCeiling(pipeline, cases, firstSeed);
  console.log(`  ceiling: the same cases' renders ${percent(report.ceiling.rendersRate)}, their VAE reconstructions ${percent(report.ceiling.reconstructionsRate)}`);
  if (outDir) {
    await writePreviewGrid(outDir, 0, images, 20, g.results.map((r) => `${r.shapeAndColour ? 'ok ' : 'BAD'} seed ${r.seed}: ${r.caption}`));
  }
}

if (outDir) writeFileSync(join(outDir, 'report.json'), `${JSON.stringify(report, null, 1)}\n`);
if (training) {
  const model = values.model ? ` --model ${values.model}` : '';
  const command = `npx tsx scripts/eval-default-model.ts${model} --cases ${cases} --steps ${settings.steps} --guidance ${settings.guidance}${settings.guidanceRescale ? ` --guidance-rescale ${settings.guidanceRescale}` : ''}${settings.sampler === 'ddim' ? '' : ` --sampler ${settings.sampler}`} --psnr-scenes ${psnrScenes} --timing-runs ${timingRuns} --card`;
  writeFileSync(join(modelDir, 'README.md'), renderModelCard(training, report, command));
  console.log(`wrote the model card ${join(modelDir, 'README.md')}`);
}
pipeline.dispose();
