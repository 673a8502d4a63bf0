// The model card of an exported default model (README.md in its folder). The export writes training.json (how far
// each stage trained and for how long); scripts/eval-default-model.ts --card adds the measured acceptance figures and
// writes the card, so every number in it comes from a command.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readStageCheckpointState, type StageName } from './checkpoint.ts';
import { readJson } from '../io/model_index.ts';
import type { CeilingReport, GenerationReport, TimingReport } from './evaluate.ts';
import type { Recipe } from './recipe.ts';
import { describeSelection } from '../models/attention_layers.ts';
import type { ModelAttentionLayers } from '../pipelines/attention_layers_config.ts';
import { SAMPLER_TITLES } from '../pipelines/generation_defaults.ts';
import type { ReconstructionReport } from './vae_stage.ts';

export const TRAINING_RECORD_FILE = 'training.json';

const RECIPE_DIR = fileURLToPath(new URL('./configs/', import.meta.url));

/** Names the project's recipe file of that name, so the card points at the recipe a run from nothing would follow. */
function recipeSource(name: string): string {
  const file = readdirSync(RECIPE_DIR).find((f) => f.endsWith('.json') && readJson<{ name?: unknown }>(join(RECIPE_DIR, f)).name === name);
  return file ? `\`trainer/train/configs/${file}\` ("${name}")` : `"${name}" (no file of trainer/train/configs/; its whole text is in ${TRAINING_RECORD_FILE})`;
}

/** The acceptance bars of the embedded model. */
export const ACCEPTANCE = { shapeAndColourRate: 0.7, meanPsnr: 28, generationSeconds: 5 } as const;

export interface StageProgress {
  stage: StageName;
  step: number;
  steps: number;
  batch: number;
  /** training wall time of the stage (previews and checkpoints included) */
  minutes: number;
}

/** The exported model a work folder's stage 2 continued from (its AdamW moments and data stream begin anew there). */
export interface ContinuedFrom {
  /** the folder, as given */
  model: string;
  /** its training record's export time */
  exportedAt: string;
  /** how far its stages had trained */
  stages: StageProgress[];
}

export interface TrainingRecord {
  recipe: Recipe;
  stages: StageProgress[];
  exportedAt: string;
  continuedFrom?: ContinuedFrom;
}

export interface EvaluationReport {
  model: string;
  engine: string;
  generation?: GenerationReport;
  /** measured with the generation part, on the same cases */
  ceiling?: CeilingReport;
  psnr?: ReconstructionReport;
  timing?: TimingReport;
}

/**
 * How far each stage of a work folder has trained, from its checkpoints; a stage without one, in a folder continued
 * from an exported model, as far as that model's record says.
 */
export function stageProgress(recipe: Recipe, workDir: string, continuedFrom: ContinuedFrom | null = null): StageProgress[] {
  return (['vae', 'decoder', 'diffusion'] as const).map((stage) => {
    const state = readStageCheckpointState(join(workDir, stage, 'checkpoint'));
    const inherited = state ? undefined : continuedFrom?.stages.find((s) => s.stage === stage);
    if (inherited) return inherited;
    return { stage, step: state?.step ?? 0, steps: recipe[stage].steps, batch: recipe[stage].batch, minutes: (state?.elapsedMs ?? 0) / 60000 };
  });
}

export function writeTrainingRecord(modelDir: string, recipe: Recipe, stages: StageProgress[], continuedFrom: ContinuedFrom | null = null): void {
  const record: TrainingRecord = { recipe, stages, exportedAt: new Date().toISOString(), ...(continuedFrom ? { continuedFrom } : {}) };
  writeFileSync(join(modelDir, TRAINING_RECORD_FILE), `${JSON.stringify(record, null, 2)}\n`);
}

export function readTrainingRecord(modelDir: string): TrainingRecord | null {
  const path = join(modelDir, TRAINING_RECORD_FILE);
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as TrainingRecord) : null;
}

const percent = (x: number) => `${(100 * x).toFixed(1)}%`;
const verdict = (ok: boolean) => (ok ? 'met' : '**not met**');

/** The card's row for attention_layers.json, when the recipe names layers. */
function attentionLayersRow(layers: ModelAttentionLayers): string[] {
  const parts = [
    layers.learning && `learning: phase 1 ${describeSelection(layers.learning.phase1)}, phase 2 ${describeSelection(layers.learning.phase2)}`,
    layers.synthesis &&
      `box control: losses ℓ ${layers.synthesis.lossLayers.join(',')}, maps ℓ ${layers.synthesis.mapLayers.join(',')}` +
        (layers.synthesis.boundedLayers ? `, bounded ℓ ${layers.synthesis.boundedLayers.join(',')}` : ''),
  ].filter(Boolean);
  return parts.length > 0 ? [`| attention layers | ${parts.join('; ')} (attention_layers.json: where this model's words ground, \`scripts/probe-attention.ts\`) |`] : [];
}

