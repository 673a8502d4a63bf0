// Storage: atomic writes, the content-addressed store, migrations, job leases and checkpoints, and a crash test that
// kills a writer with SIGKILL and checks that nothing half-written is visible and nothing committed is lost.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import sharp from 'sharp';
import { z } from 'zod';
import { JobCheckpoints, removeCheckpoint } from '../../server/jobs/checkpoints.ts';
import { JobRegistry } from '../../server/jobs/registry.ts';
import { JobStore } from '../../server/jobs/store.ts';
import { TEMP_PREFIX, writeFileAtomic, writeFileAtomicSync } from '../../server/storage/atomic.ts';
import { ArtifactStore, ArtifactTooLargeError } from '../../server/storage/artifacts.ts';
import { inspectPhoto } from '../../server/storage/images.ts';
import { openDatabase, schemaVersion } from '../../server/storage/database.ts';
import { migrations } from '../../server/storage/migrations.ts';
import { ProjectStore } from '../../server/storage/projects.ts';

const repoRoot = resolve(import.meta.dirname, '../..');
const scratch = mkdtempSync(join(tmpdir(), 'mifo-storage-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function freshDir(name: string): string {
  const dir = join(scratch, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? filesUnder(join(dir, entry.name)) : [join(dir, entry.name)]));
}

describe('atomic writes', () => {
  test('replace the whole file and leave no temporary files, also when the write fails', async () => {
    const dir = freshDir('atomic');
    const target = join(dir, 'nested', 'file.json');
    writeFileAtomicSync(target, 'first');
    await writeFileAtomic(target, 'second');
    assert.equal(readFileSync(target, 'utf8'), 'second');
    // Renaming onto a directory fails after the temporary file was written: it must not stay behind.
    mkdirSync(join(dir, 'nested', 'a-directory'));
    await assert.rejects(writeFileAtomic(join(dir, 'nested', 'a-directory'), 'x'), /EISDIR/);
    assert.deepEqual(readdirSync(join(dir, 'nested')).sort(), ['a-directory', 'file.json']);
  });
});

describe('photo uploads', () => {
  test('report the upright size of a photo stored sideways (EXIF orientation 6), and refuse what is not a photo', async () => {
    const stored = await sharp({ create: { width: 30, height: 20, channels: 3, background: '#c33' } }).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    assert.deepEqual(await inspectPhoto(stored), { mediaType: 'image/jpeg', width: 20, height: 30 });
    const plain = await sharp({ create: { width: 30, height: 20, channels: 3, background: '#c33' } }).png().toBuffer();
    assert.deepEqual(await inspectPhoto(plain), { mediaType: 'image/png', width: 30, height: 20 });
    await assert.rejects(inspectPhoto(new TextEncoder().encode('GIF89a')), /must be a JPEG, PNG or WebP/);
    await assert.rejects(inspectPhoto(plain, { maxBytes: 1 << 20, maxPixels: 500 }), /the photo is 30×20 /);
  });
});

describe('artifact store', () => {
  test('stores by sha256 in sharded read-only files, once per content, and verifies', async () => {
    const store = await ArtifactStore.open(freshDir('cas'));
    const ref = await store.put('hello', 'text/plain');
    assert.deepEqual(ref, { sha256: '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824', size: 5, mediaType: 'text/plain' });
    assert.equal(relative(store.root, store.pathOf(ref.sha256)), `sha256/2c/f2/${ref.sha256}`);
    assert.equal(statSync(store.pathOf(ref.sha256)).mode & 0o222, 0, 'blobs are read-only');
    assert.deepEqual(await store.put(Buffer.from('hello')), { sha256: ref.sha256, size: 5 });
    assert.equal((await store.read(ref.sha256)).toString(), 'hello');
    assert.equal(await store.verify(ref.sha256), true);
    assert.deepEqual(await store.readHead(ref.sha256, 2), Uint8Array.from([0x68, 0x65]));
    await assert.rejects(store.read('0'.repeat(64)), /not in the store/);
    assert.throws(() => store.pathOf('../../etc/passwd'), /not a sha256/);
  });

  test('refuses a stream over the size limit without keeping any of it', async () => {
    const store = await ArtifactStore.open(freshDir('cas-limit'));
    async function* chunks() {
      for (let i = 0; i < 10; i++) yield new Uint8Array(1000);
    }
    await assert.rejects(store.putChunks(chunks(), undefined, 5000), ArtifactTooLargeError);
    assert.deepEqual(filesUnder(store.root), []);
  });

  test('folders round-trip as trees; a tree path that leaves its folder is refused', async () => {
    const store = await ArtifactStore.open(freshDir('cas-tree'));
    const source = freshDir('concept');
    mkdirSync(join(source, 'attention'));
    writeFileSync(join(source, 'manifest.json'), '{"tokens":["<asset0>"]}');
    writeFileSync(join(source, 'attention', 'asset0.png'), 'png bytes');
    writeFileSync(join(source, `${TEMP_PREFIX}half-written`), 'ignored');
    const tree = await store.putTree(source);
    assert.deepEqual((await store.readTree(tree.sha256)).map((entry) => entry.path), ['attention/asset0.png', 'manifest.json']);
    const copy = join(scratch, 'concept-copy');
    await store.materializeTree(tree.sha256, copy);
    assert.equal(readFileSync(join(copy, 'attention', 'asset0.png'), 'utf8'), 'png bytes');
    const evil = await store.put(JSON.stringify({ format: 'mifo-tree/1', entries: [{ path: '../outside', sha256: tree.sha256, size: 1 }] }));
    await assert.rejects(store.readTree(evil.sha256), /leaves its folder/);
  });
});

