import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { initRuntime } from '../runtime/backend.ts';
import { tensorToRgbImages, writePng } from '../io/image.ts';
import { StableDiffusionPipeline } from '../pipelines/stable_diffusion.ts';
import { loadConcepts } from '../concepts/load.ts';
import { compose, type ComposeEvent } from '../synth/compose.ts';
import { ABLATIONS, PRESETS, type AblationName, type ControlOverrides, type PresetName } from '../synth/options.ts';
import { batchPngPath, CliError, isNonNegativeInteger, isPositiveInteger, parseChoice, parseNumber, parseOptionalNumber, parseOptions, requirePngOut, requireString } from './args.ts';
import { defaultModelDir } from './default_model.ts';
import { ProgressBar } from './progress.ts';

const HELP = `usage: mifo compose --prompt TEXT --box x0,y0,x1,y1 [--box ...] [options]

Box-controlled synthesis (MIFO): one box per subject; each subject stays in its box.

  --model DIR            diffusers pipeline folder (default: the embedded model)
  --concepts DIR         a learned concept folder (repeat for several); adds its tokens, e.g. <asset0>
  --prompt TEXT          e.g. "a photo of <asset0> and <asset1> on the beach"
  --negative TEXT        negative prompt (default "")
  --box x0,y0,x1,y1      normalised box, origin top left; boxes map to the prompt's placeholder tokens in order,
                         else to its nouns in order
  --subject TEXT         the words one box holds (give one per box, in box order), e.g. --subject "red chair"
  --seed S               seed of the initial noise (default: random, printed)
  --steps N              DDIM steps (default 50)
  --batch N              images (default 1)
  --guidance G           classifier-free guidance scale (default: the model's, see mifo generate; else 7.5)
  --guidance-rescale F   diffusers' guidance_rescale in [0, 1] (default: the model's; else 0)
  --size PX              image side (default: the model's)
  --out FILE.png         output image(s) (FILE-0.png, ... for --batch > 1) and FILE.json with the masks, the
                         per-step losses and every parameter needed to reproduce the run

Control (defaults: the MIFO reference):
  --preset NAME          mifo | ba (Bounded Attention: in-box only, S·G) | off (no box control) (default mifo)
  --ablation NAME        ${Object.keys(ABLATIONS).join(' | ')} (repeatable)
  --guidance-steps N     latent guidance on the first N steps (15)
  --iterations N         gradient steps per guided step, at most (5)
  --step-size A:B        step size from A at step 0 towards B at step N (8:2)
  --loss-stop X          stop a step's iterations once the normalised loss is below X (0.2)
  --ca-weight X          λ_CA, cross-attention loss weight (1.5)
  --sa-weight X          λ_SA, self-attention loss weight (0.5)
  --alpha S              out-of-box weight schedule: decay | constant | zero (decay)
  --alpha-indexing I     reference (the reference's call counter) | step (τ = step + 1) (reference)
  --alpha-max X          α at the start of the schedule (0.4)
  --box-count-factor     Bounded Attention's S·G in the in-box reward
  --no-cross-mask        do not bound cross-attention
  --no-self-mask         do not bound self-attention
  --no-eos-mask          leave the EOS token visible to the background
  --refine-start N       first mask-refinement step (15)
  --refine-every N       refine again every N steps (5)
  --clusters N           k-means clusters per subject (3)
  --kmeans-inits N       k-means restarts at the first refinement (100)
  --loss-layers L,L,...  explicit loss layers by ℓ index (default: the model's attention_layers.json, else the mid
                         block + the first decoder block one level finer)
  --map-layers L,L,...   explicit mask-map layers by ℓ index (default: the model's, else that decoder block)
  --bounded-layers L,L,...
                         the layers whose attention is bounded, by ℓ (default: the model's, else every layer)
  --preview-every K      also write the x̂0 preview of every K-th step as FILE-stepNNN[-i].png`;

function parseBox(text: string): number[] {
  const values = text.split(',').map((v) => Number(v.trim()));
  if (values.length !== 4 || values.some((v) => !Number.isFinite(v))) throw new CliError(`--box takes x0,y0,x1,y1 (four numbers), got '${text}'`);
  return values;
}

