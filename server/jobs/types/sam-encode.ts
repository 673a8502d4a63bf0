// The `sam-encode` job: the SAM image embedding of a photo, made once per photo on a worker so that each click of
// click-to-segment only runs the light decoder in the web server. No onnxruntime imports here (the web server loads
// this file to validate submissions).
import { z } from 'zod';
import type { Db } from '../../storage/database.ts';
import { ProjectStore } from '../../storage/projects.ts';
import type { JobDefinition, JobRecord, JsonValue } from '../contract.ts';

export const samEncodeInput = z.object({
  /** the photo (artifact sha256) */
  image: z.string().regex(/^[0-9a-f]{64}$/, 'an artifact sha256 (64 lowercase hex digits)'),
});

export type SamEncodeJobInput = z.infer<typeof samEncodeInput>;

export type SamEncodeJobResult = {
  /** the embedding as a safetensors artifact (server/sam/model.ts serializeEmbedding) */
  embedding: string;
  width: number;
  height: number;
};

export const samEncodeJob: JobDefinition<SamEncodeJobInput> = {
  type: 'sam-encode',
  description: 'compute the SAM image embedding of a photo for click-to-segment',
  resource: 'cpu',
  input: samEncodeInput,
  timeoutMs: 5 * 60_000,
  maxTimeoutMs: 30 * 60_000,
  maxAttempts: 2,
  recordResult: recordEmbedding,
};

/** The project keeps the embedding only while its photo is still the one that was encoded. */
function recordEmbedding(db: Db, job: JobRecord, result: JsonValue): void {
  if (!job.projectId) return;
  const projects = new ProjectStore(db);
  const project = projects.get(job.projectId);
  const { image } = samEncodeInput.parse(job.input);
  if (project?.photo?.sha256 !== image) return;
  projects.update(project.id, { samEmbeddingSha256: (result as SamEncodeJobResult).embedding });
}
