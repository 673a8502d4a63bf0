// The pack library through the `packs` router with real worker processes: publish a project's concepts (pack-export
// job), browse with previews, share links, downloads addressed by sha256 (the same bytes every time), uploads, and
// import into another project (pack-import job) as concepts that loadConcepts reads; other base models are refused.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TRPCError } from '@trpc/server';
import { appRouter } from '../../server/api/root.ts';
import { createCallerFactory } from '../../server/api/trpc.ts';
import type { PackExportJobResult } from '../../server/jobs/types/pack-export.ts';
import type { PackImportJobResult } from '../../server/jobs/types/pack-import.ts';
import { packDownloadResponse } from '../../server/packs/http.ts';
import { tokenForName } from '../../server/packs/service.ts';
import type { Project } from '../../server/storage/projects.ts';
import { loadConcepts } from '../../trainer/concepts/load.ts';
import { readEmbeddings, readManifest } from '../../trainer/concepts/format.ts';
import { buildPack } from '../../trainer/packs/export.ts';
import { readPack } from '../../trainer/packs/read.ts';
import { StableDiffusionPipeline } from '../../trainer/pipelines/stable_diffusion.ts';
import { setupRuntime } from '../helpers.ts';
import { learnConcept, TINY_SD, TINY_SD2 } from '../trainer/packs/support.ts';
import { JobHarness } from './support/harness.ts';

const createCaller = createCallerFactory(appRouter);
const scratch = mkdtempSync(join(tmpdir(), 'mifo-packs-server-'));
const sha256Of = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

function rejectsWith(code: TRPCError['code'], message: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof TRPCError, String(error));
    assert.equal(error.code, code, error.message);
    assert.match(error.message, message);
    return true;
  };
}

