// A pack's library listing: its metadata plus its thumbnails stored as PNG artifacts (so the browser shows them by
// address, cached forever). Used by the pack-export job and by uploads in the web server: it reads the pack with the
// trainer's pack reader, which needs no model and no tensor engine.
import { PackError, type Pack } from '../../trainer/packs/format.ts';
import { readPack } from '../../trainer/packs/read.ts';
import { summarizePack } from '../../trainer/packs/summary.ts';
import type { ArtifactStore } from '../storage/artifacts.ts';
import { UploadError } from '../storage/images.ts';
import type { PackListing } from './library.ts';

/** Packs uploaded to the studio are refused above this size (a studio pack of rank 4 on SD1.5 is about 3 MB). */
export const MAX_UPLOADED_PACK_BYTES = 128 * 1024 * 1024;

export async function packListing(artifacts: ArtifactStore, pack: Pack): Promise<{ previewSha256: string; listing: PackListing }> {
  const summary = summarizePack(pack);
  const preview = await artifacts.put(pack.source.thumbnail, 'image/png');
  const instances: PackListing['instances'] = [];
  for (const [i, instance] of pack.instances.entries()) {
    const thumbnail = instance.thumbnail ? await artifacts.put(instance.thumbnail, 'image/png') : null;
    instances.push({ ...summary.instances[i]!, thumbnailSha256: thumbnail?.sha256 ?? null });
  }
  return {
    previewSha256: preview.sha256,
    listing: {
      note: summary.note,
      createdAt: summary.createdAt,
      learnedAt: summary.learnedAt,
      baseModel: summary.baseModel,
      resolution: summary.resolution,
      instances,
      lora: summary.lora,
    },
  };
}

/** Reads uploaded bytes as a pack; anything wrong with them is an UploadError (a BAD_REQUEST for the client). */
export function readUploadedPack(bytes: Uint8Array, fileName: string): Pack {
  try {
    return readPack(bytes, { maxBytes: MAX_UPLOADED_PACK_BYTES, source: fileName });
  } catch (error) {
    if (error instanceof PackError) throw new UploadError(`${fileName} is not a usable pack: ${error.message}`);
    throw error;
  }
}
