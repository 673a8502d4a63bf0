// Atomic file writes: data goes to a temporary file in the target's directory, is fsynced, then renamed over the
// target, and the directory is fsynced so the rename itself survives a crash. Readers see the old file or the new
// one, never a partial one.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { copyFile, mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Temporary files start with this prefix; anything listing a directory must skip them. */
export const TEMP_PREFIX = '.tmp-';

export function temporaryPathFor(target: string): string {
  return join(dirname(target), `${TEMP_PREFIX}${basename(target)}-${process.pid}-${randomBytes(6).toString('hex')}`);
}

export function fsyncDirectorySync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export function writeFileAtomicSync(target: string, data: Uint8Array | string): void {
  const dir = dirname(target);
  mkdirSync(dir, { recursive: true });
  const temp = temporaryPathFor(target);
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  try {
    const fd = openSync(temp, 'wx', 0o644);
    try {
      let written = 0;
      while (written < bytes.byteLength) written += writeSync(fd, bytes, written, bytes.byteLength - written);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, target);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
  fsyncDirectorySync(dir);
}

/** Fills a temporary file beside the target (fill must leave it fsynced), renames it over the target, fsyncs the directory. */
async function replaceAtomically(target: string, fill: (temp: string) => Promise<void>): Promise<void> {
  const dir = dirname(target);
  await mkdir(dir, { recursive: true });
  const temp = temporaryPathFor(target);
  try {
    await fill(temp);
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await fsyncDirectory(dir);
}

async function syncFile(path: string, flags: 'wx' | 'r+', write: (handle: FileHandle) => Promise<void> = async () => {}): Promise<void> {
  const handle = await open(path, flags, 0o644);
  try {
    await write(handle);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function writeFileAtomic(target: string, data: Uint8Array | string): Promise<void> {
  await replaceAtomically(target, (temp) => syncFile(temp, 'wx', (handle) => handle.writeFile(data)));
}

/** Copies a file into place atomically: copy to a temp file beside the target, fsync, rename. */
export async function copyFileAtomic(source: string, target: string): Promise<void> {
  await replaceAtomically(target, async (temp) => {
    await copyFile(source, temp);
    await syncFile(temp, 'r+');
  });
}
