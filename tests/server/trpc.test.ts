// The tRPC API over real HTTP (no Next build): FormData uploads through httpLink, job submission, and SSE event
// subscriptions that resume from the last event id after the connection drops.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createTRPCClient, httpBatchLink, httpLink, httpSubscriptionLink, isNonJsonSerializable, splitLink, TRPCClientError } from '@trpc/client';
import { createHTTPServer } from '@trpc/server/adapters/standalone';
import { EventSource } from 'eventsource';
import sharp from 'sharp';
import { appRouter, type AppRouter } from '../../server/api/root.ts';
import type { JobEvent } from '../../server/jobs/contract.ts';
import { artifactResponse } from '../../server/http/artifacts.ts';
import { JobHarness } from './support/harness.ts';
import { STEP_JOB } from './support/step-job.ts';

async function png(width: number, height: number): Promise<Blob> {
  const bytes = await sharp({ create: { width, height, channels: 3, background: { r: 200, g: 40, b: 40 } } }).png().toBuffer();
  return new Blob([new Uint8Array(bytes)], { type: 'image/png' });
}

describe('tRPC API over HTTP', () => {
  let harness: JobHarness;
  let server: ReturnType<typeof createHTTPServer>;
  let client: ReturnType<typeof createTRPCClient<AppRouter>>;

  before(async () => {
    harness = await JobHarness.open({ queue: 'embedded' });
    await harness.startWorker();
    server = createHTTPServer({ router: appRouter, createContext: () => ({ requestId: 'test', services: async () => harness.services }) });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    client = createTRPCClient<AppRouter>({
      links: [
        splitLink({
          condition: (op) => op.type === 'subscription',
          true: httpSubscriptionLink({ url, EventSource }),
          false: splitLink({ condition: (op) => isNonJsonSerializable(op.input), true: httpLink({ url }), false: httpBatchLink({ url }) }),
        }),
      ],
    });
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await harness.close();
  });

  test('projects: create from an uploaded photo, instances, reorder, refuse a non-image, delete', async () => {
    const form = new FormData();
    form.set('name', 'Two toys');
    form.set('photo', await png(64, 48), 'toys.png');
    const project = await client.projects.create.mutate(form);
    assert.equal(project.name, 'Two toys');
    assert.deepEqual({ ...project.photo, sha256: undefined }, { sha256: undefined, mediaType: 'image/png', width: 64, height: 48 });
    assert.ok(harness.services.artifacts.has(project.photo!.sha256));

    const maskForm = new FormData();
    maskForm.set('file', await png(64, 48), 'mask.png');
    const mask = await client.artifacts.uploadImage.mutate(maskForm);
    const bear = await client.projects.addInstance.mutate({ projectId: project.id, name: 'bear', maskSha256: mask.sha256, color: '#ff0000' });
    const duck = await client.projects.addInstance.mutate({ projectId: project.id, name: 'duck' });
    await assert.rejects(client.projects.addInstance.mutate({ projectId: project.id, name: 'duck' }), /already has an instance named 'duck'/);
    await assert.rejects(client.projects.addInstance.mutate({ projectId: project.id, name: 'two words' }), /one word/);
    await client.projects.reorderInstances.mutate({ projectId: project.id, ids: [duck.id, bear.id] });
    const detail = await client.projects.get.query({ id: project.id });
    assert.deepEqual(detail.instances.map((instance) => instance.name), ['duck', 'bear']);
    assert.equal(detail.instances[1]!.maskSha256, mask.sha256);
    assert.deepEqual((await client.projects.list.query()).map((p) => p.id), [project.id]);

    const text = new FormData();
    text.set('name', 'Not a photo');
    text.set('photo', new Blob(['hello']), 'notes.txt');
    await assert.rejects(client.projects.create.mutate(text), (error: unknown) => {
      assert.ok(error instanceof TRPCClientError);
      assert.equal(error.data?.code, 'BAD_REQUEST');
      assert.match(error.message, /must be a JPEG, PNG or WebP image/);
      return true;
    });

    const served = await artifactResponse(new Request('http://x/'), project.photo!.sha256, harness.services.artifacts);
    assert.equal(served.status, 200);
    assert.equal(served.headers.get('content-type'), 'image/png');
    assert.equal(Buffer.from(await served.arrayBuffer()).equals(await harness.services.artifacts.read(project.photo!.sha256)), true);
    const revalidated = await artifactResponse(new Request('http://x/', { headers: { 'if-none-match': `"${project.photo!.sha256}"` } }), project.photo!.sha256, harness.services.artifacts);
    assert.equal(revalidated.status, 304);

    await client.projects.delete.mutate({ id: project.id });
    await assert.rejects(client.projects.get.query({ id: project.id }), /does not exist/);
  });

  test('jobs: submit, bad input as BAD_REQUEST, and an SSE subscription that resumes after the connection drops', async () => {
    await assert.rejects(client.jobs.submit.mutate({ type: STEP_JOB, input: { steps: -1, stepMs: 0 } }), (error: unknown) => {
      assert.ok(error instanceof TRPCClientError);
      assert.equal(error.data?.code, 'BAD_REQUEST');
      assert.match(error.message, /invalid input for a 'test-steps' job/);
      return true;
    });

    const job = await client.jobs.submit.mutate({ type: STEP_JOB, input: { steps: 12, stepMs: 150 } });
    const received: JobEvent[] = [];
    let dropped = false;
    await new Promise<void>((resolve, reject) => {
      const subscription = client.jobs.events.subscribe(
        { jobId: job.id },
        {
          onData: ({ id, data }) => {
            assert.equal(id, String(data.id));
            received.push(data as unknown as JobEvent);
            if (!dropped && data.kind === 'progress' && (data.data as { step: number }).step === 3) {
              // Drop every open connection, as a network blip or a proxy restart would.
              dropped = true;
              server.closeAllConnections();
            }
            if (data.kind === 'completed' || data.kind === 'failed' || data.kind === 'cancelled') {
              subscription.unsubscribe();
              resolve();
            }
          },
          onError: reject,
        },
      );
    });
    const stored = harness.services.jobs.store.events({ jobId: job.id }, 0, 1000);
    assert.ok(dropped);
    assert.deepEqual(
      received.map((event) => event.id),
      stored.map((event) => event.id),
      'every event arrives once, in order, across the reconnection',
    );
    assert.equal(received.at(-1)!.kind, 'completed');

    const late: JobEvent[] = [];
    const resumeFrom = stored[stored.length - 3]!.id;
    // The job is finished, so the server ends the stream after the last event.
    await new Promise<void>((resolve, reject) => {
      client.jobs.events.subscribe(
        { jobId: job.id, lastEventId: String(resumeFrom) },
        { onData: ({ data }) => late.push(data as unknown as JobEvent), onComplete: resolve, onStopped: resolve, onError: reject },
      );
    });
    assert.deepEqual(late.map((event) => event.id), stored.slice(-2).map((event) => event.id));

    const preview = received.find((event) => event.kind === 'progress' && Array.isArray(event.data.images));
    const image = (preview!.data.images as { sha256: string; name: string }[])[0]!;
    assert.equal(image.name, 'preview');
    assert.ok(harness.services.artifacts.has(image.sha256), 'preview images travel by artifact reference');

    const listed = await client.jobs.list.query({ statuses: ['completed'] });
    assert.ok(listed.some((record) => record.id === job.id));
    assert.equal((await client.jobs.get.query({ id: job.id })).status, 'completed');
  });
});
