// The `pack-import` job's handler: reads the pack from the artifact store, checks it against the base model and
// writes it as a concept folder (trainer/packs/import.ts), stored as a tree artifact for compose jobs.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readPipelineIndex } from '../../../trainer/io/model_index.ts';
import { profileBaseModel, type BaseModelProfile } from '../../../trainer/packs/base.ts';
import { PackError } from '../../../trainer/packs/format.ts';
import { importPack } from '../../../trainer/packs/import.ts';
import { MAX_UPLOADED_PACK_BYTES } from '../../packs/previews.ts';
import { JobInputError, type JobContext } from '../contract.ts';
import { resolveBaseModel } from './base-model.ts';
import type { PackImportJobInput, PackImportJobResult } from '../types/pack-import.ts';

/** Profiles hash every weight file, so the worker keeps them while those files stay the same. */
const profiles = new Map<string, { stamp: string; profile: Promise<BaseModelProfile> }>();

function weightsStamp(modelDir: string): string {
  return Object.keys(readPipelineIndex(modelDir).components)
    .sort()
    .flatMap((component) => {
      const dir = join(modelDir, component);
      return existsSync(dir) ? readdirSync(dir).filter((name) => name.endsWith('.safetensors')).map((name) => join(dir, name)) : [];
    })
    .map((file) => {
      const info = statSync(file);
      return `${file}:${info.size}:${info.mtimeMs}`;
    })
    .join('|');
}

function modelProfile(modelDir: string): Promise<BaseModelProfile> {
  const stamp = weightsStamp(modelDir);
  const cached = profiles.get(modelDir);
  if (cached?.stamp === stamp) return cached.profile;
  const profile = profileBaseModel(modelDir);
  profiles.set(modelDir, { stamp, profile });
  profile.catch(() => profiles.delete(modelDir));
  return profile;
}

export async function runPackImportJob(context: JobContext<PackImportJobInput>): Promise<PackImportJobResult> {
  const { input } = context;
  const size = context.artifacts.sizeOf(input.pack);
  if (size === null) throw new JobInputError(`the pack (artifact ${input.pack}) is not in the artifact store`);
  if (size > MAX_UPLOADED_PACK_BYTES) throw new JobInputError(`the pack is ${size} bytes; the limit is ${MAX_UPLOADED_PACK_BYTES}`);
  const modelDir = resolveBaseModel(input.model, context.workerId);
  context.progress({ step: 0, total: 2, phase: 'checking', message: `against ${modelDir}` });
  let base: BaseModelProfile;
  try {
    base = await modelProfile(modelDir);
  } catch (error) {
    throw new JobInputError(`the base model ${modelDir} cannot be read on worker ${context.workerId}: ${(error as Error).message}`);
  }
  context.signal.throwIfAborted();
  const bytes = await context.artifacts.read(input.pack);
  const outDir = join(context.workDir, 'concept');
  let imported: ReturnType<typeof importPack>;
  try {
    imported = importPack(bytes, { base, outDir, takenTokens: input.takenTokens, allowOtherBase: input.allowOtherBase, maxBytes: MAX_UPLOADED_PACK_BYTES });
  } catch (error) {
    if (error instanceof PackError) throw new JobInputError(error.message);
    throw error;
  }
  for (const warning of imported.warnings) context.log(warning, 'warn');
  const tree = await context.artifacts.putTree(outDir);
  context.progress({ step: 2, total: 2, phase: 'imported', message: imported.tokens.join(' ') });
  return {
    concept: tree.sha256,
    tokens: imported.tokens,
    names: imported.pack.instances.map((instance) => instance.name),
    renamed: imported.renamed,
    warnings: imported.warnings,
    pack: { sha256: imported.pack.sha256, name: imported.pack.header.name, baseModel: imported.pack.baseModel.id },
  };
}
