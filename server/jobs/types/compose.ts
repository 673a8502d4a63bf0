// The `compose` job: box-controlled synthesis (trainer/synth) with learned concepts, optionally followed by the same
// seed without box control for a side-by-side comparison. Kept free of trainer imports so the web server can
// validate submissions without loading the trainer.
import { z } from 'zod';
import type { Db } from '../../storage/database.ts';
import { ProjectStore } from '../../storage/projects.ts';
import type { JobDefinition, JobRecord, JsonValue } from '../contract.ts';

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'an artifact sha256 (64 lowercase hex digits)');
const placeholder = z.string().regex(/^<[^<>\s]{1,64}>$/, 'a placeholder token such as <asset0>');

/** The synthesis presets and ablations of trainer/synth/options.ts (a test keeps the lists equal). */
export const COMPOSE_PRESETS = ['mifo', 'ba', 'off'] as const;
export const COMPOSE_ABLATIONS = ['ca-only', 'sa-only', 'in-box-only', 'out-of-box-only', 'no-decay', 'no-refine'] as const;
const MAX_COMPOSE_BOXES = 8;

const box = z
  .tuple([z.number(), z.number(), z.number(), z.number()])
  .refine((b) => b.every((v) => v >= 0 && v <= 1), 'box coordinates are normalised to [0, 1]')
  .refine(([x0, y0, x1, y1]) => x1 > x0 && y1 > y0, 'a box needs x0 < x1 and y0 < y1');

export const composeInput = z
  .object({
    /** base model folder as the workers see it; default: the workers' default model */
    model: z.string().min(1).max(4096).optional(),
    /** concept folders (tree artifacts of learn jobs), each with the names its tokens get in the prompt */
    concepts: z
      .array(z.object({ folder: sha256, rename: z.record(placeholder, placeholder).optional(), loraScale: z.number().min(0).max(2).optional() }))
      .max(16)
      .default([]),
    prompt: z.string().trim().min(1, 'write a prompt').max(1000),
    negativePrompt: z.string().max(1000).default(''),
    /** one normalised box [x0, y0, x1, y1] (origin top left) per subject */
    boxes: z.array(box).min(1, 'draw at least one box').max(MAX_COMPOSE_BOXES),
    /** the words of each box; default: the prompt's placeholder tokens in order, else its nouns */
    subjects: z.array(z.string().min(1).max(200)).optional(),
    seed: z.number().int().min(0).max(2 ** 31 - 1),
    batch: z.number().int().min(1).max(8).default(1),
    steps: z.number().int().min(1).max(200).default(50),
    /** default: the model's (generation_config.json), else 7.5 */
    guidanceScale: z.number().min(0).max(30).optional(),
    /** diffusers' guidance_rescale (0: plain classifier-free guidance); default: the model's, else 0 */
    guidanceRescale: z.number().min(0).max(1).optional(),
    preset: z.enum(COMPOSE_PRESETS).default('mifo'),
    ablations: z.array(z.enum(COMPOSE_ABLATIONS)).max(COMPOSE_ABLATIONS.length).default([]),
    /** overrides of the preset's knobs (trainer/synth/options.ts ControlOverrides); checked by the worker */
    control: z.record(z.string(), z.unknown()).default({}),
    /** decode an x̂0 preview every k steps for the live view (0: never) */
    previewEvery: z.number().int().min(0).max(200).default(0),
    /** also run the same seed with no box control, for a side-by-side comparison */
    compareWithoutControl: z.boolean().default(false),
  })
  .refine((input) => !input.subjects || input.subjects.length === input.boxes.length, { message: 'give one subject per box, or none' });

export type ComposeJobInput = z.infer<typeof composeInput>;

export type ComposeVariantResult = {
  /** 'box control' (the chosen preset) or 'no box control' (the comparison) */
  variant: string;
  preset: (typeof COMPOSE_PRESETS)[number];
  images: string[];
  /** the compose record (every parameter, subjects, masks, losses) as a JSON artifact */
  record: string;
  /** the subjects' words as resolved in the prompt */
  subjects: string[];
  seconds: number;
};

export type ComposeJobResult = {
  model: string;
  height: number;
  width: number;
  /** as used: the request's, else the model's defaults */
  guidanceScale: number;
  guidanceRescale: number;
  /** the resolved control knobs of the first variant */
  control: JsonValue;
  variants: ComposeVariantResult[];
};

export const composeJob: JobDefinition<ComposeJobInput> = {
  type: 'compose',
  description: 'compose learned concepts in a new scene with one box per subject (MIFO synthesis)',
  resource: 'gpu',
  input: composeInput,
  timeoutMs: 30 * 60_000,
  maxTimeoutMs: 6 * 3600_000,
  maxAttempts: 2,
  recordResult: recordGenerations,
};

/** One generation row per image, each with every parameter needed to reproduce it. */
function recordGenerations(db: Db, job: JobRecord, result: JsonValue): void {
  if (!job.projectId) return;
  const input = composeInput.parse(job.input);
  const { model, height, width, guidanceScale, guidanceRescale, variants, control } = result as ComposeJobResult;
  const projects = new ProjectStore(db);
  for (const variant of variants) {
    variant.images.forEach((image, index) =>
      projects.addGeneration({
        projectId: job.projectId!,
        composeJobId: job.id,
        prompt: input.prompt,
        imageSha256: image,
        reportSha256: variant.record,
        params: {
          variant: variant.variant,
          model,
          concepts: input.concepts,
          prompt: input.prompt,
          negativePrompt: input.negativePrompt,
          boxes: input.boxes,
          subjects: variant.subjects,
          seed: input.seed,
          batch: input.batch,
          index,
          steps: input.steps,
          guidanceScale,
          guidanceRescale,
          height,
          width,
          preset: variant.preset,
          ablations: variant.preset === 'off' ? [] : input.ablations,
          control: variant.preset === 'off' ? { boxControl: false } : control,
          seconds: variant.seconds,
        },
      }),
    );
  }
}
