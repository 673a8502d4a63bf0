// The `pack-import` job: a pack from the artifact store, checked against the base model the workers use (format,
// metadata, shapes, same model) and written as a concept folder (tree artifact) whose tokens avoid the project's;
// a project's job adds one concept row per token. Kept free of trainer imports (see pack-export.ts).
import { z } from 'zod';
import type { Db } from '../../storage/database.ts';
import { ProjectStore } from '../../storage/projects.ts';
import type { JobDefinition, JobRecord, JsonValue } from '../contract.ts';

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'an artifact sha256 (64 lowercase hex digits)');

export const packImportInput = z.object({
  /** the pack file */
  pack: sha256,
  /** its library entry, recorded with the concepts */
  packId: z.string().min(1).max(128).nullable().default(null),
  /** base model folder as the workers see it; default: the workers' default model */
  model: z.string().min(1).max(4096).optional(),
  /** tokens the project already uses: the pack's are renamed around them */
  takenTokens: z.array(z.string().max(200)).max(10_000).default([]),
  /** import onto another base model than the pack's (shapes are still checked) */
  allowOtherBase: z.boolean().default(false),
});

export type PackImportJobInput = z.infer<typeof packImportInput>;

export type PackImportJobResult = {
  /** the concept folder, a tree artifact for compose */
  concept: string;
  /** the folder's tokens, in pack order (renamed where they clashed) */
  tokens: string[];
  names: (string | null)[];
  /** pack token -> folder token, for the renamed ones */
  renamed: Record<string, string>;
  warnings: string[];
  pack: { sha256: string; name: string; baseModel: string };
};

export const packImportJob: JobDefinition<PackImportJobInput> = {
  type: 'pack-import',
  description: 'check a concept pack against the base model and turn it into a concept folder of a project',
  resource: 'cpu',
  input: packImportInput,
  timeoutMs: 10 * 60_000,
  maxTimeoutMs: 60 * 60_000,
  maxAttempts: 3,
  recordResult: recordImportedConcepts,
};

/** One concept row per token; tokens another job gave the project meanwhile fail the job instead of clashing. */
function recordImportedConcepts(db: Db, job: JobRecord, result: JsonValue): void {
  if (!job.projectId) return;
  const input = packImportInput.parse(job.input);
  const imported = result as PackImportJobResult;
  const projects = new ProjectStore(db);
  const taken = new Set(projects.detail(job.projectId).concepts.map((concept) => concept.token));
  const clash = imported.tokens.filter((token) => taken.has(token));
  if (clash.length) throw new Error(`${clash.join(', ')} became taken in the project while the pack was imported; import it again`);
  imported.tokens.forEach((token, index) =>
    projects.addConcept({
      projectId: job.projectId!,
      instanceId: null,
      token,
      learnJobId: job.id,
      baseModel: imported.pack.baseModel,
      preset: null,
      folderSha256: imported.concept,
      metadata: { name: imported.names[index] ?? null, index, source: 'pack', pack: { id: input.packId, sha256: imported.pack.sha256, name: imported.pack.name } },
    }),
  );
}
