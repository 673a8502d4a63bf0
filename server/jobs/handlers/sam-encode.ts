// The `sam-encode` job's handler: encodes the photo with SAM's image encoder and stores the embedding.
import { SamEncoder, serializeEmbedding } from '../../sam/model.ts';
import { JobInputError, type JobContext } from '../contract.ts';
import type { SamEncodeJobInput, SamEncodeJobResult } from '../types/sam-encode.ts';

/** The encoder session is kept for the worker's later jobs (loading it takes longer than one encoding). */
let encoder: Promise<SamEncoder> | null = null;

export async function runSamEncodeJob(context: JobContext<SamEncodeJobInput>): Promise<SamEncodeJobResult> {
  const { image } = context.input;
  if (!context.artifacts.has(image)) throw new JobInputError(`the photo (artifact ${image}) is not in the artifact store`);
  const bytes = await context.artifacts.read(image);
  encoder ??= SamEncoder.load().catch((error: unknown) => {
    encoder = null;
    throw error;
  });
  const loaded = await encoder;
  context.signal.throwIfAborted();
  context.progress({ step: 0, total: 1, phase: 'encoding' });
  let embedding;
  try {
    embedding = await loaded.encode(bytes);
  } catch (error) {
    if (/unsupported image format|Input buffer contains unsupported/i.test((error as Error).message)) throw new JobInputError(`the photo cannot be read: ${(error as Error).message}`);
    throw error;
  }
  const stored = await context.artifacts.put(serializeEmbedding(embedding), 'application/octet-stream');
  context.progress({ step: 1, total: 1, phase: 'encoded' });
  return { embedding: stored.sha256, width: embedding.width, height: embedding.height };
}
