// Content-addressed artifact store: every blob lives at artifacts/sha256/<2 hex>/<2 hex>/<64 hex>, written once to a
// temporary file, fsynced, hashed and renamed into place, so a path that exists always holds complete, verified
// bytes. Identical content is stored once. Works on a shared filesystem: concurrent writers of the same content
// rename identical files over each other.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import { chmod, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, relative, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { fsyncDirectory, TEMP_PREFIX, writeFileAtomic } from './atomic.ts';

export interface ArtifactRef {
  sha256: string;
  size: number;
  /** what the bytes are (image/png, application/json, ...); not part of the address */
  mediaType?: string;
}

export interface TreeEntry {
  /** relative POSIX path inside the tree */
  path: string;
  sha256: string;
  size: number;
}

export const TREE_MEDIA_TYPE = 'application/vnd.mifo.tree+json';
const TREE_FORMAT = 'mifo-tree/1';
const SHA256_PATTERN = /^[0-9a-f]{64}$/;
const STALE_TEMP_MS = 24 * 3600 * 1000;

export class ArtifactNotFoundError extends Error {
  constructor(readonly sha256: string) {
    super(`artifact ${sha256} is not in the store`);
    this.name = 'ArtifactNotFoundError';
  }
}

export class ArtifactTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`the upload is larger than the limit of ${limit} bytes`);
    this.name = 'ArtifactTooLargeError';
  }
}

export function assertSha256(value: string): string {
  if (!SHA256_PATTERN.test(value)) throw new Error(`'${value}' is not a sha256 (64 lowercase hex digits)`);
  return value;
}

export class ArtifactStore {
  private readonly blobRoot: string;
  private readonly tempDir: string;

  constructor(readonly root: string) {
    this.blobRoot = join(root, 'sha256');
    this.tempDir = join(root, 'tmp');
  }

  /** Opens (creating if needed) the store under dataDir/artifacts and sweeps temporary files left by crashes. */
  static async open(dataDir: string): Promise<ArtifactStore> {
    const store = new ArtifactStore(join(dataDir, 'artifacts'));
    await mkdir(store.blobRoot, { recursive: true });
    await mkdir(store.tempDir, { recursive: true });
    await store.sweepStaleTemporaries();
    return store;
  }

  pathOf(sha256: string): string {
    assertSha256(sha256);
    return join(this.blobRoot, sha256.slice(0, 2), sha256.slice(2, 4), sha256);
  }

  has(sha256: string): boolean {
    return existsSync(this.pathOf(sha256));
  }

  sizeOf(sha256: string): number | null {
    const path = this.pathOf(sha256);
    return existsSync(path) ? statSync(path).size : null;
  }

  async put(bytes: Uint8Array | string, mediaType?: string): Promise<ArtifactRef> {
    const data = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
    return this.putChunks([data], mediaType);
  }

  async putJson(value: unknown): Promise<ArtifactRef> {
    return this.put(JSON.stringify(value), 'application/json');
  }

  async putFile(path: string, mediaType?: string): Promise<ArtifactRef> {
    return this.putChunks(createReadStream(path), mediaType);
  }