describe('the pack library', () => {
  let harness: JobHarness;
  let caller: ReturnType<typeof createCaller>;
  let conceptDir: string;
  let source: Project;
  let published: PackExportJobResult;

  before(async () => {
    await setupRuntime();
    harness = await JobHarness.open({ queue: 'embedded' });
    await harness.startWorker({ modules: [] });
    caller = createCaller({ requestId: 'test', services: async () => harness.services });
    conceptDir = await learnConcept(join(scratch, 'learned'), { phase1: { steps: 1 }, phase2: { steps: 1 } });
    const folder = await harness.services.artifacts.putTree(conceptDir);
    const { projects } = harness.services;
    source = projects.create({ name: 'Desk things' });
    const manifest = readManifest(conceptDir);
    ['Mug', 'desk lamp'].forEach((name, index) => {
      const instance = projects.addInstance(source.id, { name });
      projects.addConcept({ projectId: source.id, instanceId: instance.id, token: manifest.tokens[index]!.token, learnJobId: 'learn-1', baseModel: manifest.baseModel.id, preset: 'fast', folderSha256: folder.sha256, metadata: { name, index } });
    });
  });

  after(async () => {
    await harness?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  async function finished(job: { id: string }) {
    const record = await harness.finished(job.id, 60_000);
    assert.equal(record.status, 'completed', JSON.stringify(record.error));
    return record;
  }

  test('publish: a pack-export job enters the project\'s concepts in the library, tokens named after instances, with previews', async () => {
    const job = await caller.packs.publish({ projectId: source.id, note: 'a mug and a lamp', visibility: 'public' });
    published = (await finished(job)).result as unknown as PackExportJobResult;
    const [entry] = await caller.packs.list({ scope: 'public' });
    assert.ok(entry);
    assert.deepEqual([entry.id, entry.sha256, entry.name, entry.description, entry.source, entry.projectId, entry.baseModel], [published.packId, published.sha256, 'Desk things', 'a mug and a lamp', 'exported', source.id, 'tiny-sd']);
    assert.deepEqual(entry.tokens, ['<mug>', '<desk-lamp>']);
    assert.deepEqual(entry.listing.instances.map((i) => i.name), ['Mug', 'desk lamp']);
    assert.equal(entry.fileName, 'Desk-things.safetensors');
    const { artifacts } = harness.services;
    for (const preview of [entry.previewSha256!, ...entry.listing.instances.map((i) => i.thumbnailSha256!)]) {
      assert.deepEqual([...(await artifacts.readHead(preview, 4))], [0x89, 0x50, 0x4e, 0x47], 'a PNG preview');
    }
    const bytes = await artifacts.read(entry.sha256);
    assert.equal(sha256Of(bytes), entry.sha256);
    assert.equal(bytes.length, entry.size);
    assert.deepEqual(readPack(bytes).instances.map((i) => i.token), ['<mug>', '<desk-lamp>']);
    assert.deepEqual(await caller.packs.get({ id: entry.id }), entry);
  });

  test('links: an unlisted pack is not browsable but opens by its link; downloads by sha256 give the same bytes', async () => {
    const job = await caller.packs.publish({ projectId: source.id, name: 'Only by link', visibility: 'unlisted' });
    const unlisted = (await finished(job)).result as unknown as PackExportJobResult;
    assert.deepEqual((await caller.packs.list({ scope: 'public' })).map((e) => e.id), [published.packId]);
    assert.deepEqual((await caller.packs.list({ scope: 'library' })).map((e) => e.id), [unlisted.packId, published.packId]);
    assert.equal((await caller.packs.byLink({ shareToken: unlisted.shareToken })).id, unlisted.packId);
    await assert.rejects(caller.packs.byLink({ shareToken: 'not-a-real-link' }), rejectsWith('NOT_FOUND', /shared pack/));
    await caller.packs.setVisibility({ id: unlisted.packId, visibility: 'private' });
    await assert.rejects(caller.packs.byLink({ shareToken: unlisted.shareToken }), rejectsWith('NOT_FOUND', /shared pack/));
    await caller.packs.setVisibility({ id: unlisted.packId, visibility: 'unlisted' });
    const renewed = await caller.packs.newLink({ id: unlisted.packId });
    assert.notEqual(renewed.shareToken, unlisted.shareToken);
    await assert.rejects(caller.packs.byLink({ shareToken: unlisted.shareToken }), rejectsWith('NOT_FOUND', /shared pack/));

    const url = `http://studio.test/api/packs/${published.sha256}`;
    const first = await packDownloadResponse(new Request(url), published.sha256, harness.services);
    const second = await packDownloadResponse(new Request(url), published.sha256, harness.services);
    const [a, b] = [new Uint8Array(await first.arrayBuffer()), new Uint8Array(await second.arrayBuffer())];
    assert.equal(first.status, 200);
    assert.deepEqual(a, b);
    assert.equal(sha256Of(a), published.sha256);
    assert.equal(first.headers.get('content-disposition'), 'attachment; filename="Desk-things.safetensors"');
    assert.equal(first.headers.get('etag'), `"${published.sha256}"`);
    const cached = await packDownloadResponse(new Request(url, { headers: { 'if-none-match': `"${published.sha256}"` } }), published.sha256, harness.services);
    assert.equal(cached.status, 304);
    assert.equal((await packDownloadResponse(new Request(url), '0'.repeat(64), harness.services)).status, 404);
    assert.equal((await packDownloadResponse(new Request(url), '../../etc/passwd', harness.services)).status, 400);
  });

  test('import: the pack becomes concepts of another project that loadConcepts reads; a second import renames its tokens', async () => {
    const target = harness.services.projects.create({ name: 'Another scene' });
    const job = await caller.packs.importIntoProject({ projectId: target.id, packId: published.packId, model: TINY_SD });
    const result = (await finished(job)).result as unknown as PackImportJobResult;
    assert.deepEqual([result.tokens, result.renamed, result.warnings], [['<mug>', '<desk-lamp>'], {}, []]);
    const concepts = harness.services.projects.detail(target.id).concepts;
    assert.deepEqual(concepts.map((c) => [c.token, c.folderSha256, c.baseModel, c.metadata.name, c.metadata.source]), [
      ['<mug>', result.concept, 'tiny-sd', 'Mug', 'pack'],
      ['<desk-lamp>', result.concept, 'tiny-sd', 'desk lamp', 'pack'],
    ]);
    assert.deepEqual((concepts[0]!.metadata.pack as { sha256: string }).sha256, published.sha256);

    const folder = join(scratch, 'imported');
    await harness.services.artifacts.materializeTree(result.concept, folder);
    const pipe = StableDiffusionPipeline.fromPretrained(TINY_SD);
    const [loaded] = loadConcepts(pipe, [folder]);
    const learned = [...readEmbeddings(join(conceptDir, 'learned_embeds.safetensors')).values()];
    assert.deepEqual(pipe.textEncoder.getTokenEmbeddings(loaded!.tokenIds).arraySync(), learned.map((v) => Array.from(v)));
    pipe.dispose();

    const again = (await finished(await caller.packs.importIntoProject({ projectId: target.id, shareToken: published.shareToken, model: TINY_SD }))).result as unknown as PackImportJobResult;
    assert.deepEqual(again.renamed, { '<mug>': '<mug-2>', '<desk-lamp>': '<desk-lamp-2>' });
    assert.deepEqual(harness.services.projects.detail(target.id).concepts.map((c) => c.token), ['<mug>', '<desk-lamp>', '<mug-2>', '<desk-lamp-2>']);
    await assert.rejects(caller.packs.publish({ projectId: target.id }), rejectsWith('CONFLICT', /no concepts learned from its photo/));
  });

  test('upload: a pack file joins the library once; a damaged one is a BAD_REQUEST that says why', async () => {
    const upload = (bytes: Uint8Array, name: string) => {
      const form = new FormData();
      form.set('file', new Blob([new Uint8Array(bytes)]), name);
      return caller.packs.upload(form);
    };
    const publishedBytes = await harness.services.artifacts.read(published.sha256);
    assert.equal((await upload(publishedBytes, 'desk.safetensors')).id, published.packId, 'the same bytes are the same entry');
    const { bytes } = await buildPack(conceptDir, { name: 'From a friend', rename: { '<asset0>': '<cup>' } });
    const entry = await upload(bytes, 'friend.safetensors');
    assert.deepEqual([entry.name, entry.source, entry.visibility, entry.sha256, entry.tokens], ['From a friend', 'imported', 'private', sha256Of(bytes), ['<cup>', '<asset1>']]);
    assert.ok(harness.services.artifacts.has(entry.previewSha256!));
    await assert.rejects(upload(bytes.subarray(0, 1000), 'cut.safetensors'), rejectsWith('BAD_REQUEST', /cut.safetensors is not a usable pack: not a valid safetensors file/));
    await assert.rejects(caller.packs.upload(new FormData()), rejectsWith('BAD_REQUEST', /field 'file'/));
    await caller.packs.delete({ id: entry.id });
    await assert.rejects(caller.packs.get({ id: entry.id }), rejectsWith('NOT_FOUND', /pack/));
  });

  test('refusals: another base model (early for a project on it, else on the worker), nothing learned, bad links', async () => {
    const onSd2 = harness.services.projects.create({ name: 'SD2 project' });
    harness.services.projects.addConcept({ projectId: onSd2.id, instanceId: null, token: '<asset0>', learnJobId: 'x', baseModel: 'tiny-sd2', preset: 'fast', folderSha256: null, metadata: {} });
    await assert.rejects(caller.packs.importIntoProject({ projectId: onSd2.id, packId: published.packId }), rejectsWith('CONFLICT', /learned on base model 'tiny-sd'.*on 'tiny-sd2'/));

    const empty = harness.services.projects.create({ name: 'Empty' });
    const job = await caller.packs.importIntoProject({ projectId: empty.id, packId: published.packId, model: TINY_SD2 });
    const failed = await harness.finished(job.id, 60_000);
    assert.equal(failed.status, 'failed');
    assert.equal(failed.error?.kind, 'input');
    assert.match(failed.error!.message, /learned on base model 'tiny-sd' \(sha256:[0-9a-f]{12}…\), but this model is 'tiny-sd2'/);
    assert.deepEqual(harness.services.projects.detail(empty.id).concepts, []);

    await assert.rejects(caller.packs.publish({ projectId: empty.id }), rejectsWith('CONFLICT', /no concepts learned from its photo/));
    await assert.rejects(caller.packs.importIntoProject({ projectId: empty.id }), rejectsWith('BAD_REQUEST', /exactly one of packId and shareToken/));
    await assert.rejects(caller.packs.publish({ projectId: source.id, rename: { '<asset0>': '<Bad Token>' } }), rejectsWith('BAD_REQUEST', /pack token/));
  });

  test('instance names become pack tokens where they can', () => {
    assert.deepEqual(['Mug', 'desk lamp', 'Café 2', 'ящик', '--x--', 'a.b'].map(tokenForName), ['<mug>', '<desk-lamp>', '<cafe-2>', null, '<x>', '<a-b>']);
  });
});
