// The `learn` job: the MIFO learning stage (trainer/learn) on one photo and its instance masks, all given as
// artifacts. Kept free of trainer imports so the web server can validate submissions without loading the trainer.
import { z } from 'zod';
import { ProjectStore } from '../../storage/projects.ts';
import type { Db } from '../../storage/database.ts';
import type { JobDefinition, JobRecord, JsonValue } from '../contract.ts';

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'an artifact sha256 (64 lowercase hex digits)');

/** The presets of trainer/learn/options.ts (a test keeps the two lists equal). */
export const LEARN_PRESETS = ['paper', 'reference', 'fast', 'bas'] as const;

export const learnInput = z
  .object({
    /** base model folder as the workers see it (the same path on every worker); default: the workers' default model */
    model: z.string().min(1).max(4096).optional(),
    /** the photo */
    image: sha256,
    /** one mask per instance, in instance order (PNG/JPEG/WebP, soft or binary, any size; channel 0 is used) */
    masks: z.array(sha256).min(1).max(16),
    /** instance names for the concept manifest */
    names: z.array(z.string().max(64).nullable()).optional(),
    /** the project instances the masks belong to, in the same order (linked to the learned concepts) */
    instanceIds: z.array(z.string().max(128).nullable()).optional(),
    /** a word per instance that initialises its token (null: the preset's initialisation) */
    initializerWords: z.array(z.string().max(64).nullable()).optional(),
    /** an instance without an initializer word starts from its name when the base model knows it as one word */
    initializeFromNames: z.boolean().default(false),
    preset: z.enum(LEARN_PRESETS).default('paper'),
    /** overrides of the preset's options (trainer/learn/options.ts); checked by the worker */
    options: z.record(z.string(), z.unknown()).optional(),
  })
  .refine((input) => [input.names, input.instanceIds, input.initializerWords].every((list) => (list?.length ?? 0) <= input.masks.length), {
    message: 'names, instanceIds and initializerWords may not be longer than masks',
  });

export type LearnJobInput = z.infer<typeof learnInput>;

export const learnJob: JobDefinition<LearnJobInput> = {
  type: 'learn',
  description: 'learn one token per instance from one photo (MIFO learning stage)',
  resource: 'gpu',
  input: learnInput,
  timeoutMs: 6 * 3600_000,
  maxTimeoutMs: 48 * 3600_000,
  maxAttempts: 3,
  recordResult: recordConcepts,
};

/** What the handler returns (server/jobs/handlers/learn.ts). */
export type LearnJobResult = {
  /** the concept folder, a tree artifact */
  concept: string;
  tokens: string[];
  manifest: JsonValue;
  metrics: JsonValue;
};

/** A learn job of a project adds one concept row per learned token, all pointing at the concept folder. */
function recordConcepts(db: Db, job: JobRecord, result: JsonValue): void {
  if (!job.projectId) return;
  const input = learnInput.parse(job.input);
  const { concept, tokens, manifest } = result as LearnJobResult;
  const baseModel = (manifest as { baseModel?: { id?: string } }).baseModel?.id ?? input.model ?? null;
  const projects = new ProjectStore(db);
  tokens.forEach((token, i) =>
    projects.addConcept({
      projectId: job.projectId!,
      instanceId: input.instanceIds?.[i] ?? null,
      token,
      learnJobId: job.id,
      baseModel,
      preset: input.preset,
      folderSha256: concept,
      metadata: { name: input.names?.[i] ?? null, index: i },
    }),
  );
}