function parseLayerList(text: string | undefined, name: string): number[] | undefined {
  if (text === undefined) return undefined;
  const values = text.split(',').map((v) => Number(v.trim()));
  if (values.length === 0 || values.some((v) => !isNonNegativeInteger(v))) throw new CliError(`--${name} takes layer indices like 12,13,14, got '${text}'`);
  return values;
}

/** Indented JSON with every array of plain numbers on one line (masks and loss rows stay compact). */
function readableJson(value: unknown): string {
  return JSON.stringify(value, null, 1).replace(/\[\s*(-?[\d.e+-]+(?:,\s*-?[\d.e+-]+)*)\s*\]/g, (_, items: string) => `[${items.replace(/\s+/g, '')}]`);
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseOptions(
    argv,
    {
      model: { type: 'string' },
      concepts: { type: 'string', multiple: true },
      prompt: { type: 'string' },
      negative: { type: 'string' },
      box: { type: 'string', multiple: true },
      subject: { type: 'string', multiple: true },
      seed: { type: 'string' },
      steps: { type: 'string' },
      batch: { type: 'string' },
      guidance: { type: 'string' },
      'guidance-rescale': { type: 'string' },
      size: { type: 'string' },
      out: { type: 'string' },
      preset: { type: 'string' },
      ablation: { type: 'string', multiple: true },
      'guidance-steps': { type: 'string' },
      iterations: { type: 'string' },
      'step-size': { type: 'string' },
      'loss-stop': { type: 'string' },
      'ca-weight': { type: 'string' },
      'sa-weight': { type: 'string' },
      alpha: { type: 'string' },
      'alpha-indexing': { type: 'string' },
      'alpha-max': { type: 'string' },
      'box-count-factor': { type: 'boolean' },
      'no-cross-mask': { type: 'boolean' },
      'no-self-mask': { type: 'boolean' },
      'no-eos-mask': { type: 'boolean' },
      'refine-start': { type: 'string' },
      'refine-every': { type: 'string' },
      clusters: { type: 'string' },
      'kmeans-inits': { type: 'string' },
      'loss-layers': { type: 'string' },
      'map-layers': { type: 'string' },
      'bounded-layers': { type: 'string' },
      'preview-every': { type: 'string' },
    },
    HELP,
  );
  const modelDir = resolve(values.model ?? defaultModelDir());
  const conceptDirs = (values.concepts ?? []).map((dir) => resolve(dir));
  const prompt = requireString(values.prompt, 'prompt');
  const out = requirePngOut(values.out);
  const boxes = (values.box ?? []).map(parseBox);
  if (boxes.length === 0) throw new CliError('give at least one --box x0,y0,x1,y1');
  const subjects = values.subject ?? [];
  if (subjects.length > 0 && subjects.length !== boxes.length) throw new CliError(`${boxes.length} --box but ${subjects.length} --subject: give one subject per box, or none`);
  const steps = parseNumber(values.steps, 'steps', 50, isPositiveInteger);
  const guidanceScale = parseOptionalNumber(values.guidance, 'guidance', (n) => n >= 0);
  const guidanceRescale = parseOptionalNumber(values['guidance-rescale'], 'guidance-rescale', (n) => n >= 0 && n <= 1);
  const seed = parseNumber(values.seed, 'seed', Math.floor(Math.random() * 2 ** 31), isNonNegativeInteger);
  const batch = parseNumber(values.batch, 'batch', 1, isPositiveInteger);
  const size = values.size === undefined ? undefined : parseNumber(values.size, 'size', 0, isPositiveInteger);
  const previewEvery = parseNumber(values['preview-every'], 'preview-every', 0, isNonNegativeInteger);
  const preset = parseChoice(values.preset, 'preset', Object.keys(PRESETS) as PresetName[]) ?? 'mifo';
  const ablations = (values.ablation ?? []).map((name) => parseChoice(name, 'ablation', Object.keys(ABLATIONS) as AblationName[])!);
  const optionalNumber = (name: string, check?: (n: number) => boolean) => parseOptionalNumber(values[name as keyof typeof values] as string | undefined, name, check);
  let stepSize: [number, number] | undefined;
  if (values['step-size'] !== undefined) {
    const parts = values['step-size'].split(':').map(Number);
    if (parts.length !== 2 || parts.some((v) => !Number.isFinite(v))) throw new CliError(`--step-size takes START:END, got '${values['step-size']}'`);
    stepSize = [parts[0]!, parts[1]!];
  }
  const alphaMax = optionalNumber('alpha-max', (n) => n >= 0);
  const control: ControlOverrides = {
    guidanceSteps: optionalNumber('guidance-steps', isNonNegativeInteger),
    iterationsPerStep: optionalNumber('iterations', isPositiveInteger),
    stepSizeStart: stepSize?.[0],
    stepSizeEnd: stepSize?.[1],
    lossStop: optionalNumber('loss-stop'),
    crossWeight: optionalNumber('ca-weight', (n) => n >= 0),
    selfWeight: optionalNumber('sa-weight', (n) => n >= 0),
    alphaSchedule: parseChoice(values.alpha, 'alpha', ['decay', 'constant', 'zero']),
    alphaIndexing: parseChoice(values['alpha-indexing'], 'alpha-indexing', ['reference', 'step']),
    alpha: alphaMax === undefined ? undefined : { max: alphaMax },
    boxCountFactor: values['box-count-factor'] ? true : undefined,
    crossMask: values['no-cross-mask'] ? false : undefined,
    selfMask: values['no-self-mask'] ? false : undefined,
    maskEos: values['no-eos-mask'] ? false : undefined,
    refineStart: optionalNumber('refine-start', isPositiveInteger),
    refineEvery: optionalNumber('refine-every', isPositiveInteger),
    clustersPerSubject: optionalNumber('clusters', isPositiveInteger),
    kmeansInits: optionalNumber('kmeans-inits', isPositiveInteger),
    lossLayers: parseLayerList(values['loss-layers'], 'loss-layers'),
    mapLayers: parseLayerList(values['map-layers'], 'map-layers'),
    boundedLayers: parseLayerList(values['bounded-layers'], 'bounded-layers'),
  };

  await initRuntime();
  const pipe = StableDiffusionPipeline.fromPretrained(modelDir);
  const concepts = loadConcepts(pipe, conceptDirs);
  const bar = new ProgressBar('compose', steps);
  const previews: Promise<void>[] = [];
  const onEvent = (event: ComposeEvent) => {
    if (event.type === 'step') bar.update(event.step + 1, event.loss === null ? '' : `loss ${event.loss.toFixed(3)}`);
    if (event.type === 'preview') {
      const suffix = `-step${String(event.step).padStart(3, '0')}`;
      event.images.forEach((image, i) => previews.push(writePng(batchPngPath(out, event.images.length, i, suffix), image)));
    }
  };
  const result = await compose(pipe, {
    prompt,
    negativePrompt: values.negative ?? '',
    boxes,
    subjects,
    seed,
    steps,
    batch,
    guidanceScale,
    guidanceRescale,
    height: size,
    width: size,
    preset,
    ablations,
    control,
    previewEvery,
    onEvent,
  });
  await Promise.all(previews);
  const images = tensorToRgbImages(result.images);
  const paths = images.map((_, i) => batchPngPath(out, images.length, i));
  for (const [i, image] of images.entries()) await writePng(paths[i]!, image);
  const jsonPath = out.replace(/\.png$/i, '.json');
  const record = { ...result.record, model: modelDir, concepts: concepts.map((c) => ({ dir: c.dir, tokens: c.tokens })), images: paths };
  await writeFile(jsonPath, `${readableJson(record)}\n`);
  const subjectsText = result.record.subjects.map((s, i) => `box ${i + 1} → ${s.text}`).join(', ');
  console.log(`wrote ${paths.join(', ')} and ${jsonPath} (seed ${seed}, ${steps} steps, ${preset}; ${subjectsText})`);
}
