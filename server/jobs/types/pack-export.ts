// The `pack-export` job: a learned concept folder (tree artifact) as a concept pack (trainer/packs, docs/packs.md),
// stored as an artifact and entered in the pack library with its previews. Kept free of trainer imports so the web
// server can validate submissions without loading the trainer.
import { z } from 'zod';
import type { Db } from '../../storage/database.ts';
import { PACK_VISIBILITIES, PackLibrary, type PackListing } from '../../packs/library.ts';
import type { JobDefinition, JobRecord, JsonValue } from '../contract.ts';

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'an artifact sha256 (64 lowercase hex digits)');
const packToken = z.string().regex(/^<[a-z0-9][a-z0-9_-]{0,46}>$/, 'a pack token: <name> with lowercase letters, digits, _ and -');

export const packExportInput = z.object({
  /** the concept folder (tree artifact of a learn job) */
  folder: sha256,
  name: z.string().trim().min(1, 'a pack needs a name').max(100),
  /** the author's note */
  note: z.string().max(4000).default(''),
  /** new names for the folder's tokens in the pack, e.g. { '<asset0>': '<mug>' } */
  rename: z.record(z.string().regex(/^<[^<>\s]{1,64}>$/), packToken).default({}),
  /** the instances' names in the pack, by folder token (default: the names they were learned with) */
  names: z.record(z.string().regex(/^<[^<>\s]{1,64}>$/), z.string().max(200)).default({}),
  visibility: z.enum(PACK_VISIBILITIES).default('private'),
});

export type PackExportJobInput = z.infer<typeof packExportInput>;

/** What the handler returns (server/jobs/handlers/pack-export.ts); the library entry gets packId and shareToken. */
export type PackExportJobResult = {
  packId: string;
  shareToken: string;
  /** the pack file */
  sha256: string;
  size: number;
  name: string;
  previewSha256: string;
  listing: PackListing;
};

export const packExportJob: JobDefinition<PackExportJobInput> = {
  type: 'pack-export',
  description: "pack a project's learned concepts into one .safetensors file for the pack library",
  resource: 'cpu',
  input: packExportInput,
  timeoutMs: 10 * 60_000,
  maxTimeoutMs: 60 * 60_000,
  maxAttempts: 3,
  recordResult: recordExportedPack,
};

function recordExportedPack(db: Db, job: JobRecord, result: JsonValue): void {
  const input = packExportInput.parse(job.input);
  const exported = result as PackExportJobResult;
  new PackLibrary(db).add({
    id: exported.packId,
    sha256: exported.sha256,
    size: exported.size,
    name: exported.name,
    listing: exported.listing,
    previewSha256: exported.previewSha256,
    source: 'exported',
    visibility: input.visibility,
    shareToken: exported.shareToken,
    projectId: job.projectId,
  });
}