describe('database', () => {
  test('migrations apply once and record their version; a newer database is refused with a clear error', () => {
    const path = join(freshDir('db'), 'mifo.sqlite');
    const db = openDatabase(path);
    assert.equal(schemaVersion(db), migrations.at(-1)!.version);
    db.close();
    const again = openDatabase(path);
    assert.equal((again.prepare('SELECT COUNT(*) AS n FROM schema_migrations').get() as { n: number }).n, migrations.length);
    again.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, ?, 0)').run('from the future');
    again.close();
    assert.throws(() => openDatabase(path), /schema version 999, newer than this code knows/);
  });
});

describe('job store', () => {
  const registry = new JobRegistry();
  const definition = registry.define({ type: 'lease-test', description: 'test', resource: 'gpu', input: z.object({}), timeoutMs: 1000, maxTimeoutMs: 1000, maxAttempts: 2 });

  test('a worker whose lease expired loses the job: its events and outcome are dropped, the new holder finishes it', async () => {
    const store = new JobStore(openDatabase(join(freshDir('leases'), 'mifo.sqlite')));
    const job = store.insert({ definition, input: {}, timeoutMs: 1000 });
    const claim = { resources: ['gpu' as const], types: ['lease-test'], leaseMs: 40 };
    const first = store.claim({ ...claim, workerId: 'a' })!;
    assert.equal(first.attempt, 1);
    assert.equal(store.claim({ ...claim, workerId: 'b' }), null, 'a held lease is not taken');
    await new Promise((resolve) => setTimeout(resolve, 60));
    const second = store.claim({ ...claim, workerId: 'b' })!;
    assert.equal(second.attempt, 2);
    assert.equal(store.renewLease(job.id, first.leaseToken, 40).held, false);
    assert.equal(store.applyEvent(job.id, 'progress', { step: 1, total: 1 }, { leaseToken: first.leaseToken }), null);
    assert.equal(store.finishAttempt(job.id, first.leaseToken, { kind: 'completed', result: 'from a' }), false);
    assert.equal(store.finishAttempt(job.id, second.leaseToken, { kind: 'completed', result: 'from b' }), true);
    assert.equal(store.get(job.id)!.result, 'from b');
    assert.deepEqual(store.events({ jobId: job.id }, 0).map((event) => event.kind), ['queued', 'stalled', 'completed']);
  });

  test('a job whose workers keep dying fails as stalled after its attempts', async () => {
    const store = new JobStore(openDatabase(join(freshDir('stalls'), 'mifo.sqlite')));
    const job = store.insert({ definition, input: {}, timeoutMs: 1000 });
    const claim = { resources: ['gpu' as const], types: ['lease-test'], leaseMs: 20 };
    assert.ok(store.claim({ ...claim, workerId: 'a' }));
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.ok(store.claim({ ...claim, workerId: 'b' }));
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(store.claim({ ...claim, workerId: 'c' }), null);
    assert.equal(store.get(job.id)!.status, 'failed');
    assert.equal(store.get(job.id)!.error!.kind, 'stalled');
  });
});

