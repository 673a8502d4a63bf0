// The `learn` job: the MIFO learning stage (trainer/learn) on one photo and its instance masks, all given as
// artifacts. Kept free of trainer imports so the web server can validate submissions without loading the trainer.
import { z } from 'zod';
import type { JobDefinition } from '../contract.ts';

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
    /** a word per instance that initialises its token (null: the preset's initialisation) */
    initializerWords: z.array(z.string().max(64).nullable()).optional(),
    preset: z.enum(LEARN_PRESETS).default('paper'),
    /** overrides of the preset's options (trainer/learn/options.ts); checked by the worker */
    options: z.record(z.string(), z.unknown()).optional(),
  })
  .refine((input) => (input.names?.length ?? 0) <= input.masks.length && (input.initializerWords?.length ?? 0) <= input.masks.length, {
    message: 'names and initializerWords may not be longer than masks',
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
};
