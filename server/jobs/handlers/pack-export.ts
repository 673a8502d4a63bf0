// The `pack-export` job's handler: materialises the concept folder, builds the pack (trainer/packs/export.ts), stores
// it and its previews as artifacts. The library entry is written by the job type's recordResult.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { buildPack } from '../../../trainer/packs/export.ts';
import { PackError } from '../../../trainer/packs/format.ts';
import { newShareToken } from '../../packs/library.ts';
import { packListing } from '../../packs/previews.ts';
import { JobInputError, type JobContext } from '../contract.ts';
import type { PackExportJobInput, PackExportJobResult } from '../types/pack-export.ts';

export async function runPackExportJob(context: JobContext<PackExportJobInput>): Promise<PackExportJobResult> {
  const { folder, name, note, rename, names } = context.input;
  if (!context.artifacts.has(folder)) throw new JobInputError(`the concept folder (artifact ${folder}) is not in the artifact store`);
  context.progress({ step: 0, total: 2, phase: 'packing' });
  const dir = join(context.workDir, 'concept');
  await context.artifacts.materializeTree(folder, dir);
  context.signal.throwIfAborted();
  let built: Awaited<ReturnType<typeof buildPack>>;
  try {
    built = await buildPack(dir, { name, note, rename, names });
  } catch (error) {
    if (error instanceof PackError) throw new JobInputError(error.message);
    throw error;
  }
  const stored = await context.artifacts.put(built.bytes, 'application/octet-stream');
  const { previewSha256, listing } = await packListing(context.artifacts, built.pack);
  context.progress({ step: 2, total: 2, phase: 'packed', message: `${stored.size} bytes, sha256 ${stored.sha256}` });
  return { packId: randomUUID(), shareToken: newShareToken(), sha256: stored.sha256, size: stored.size, name, previewSha256, listing };
}