describe('recording results', () => {
  test("a completed job's recordResult writes in the same transaction; if it throws, the job fails with its message", () => {
    const registry = new JobRegistry();
    const recorded = registry.define({
      type: 'records',
      description: 'test',
      resource: 'cpu',
      input: z.object({ fail: z.boolean() }),
      timeoutMs: 1000,
      maxTimeoutMs: 1000,
      maxAttempts: 1,
      recordResult: (db, job, result) => {
        new ProjectStore(db).create({ name: `made by ${job.id}: ${String(result)}` });
        if ((job.input as { fail: boolean }).fail) throw new Error('no room for it');
      },
    });
    const db = openDatabase(join(freshDir('record'), 'mifo.sqlite'));
    const store = new JobStore(db, { definitionOf: (type) => registry.definition(type) });
    const claim = { workerId: 'w', resources: ['cpu' as const], types: ['records'], leaseMs: 1000 };
    const good = store.insert({ definition: recorded, input: { fail: false }, timeoutMs: 1000 });
    assert.ok(store.finishAttempt(good.id, store.claim(claim)!.leaseToken, { kind: 'completed', result: 'ok' }));
    const bad = store.insert({ definition: recorded, input: { fail: true }, timeoutMs: 1000 });
    assert.ok(store.finishAttempt(bad.id, store.claim(claim)!.leaseToken, { kind: 'completed', result: 'ok' }));

    assert.equal(store.get(good.id)!.status, 'completed');
    assert.deepEqual(store.get(bad.id)!.error, { kind: 'crash', message: 'the job finished but recording its result failed: no room for it' });
    assert.deepEqual(store.events({ jobId: bad.id }, 0).map((event) => event.kind), ['queued', 'failed']);
    assert.deepEqual(new ProjectStore(db).list().map((project) => project.name), [`made by ${good.id}: ok`]);
  });
});

describe('checkpoints', () => {
  test('the latest save wins, with its files; files of older saves are deleted', async () => {
    const dataDir = freshDir('checkpoints');
    const checkpoints = new JobCheckpoints(dataDir, 'job-1', 1);
    assert.equal(await checkpoints.load(), null);
    await checkpoints.save({ step: 1 }, { weights: Buffer.from('w1'), frozen: Buffer.from('same') });
    const source = join(dataDir, 'weights2.bin');
    writeFileSync(source, 'w2');
    await checkpoints.save({ step: 2 }, { weights: { path: source }, frozen: Buffer.from('same') });
    const loaded = await new JobCheckpoints(dataDir, 'job-1', 2).load<{ step: number }>();
    assert.deepEqual(loaded!.state, { step: 2 });
    assert.equal(loaded!.attempt, 1);
    assert.equal(readFileSync(loaded!.files.weights!, 'utf8'), 'w2');
    assert.equal(readdirSync(join(dataDir, 'checkpoints', 'job-1', 'blobs')).length, 2);
    await removeCheckpoint(dataDir, 'job-1');
    assert.equal(await checkpoints.load(), null);
    assert.throws(() => new JobCheckpoints(dataDir, '../escape', 1), /not a valid job id/);
  });
});

describe('crash safety', () => {
  test('SIGKILL during writes: every visible blob is complete, the atomic file is whole, committed rows survive', async () => {
    for (const delayMs of [0, 37, 151]) {
      const dataDir = freshDir(`crash-${delayMs}`);
      const child = spawn(process.execPath, ['--import', 'tsx', 'tests/server/support/crash-writer.ts', dataDir], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
      let output = '';
      const exited = new Promise((resolve) => child.once('exit', resolve));
      await new Promise<void>((resolve) => {
        child.stdout.on('data', (chunk: Buffer) => {
          output += String(chunk);
          if (output.includes('committed 5\n')) resolve();
        });
      });
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      child.kill('SIGKILL');
      await exited;
      const committed = Math.max(...[...output.matchAll(/committed (\d+)\n/g)].map((match) => Number(match[1])));

      const store = await ArtifactStore.open(dataDir);
      const blobs = filesUnder(join(dataDir, 'artifacts', 'sha256'));
      assert.ok(blobs.length >= committed + 1);
      for (const blob of blobs) {
        const name = blob.split('/').at(-1)!;
        assert.equal(await store.verify(name), true, `blob ${name} matches its address`);
      }
      const current = JSON.parse(readFileSync(join(dataDir, 'current.json'), 'utf8')) as { round: number; sha256: string };
      assert.ok(current.round >= committed && current.round <= committed + 1, `current.json round ${current.round}, committed ${committed}`);
      assert.ok(store.has(current.sha256));
      const projects = new ProjectStore(openDatabase(join(dataDir, 'mifo.sqlite'))).list({ limit: 500 });
      assert.ok(projects.length >= committed + 1, `${projects.length} rows, ${committed + 1} committed`);
    }
  });
});
