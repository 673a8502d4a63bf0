import { resolve } from 'node:path';
import { assertConceptTokensLoaded, loadConcepts } from '../concepts/load.ts';
import { initRuntime } from '../runtime/backend.ts';
import { tensorToRgbImages, writePng } from '../io/image.ts';
import { StableDiffusionPipeline } from '../pipelines/stable_diffusion.ts';
import { SAMPLER_NAMES, withGenerationDefaults } from '../pipelines/generation_defaults.ts';
import { batchPngPath, isNonNegativeInteger, isPositiveInteger, parseChoice, parseNumber, parseOptionalNumber, parseOptions, requirePngOut, requireString } from './args.ts';
import { defaultModelDir } from './default_model.ts';
import { ProgressBar } from './progress.ts';

const HELP = `usage: mifo generate --prompt TEXT [options]

  --model DIR        diffusers pipeline folder (default: the embedded model)
  --concepts DIR     a learned concept folder (repeat for several); adds its tokens, e.g. <asset0>
  --prompt TEXT      what to draw, e.g. "a photo of <asset0> on snow"
  --negative TEXT    negative prompt (default "")
  --steps N          sampling steps
  --sampler NAME     ${SAMPLER_NAMES.join(' | ')} (DPM-Solver++(2M) follows the ODE closer per step)
  --guidance G       classifier-free guidance scale (≤ 1 disables CFG)
  --guidance-rescale F
                     diffusers' guidance_rescale in [0, 1] (~0.7 against over-exposure at high guidance)
                     These four default to the model's: its scheduler and generation_config.json (the embedded
                     model has one), else diffusers' 50 DDIM steps, guidance 7.5 and no rescale.
  --seed S           seed for the initial noise (default: random, printed)
  --batch N          images per prompt (default 1)
  --size PX          image side (default: the model's)
  --out FILE.png     output; with --batch > 1, FILE-0.png, FILE-1.png, ...`;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseOptions(
    argv,
    {
      model: { type: 'string' },
      concepts: { type: 'string', multiple: true },
      prompt: { type: 'string' },
      negative: { type: 'string' },
      steps: { type: 'string' },
      guidance: { type: 'string' },
      'guidance-rescale': { type: 'string' },
      sampler: { type: 'string' },
      seed: { type: 'string' },
      batch: { type: 'string' },
      size: { type: 'string' },
      out: { type: 'string' },
    },
    HELP,
  );
  const modelDir = resolve(values.model ?? defaultModelDir());
  const conceptDirs = (values.concepts ?? []).map((dir) => resolve(dir));
  const prompt = requireString(values.prompt, 'prompt');
  const out = requirePngOut(values.out);
  const chosen = {
    steps: parseOptionalNumber(values.steps, 'steps', isPositiveInteger),
    guidance: parseOptionalNumber(values.guidance, 'guidance', (n) => n >= 0),
    guidanceRescale: parseOptionalNumber(values['guidance-rescale'], 'guidance-rescale', (n) => n >= 0 && n <= 1),
    sampler: parseChoice(values.sampler, 'sampler', SAMPLER_NAMES),
  };
  const seed = parseNumber(values.seed, 'seed', Math.floor(Math.random() * 2 ** 31), isNonNegativeInteger);
  const batch = parseNumber(values.batch, 'batch', 1, isPositiveInteger);
  const size = values.size === undefined ? undefined : parseNumber(values.size, 'size', 0, isPositiveInteger);

  await initRuntime();
  const pipe = StableDiffusionPipeline.fromPretrained(modelDir);
  const { steps, guidance, guidanceRescale, sampler } = withGenerationDefaults(chosen, pipe.generationDefaults);
  loadConcepts(pipe, conceptDirs);
  const negativePrompt = values.negative ?? '';
  for (const text of [prompt, negativePrompt]) assertConceptTokensLoaded(pipe.tokenizer, text);
  const bar = new ProgressBar('generate', steps);
  const result = await pipe.generate({
    prompt,
    negativePrompt,
    steps,
    guidance,
    guidanceRescale,
    sampler,
    seed,
    batch,
    height: size,
    width: size,
    onStep: ({ step }) => bar.update(step + 1),
  });
  const images = tensorToRgbImages(result.images);
  const paths = images.map((_, i) => batchPngPath(out, images.length, i));
  for (const [i, image] of images.entries()) await writePng(paths[i]!, image);
  console.log(`wrote ${paths.join(', ')} (seed ${seed}, ${steps} ${sampler} steps, guidance ${guidance}${guidanceRescale ? ` rescaled by ${guidanceRescale}` : ''})`);
}
