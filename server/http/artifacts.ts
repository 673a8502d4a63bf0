// Serves an artifact by its sha256 over plain HTTP, for a route such as app/api/artifacts/[sha256]/route.ts:
//   export async function GET(req: Request, { params }: { params: Promise<{ sha256: string }> }) {
//     return artifactResponse(req, (await params).sha256, (await getServerServices()).artifacts);
//   }
// The address is the content, so responses are immutable and revalidate by ETag.
import { Readable } from 'node:stream';
import type { ArtifactStore } from '../storage/artifacts.ts';
import { sniffImageType } from '../storage/images.ts';

const SHA256_PATTERN = /^[0-9a-f]{64}$/;

export async function artifactResponse(request: Request, sha256: string, artifacts: ArtifactStore): Promise<Response> {
  if (!SHA256_PATTERN.test(sha256)) return new Response('not a sha256\n', { status: 400 });
  const size = artifacts.sizeOf(sha256);
  if (size === null) return new Response('no such artifact\n', { status: 404 });
  const etag = `"${sha256}"`;
  const headers = new Headers({
    etag,
    'cache-control': 'public, max-age=31536000, immutable',
    'x-content-type-options': 'nosniff',
  });
  if (request.headers.get('if-none-match') === etag) return new Response(null, { status: 304, headers });
  const head = await artifacts.readHead(sha256, 16);
  headers.set('content-type', sniffImageType(head) ?? (head[0] === 0x7b ? 'application/json' : 'application/octet-stream'));
  headers.set('content-length', String(size));
  const stream = artifacts.openStream(sha256);
  return new Response(Readable.toWeb(stream) as ReadableStream<Uint8Array>, { status: 200, headers });
}