  /** Streams bytes in (an upload, a File.stream()); refuses more than maxBytes without keeping any of it. */
  async putChunks(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array> | Readable, mediaType?: string, maxBytes = Number.POSITIVE_INFINITY): Promise<ArtifactRef> {
    const temp = join(this.tempDir, `${TEMP_PREFIX}${process.pid}-${randomBytes(8).toString('hex')}`);
    const hash = createHash('sha256');
    let size = 0;
    try {
      const handle = await open(temp, 'wx', 0o644);
      try {
        for await (const chunk of chunks as AsyncIterable<Uint8Array>) {
          size += chunk.byteLength;
          if (size > maxBytes) throw new ArtifactTooLargeError(maxBytes);
          hash.update(chunk);
          await handle.write(chunk);
        }
        await handle.sync();
      } finally {
        await handle.close();
      }
      const sha256 = hash.digest('hex');
      const target = this.pathOf(sha256);
      if (existsSync(target)) {
        await rm(temp, { force: true });
      } else {
        await this.ensureShardDirectory(dirname(target));
        await chmod(temp, 0o444);
        await rename(temp, target);
        await fsyncDirectory(dirname(target));
      }
      return mediaType ? { sha256, size, mediaType } : { sha256, size };
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
  }

  async read(sha256: string): Promise<Buffer> {
    try {
      return await readFile(this.pathOf(sha256));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ArtifactNotFoundError(sha256);
      throw error;
    }
  }

  async readJson<T = unknown>(sha256: string): Promise<T> {
    return JSON.parse((await this.read(sha256)).toString('utf8')) as T;
  }

  /** The first bytes of a blob (to tell its format). */
  async readHead(sha256: string, length: number): Promise<Uint8Array> {
    const handle = await open(this.pathOf(sha256), 'r').catch((error: NodeJS.ErrnoException) => {
      throw error.code === 'ENOENT' ? new ArtifactNotFoundError(sha256) : error;
    });
    try {
      const buffer = new Uint8Array(length);
      const { bytesRead } = await handle.read(buffer, 0, length, 0);
      return buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  }

  openStream(sha256: string): Readable {
    const path = this.pathOf(sha256);
    if (!existsSync(path)) throw new ArtifactNotFoundError(sha256);
    return createReadStream(path);
  }

  /** Re-hashes a blob; false means the file on disk no longer matches its address. */
  async verify(sha256: string): Promise<boolean> {
    const hash = createHash('sha256');
    for await (const chunk of this.openStream(sha256)) hash.update(chunk as Buffer);
    return hash.digest('hex') === sha256;
  }

  /** Stores every file under dir, then a tree listing them; the tree's ref names the whole folder. */
  async putTree(dir: string): Promise<ArtifactRef> {
    const entries: TreeEntry[] = [];
    for (const path of listFiles(dir)) {
      const ref = await this.putFile(join(dir, path));
      entries.push({ path: path.split(sep).join('/'), sha256: ref.sha256, size: ref.size });
    }
    entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return this.put(JSON.stringify({ format: TREE_FORMAT, entries }), TREE_MEDIA_TYPE);
  }

  async readTree(sha256: string): Promise<TreeEntry[]> {
    const tree = await this.readJson<{ format?: string; entries?: TreeEntry[] }>(sha256);
    if (tree.format !== TREE_FORMAT || !Array.isArray(tree.entries)) throw new Error(`artifact ${sha256} is not a ${TREE_FORMAT} tree`);
    for (const entry of tree.entries) safeRelativePath(entry.path);
    return tree.entries;
  }

  /** Writes a tree's files under dest (atomically each), e.g. to hand a concept folder to the trainer. */
  async materializeTree(sha256: string, dest: string): Promise<void> {
    for (const entry of await this.readTree(sha256)) {
      await writeFileAtomic(join(dest, safeRelativePath(entry.path)), await this.read(entry.sha256));
    }
  }

  private async ensureShardDirectory(dir: string): Promise<void> {
    const firstCreated = await mkdir(dir, { recursive: true });
    if (firstCreated === undefined) return;
    // Make the new directory entries durable too, from the deepest new one up to the existing parent.
    for (let current = dir; ; current = dirname(current)) {
      await fsyncDirectory(dirname(current));
      if (current === firstCreated || current === this.blobRoot) break;
    }
  }

  private async sweepStaleTemporaries(): Promise<void> {
    const now = Date.now();
    for (const name of await readdir(this.tempDir)) {
      const path = join(this.tempDir, name);
      const info = await stat(path).catch(() => null);
      if (info && now - info.mtimeMs > STALE_TEMP_MS) await rm(path, { force: true });
    }
  }
}

function listFiles(dir: string, prefix = ''): string[] {
  return readdirSync(join(dir, prefix), { withFileTypes: true }).flatMap((entry) => {
    if (entry.name.startsWith(TEMP_PREFIX)) return [];
    const path = prefix ? join(prefix, entry.name) : entry.name;
    if (entry.isDirectory()) return listFiles(dir, path);
    return entry.isFile() ? [path] : [];
  });
}

function safeRelativePath(path: string): string {
  const normalized = normalize(path);
  if (!path || isAbsolute(path) || normalized.startsWith('..') || relative('.', normalized).startsWith('..')) {
    throw new Error(`tree entry path '${path}' leaves its folder`);
  }
  return normalized;
}