function continuationLines(continuedFrom: ContinuedFrom | undefined): string[] {
  const step = continuedFrom?.stages.find((s) => s.stage === 'diffusion')?.step;
  if (!continuedFrom || step === undefined) return [];
  return [
    `Stage 2 went on from an exported model at step ${step} (${continuedFrom.model}, exported ${continuedFrom.exportedAt.slice(0, 10)}), whose work`,
    'folder was gone: its weights carried over, its AdamW moments were estimated afresh and its data stream began anew',
    '(`scripts/train-default-model.ts --continue-from`); the steps and hours above count both sittings.',
    '',
  ];
}

/** The card as markdown: what the model is, how it was trained, what it measures, and whether it meets the bars. */
export function renderModelCard(training: TrainingRecord, report: EvaluationReport, evalCommand: string): string {
  const { recipe } = training;
  const unet = recipe.unet;
  const te = recipe.textEncoder;
  const vae = recipe.vae.config;
  const done = training.stages.every((s) => s.step >= s.steps);
  const totalHours = training.stages.reduce((sum, s) => sum + s.minutes, 0) / 60;
  const g = report.generation;
  const p = report.psnr;
  const t = report.timing;
  const bars = [
    g ? `- held-out text-to-image, every object with the right shape and colour ≥ ${percent(ACCEPTANCE.shapeAndColourRate)}: ${percent(g.shapeAndColourRate)}, ${verdict(g.shapeAndColourRate >= ACCEPTANCE.shapeAndColourRate)}` : null,
    p ? `- VAE reconstruction PSNR ≥ ${ACCEPTANCE.meanPsnr} dB: ${p.meanPsnr.toFixed(2)} dB, ${verdict(p.meanPsnr >= ACCEPTANCE.meanPsnr)}` : null,
    t ? `- one ${t.settings.steps}-step generation < ${ACCEPTANCE.generationSeconds} s: ${(t.medianMs / 1000).toFixed(2)} s, ${verdict(t.medianMs < ACCEPTANCE.generationSeconds * 1000)}` : null,
  ].filter((line) => line !== null);
  const lines = [
    `# ${recipe.name}: MIFO Studio's embedded default model`,
    '',
    done
      ? 'Trained to the end of its recipe.'
      : `**Work in progress:** the recipe is not finished (stage 2 at step ${training.stages[2]!.step} of ${training.stages[2]!.steps}); the figures below are those of this checkpoint.`,
    '',
    `A Stable-Diffusion-architecture pipeline in the diffusers layout, trained from nothing on this project's procedural`,
    `world (\`trainer/world\`) with the project's own CPU trainer (\`trainer/train\`): ${recipe.world.imageSize}x${recipe.world.imageSize} RGB scenes of`,
    `${recipe.world.minObjects}-${recipe.world.maxObjects} objects (shapes × colours × textures and a few rare composite objects) on plain, gradient and`,
    'procedural backgrounds, captioned in the MIFO prompt style ("a photo of a red striped circle and a blue star on snow").',
    'It knows only that world: other words fall back to character tokens it never saw in training.',
    '',
    '| component | architecture |',
    '|---|---|',
    `| tokenizer | CLIP BPE over the world's vocabulary, ${te.headroom} spare embedding rows for placeholder tokens, ${te.maxLength} tokens |`,
    `| text_encoder | CLIPTextModel, ${te.num_hidden_layers} layers × ${te.hidden_size} wide, ${te.num_attention_heads} heads |`,
    `| unet | UNet2DConditionModel, channels ${unet.block_out_channels.join('/')}, ${unet.layers_per_block} layers per block, cross-attention (${unet.cross_attention_dim}) at every level, ${unet.sample_size}x${unet.sample_size}x${unet.in_channels} latents |`,
    `| vae | AutoencoderKL, channels ${vae.block_out_channels.join('/')}, ${vae.latent_channels} latent channels |`,
    `| scheduler | ${recipe.scheduler.prediction_type}${recipe.scheduler.rescale_betas_zero_snr ? ', zero terminal SNR' : ''}, ${recipe.scheduler.timestep_spacing} spacing |`,
    `| sampling defaults | ${SAMPLER_TITLES[recipe.generation.sampler]}, ${recipe.generation.steps} steps, guidance ${recipe.generation.guidance}${recipe.generation.guidanceRescale ? ` rescaled by ${recipe.generation.guidanceRescale}` : ''} (scheduler/ and generation_config.json); box-controlled synthesis samples with DDIM |`,
    ...attentionLayersRow(recipe.attentionLayers),
    '',
    'Weights are float16 safetensors.',
    '',
    '## Training',
    '',
    `Recipe ${recipeSource(recipe.name)}; the stages, as trained for this export (${training.exportedAt.slice(0, 10)}):`,
    '',
    '| stage | steps | batch | wall time |',
    '|---|---|---|---|',
    ...training.stages.map((s) => `| ${s.stage} | ${s.step} of ${s.steps} | ${s.batch} | ${(s.minutes / 60).toFixed(2)} h |`),
    '',
    ...continuationLines(training.continuedFrom),
    ...recipe.diffusion.shapeEmphasis.map((e) => {
      const clauses = [
        `draw ${Object.keys(e.weights).length ? `${Object.entries(e.weights).map(([shape, weight]) => `${shape} ${weight}x`).join(', ')} as often as the other shapes` : 'every shape alike'}`,
        ...(e.sameColourGap === undefined ? [] : [`keep objects of one colour ${e.sameColourGap} of the image side apart`]),
        ...(e.multiObjectScale === undefined ? [] : [`draw the objects of scenes with two or more ${e.multiObjectScale}x the world's size`]),
      ];
      const listed = clauses.length === 1 ? clauses[0] : `${clauses.slice(0, -1).join(', ')}, and ${clauses.at(-1)}`;
      const grounding = e.tokenGrounding
        ? ` The loss adds ${e.tokenGrounding.weight} x the token-grounding term (TokenCompose's L_token: each object's words attend inside its mask) on the cross-attention maps of UNet levels ${e.tokenGrounding.levels.join(', ')}, for timesteps below ${e.tokenGrounding.maxTimestep}.`
        : '';
      const timesteps = e.timesteps ? ` Training timesteps ${e.timesteps.from}-${e.timesteps.to - 1} are drawn ${e.timesteps.weight}x as often as the others.` : '';
      return `From stage-2 step ${e.fromStep} on, the training scenes ${listed}.${grounding}${timesteps}`;
    }),
    ...(recipe.diffusion.shapeEmphasis.length ? [''] : []),
    `${totalHours.toFixed(1)} h in all on a 2-core CPU (tfjs wasm + the native OpenBLAS kernels of \`native/\`). The recipe, the data`,
    'stream and every checkpoint are deterministic; the command continues from the last checkpoint when rerun:',
    '',
    '```sh',
    'npx tsx scripts/train-default-model.ts                       # trains (or continues) in data/default-model',
    'npx tsx scripts/train-default-model.ts --export models/default   # the latest checkpoint, EMA weights',
    '```',
    '',
    'docs/default-model.md explains the recipe, docs/world.md the world; data/default-model/loss.jsonl holds the loss curves.',
    '',
    '## Measured',
    '',
    `Engine: ${report.engine}. Command: \`${evalCommand}\`.`,
    '',
    ...(g
      ? [
          `Text-to-image on ${g.cases} held-out captions with 1-3 objects (seeds 0-${g.cases - 1}, ${g.settings.steps} ${SAMPLER_TITLES[g.settings.sampler]} steps, guidance ${g.settings.guidance}${g.settings.guidanceRescale ? ` rescaled by ${g.settings.guidanceRescale}` : ''}), judged by the world's analytic evaluator:`,
          '',
          '| figure | value |',
          '|---|---|',
          `| images with every object found, right shape and colour | ${percent(g.shapeAndColourRate)} |`,
          ...g.byObjectCount.map((b) => `| ... of the ${b.images} images with ${b.objects} object(s) (their objects of the right shape) | ${percent(b.shapeAndColourRate)} (${percent(b.shapeAccuracy)}) |`),
          `| images with every object also of the right texture | ${percent(g.allAttributesRate)} |`,
          `| images with every object of the right shape and colour and nothing else (no extra object, no fragment) | ${percent(g.exactRate)} |`,
          `| objects found / right shape / right colour | ${percent(g.foundRate)} / ${percent(g.shapeAccuracy)} / ${percent(g.colourAccuracy)} |`,
          `| right texture (plain-shape objects) | ${percent(g.textureAccuracy)} |`,
          '',
          'Right shape by requested shape (and what the evaluator read instead):',
          '',
          '| shape | right | read instead |',
          '|---|---|---|',
          ...g.byShape.map((b) => `| ${b.shape} | ${b.shapeCorrect} of ${b.objects} | ${Object.entries(b.misreadAs).map(([seen, n]) => `${seen} ${n}`).join(', ') || '-'} |`),
          '',
        ]
      : []),
    ...(report.ceiling
      ? [
          `The same judge on the ${report.ceiling.cases} cases' own scenes finds every object with the right shape and colour in ${percent(report.ceiling.rendersRate)} of the renders and ${percent(report.ceiling.reconstructionsRate)} of their VAE reconstructions: the ceiling of the figure above.`,
          '',
        ]
      : []),
    ...(p ? [`VAE reconstruction on ${p.images} held-out scenes: mean PSNR ${p.meanPsnr.toFixed(2)} dB (pooled ${p.pooledPsnr.toFixed(2)} dB, worst ${p.worstPsnr.toFixed(2)} dB).`, ''] : []),
    ...(t ? [`One ${t.settings.steps}-step generation with guidance: median ${(t.medianMs / 1000).toFixed(2)} s (${t.runs} runs, ${(t.minMs / 1000).toFixed(2)}-${(t.maxMs / 1000).toFixed(2)} s).`, ''] : []),
    'Acceptance bars:',
    '',
    ...bars,
    '',
  ];
  return lines.join('\n');
}
