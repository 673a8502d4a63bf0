// Per-job resumable state, kept beside the content-addressed artifacts: data/checkpoints/<job>/ holds blobs named
// by their sha256 and a manifest.json that names the current state. Saving writes the new blobs, then replaces the
// manifest atomically, then deletes blobs only older manifests used, so disk use stays at about one checkpoint per
// job however often a handler saves, and a crash at any point leaves the previous or the new checkpoint loadable.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { copyFileAtomic, TEMP_PREFIX, writeFileAtomic } from '../storage/atomic.ts';
import type { CheckpointStore, JobCheckpoint, JsonValue } from './contract.ts';

const FORMAT = 'mifo-checkpoint/1';
const JOB_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

interface Manifest {
  format: string;
  state: JsonValue;
  files: Record<string, string>;
  savedAt: number;
  attempt: number;
}

export function checkpointDirectory(dataDir: string, jobId: string): string {
  if (!JOB_ID_PATTERN.test(jobId)) throw new Error(`'${jobId}' is not a valid job id`);
  return join(dataDir, 'checkpoints', jobId);
}

export async function removeCheckpoint(dataDir: string, jobId: string): Promise<void> {
  await rm(checkpointDirectory(dataDir, jobId), { recursive: true, force: true });
}

export class JobCheckpoints implements CheckpointStore {
  private readonly dir: string;
  private readonly blobDir: string;

  /** beforeSave throws when this attempt may no longer write (its lease was taken over). */
  constructor(
    dataDir: string,
    jobId: string,
    private readonly attempt: number,
    private readonly beforeSave: () => void = () => {},
  ) {
    this.dir = checkpointDirectory(dataDir, jobId);
    this.blobDir = join(this.dir, 'blobs');
  }

  async load<S extends JsonValue = JsonValue>(): Promise<JobCheckpoint<S> | null> {
    const manifest = await this.readManifest();
    if (!manifest) return null;
    const files: Record<string, string> = {};
    for (const [name, sha256] of Object.entries(manifest.files)) {
      const path = join(this.blobDir, sha256);
      if (!existsSync(path)) throw new Error(`checkpoint file '${name}' (${sha256}) is missing from ${this.blobDir}`);
      files[name] = path;
    }
    return { state: manifest.state as S, files, savedAt: manifest.savedAt, attempt: manifest.attempt };
  }

  async save(state: JsonValue, files: Record<string, Uint8Array | { path: string }> = {}): Promise<void> {
    this.beforeSave();
    await mkdir(this.blobDir, { recursive: true });
    const names: Record<string, string> = {};
    for (const [name, content] of Object.entries(files)) {
      names[name] = content instanceof Uint8Array ? await this.storeBytes(content) : await this.storeFile(content.path);
    }
    this.beforeSave();
    const manifest: Manifest = { format: FORMAT, state, files: names, savedAt: Date.now(), attempt: this.attempt };
    await writeFileAtomic(join(this.dir, 'manifest.json'), JSON.stringify(manifest));
    await this.deleteUnreferencedBlobs();
  }

  private async readManifest(): Promise<Manifest | null> {
    let text: string;
    try {
      text = await readFile(join(this.dir, 'manifest.json'), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
    const manifest = JSON.parse(text) as Manifest;
    if (manifest.format !== FORMAT) throw new Error(`checkpoint manifest in ${this.dir} has format ${manifest.format}, expected ${FORMAT}`);
    return manifest;
  }

  private async storeBytes(bytes: Uint8Array): Promise<string> {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const target = join(this.blobDir, sha256);
    if (!existsSync(target)) await writeFileAtomic(target, bytes);
    return sha256;
  }

  /** Streams a (possibly large) file in: hashed while read, copied, fsynced, renamed into place. */
  private async storeFile(path: string): Promise<string> {
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
    const sha256 = hash.digest('hex');
    const target = join(this.blobDir, sha256);
    if (!existsSync(target)) await copyFileAtomic(path, target);
    return sha256;
  }

  private async deleteUnreferencedBlobs(): Promise<void> {
    // Re-read the manifest: if another attempt replaced it meanwhile, keep what that one references.
    const current = await this.readManifest();
    const live = new Set(Object.values(current?.files ?? {}));
    for (const name of readdirSync(this.blobDir)) {
      if (!live.has(name) && !name.startsWith(TEMP_PREFIX)) await rm(join(this.blobDir, name), { force: true });
    }
  }
}
