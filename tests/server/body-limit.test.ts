// The web route's request-size cap (server/http/body-limit.ts), through the same tRPC fetch adapter the route uses.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fetchRequestHandler } from '@trpc/server/adapters/fetch';
import { appRouter } from '../../server/api/root.ts';
import { limitRequestBody, maxRequestBytes } from '../../server/http/body-limit.ts';
import { readServerConfig } from '../../server/config.ts';

function upload(bytes: number, headers: Record<string, string> = {}): Request {
  const form = new FormData();
  form.set('file', new Blob([new Uint8Array(bytes)]), 'photo.png');
  return new Request('http://localhost/api/trpc/artifacts.uploadImage', { method: 'POST', body: form, headers });
}

test('a body over the cap fails as a tRPC BAD_REQUEST that says so; one under it reads whole', async () => {
  const over = await fetchRequestHandler({
    endpoint: '/api/trpc',
    req: limitRequestBody(upload(3 * 1048576), 2 * 1048576),
    router: appRouter,
    createContext: () => ({ requestId: 'test', services: () => Promise.reject(new Error('the procedure must not run')) }),
  });
  assert.equal(over.status, 400);
  const body = (await over.json()) as { error: { message: string; data: { code: string } } };
  assert.equal(body.error.data.code, 'BAD_REQUEST');
  assert.equal(body.error.message, 'the request is larger than 2 MB; upload a smaller file');

  const under = await limitRequestBody(upload(1048576), 2 * 1048576).formData();
  assert.equal((under.get('file') as File).size, 1048576);
  // a declared length over the cap is refused before any of the body is read
  await assert.rejects(limitRequestBody(upload(10, { 'content-length': String(5 * 1048576) }), 2 * 1048576).formData(), /larger than 2 MB/);
});

test('the cap leaves room for the largest upload the server accepts', () => {
  const config = { ...readServerConfig({}), maxUploadBytes: 300 * 1048576 };
  assert.ok(maxRequestBytes(config) > 300 * 1048576);
  assert.ok(maxRequestBytes(readServerConfig({})) > 128 * 1048576);
});
