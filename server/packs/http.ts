// Downloads of library packs over plain HTTP, for a route such as app/api/packs/[sha256]/route.ts:
//   export async function GET(req: Request, { params }: { params: Promise<{ sha256: string }> }) {
//     return packDownloadResponse(req, (await params).sha256, await getServerServices());
//   }
// The address is the sha256 of the file, so a link always yields the same bytes; the name comes from the library.
import { artifactResponse } from '../http/artifacts.ts';
import type { ServerServices } from '../services.ts';
import { PackLibrary } from './library.ts';
import { packFileName } from './service.ts';

export async function packDownloadResponse(request: Request, sha256: string, services: Pick<ServerServices, 'db' | 'artifacts'>): Promise<Response> {
  if (!/^[0-9a-f]{64}$/.test(sha256)) return new Response('not a sha256\n', { status: 400 });
  const entry = new PackLibrary(services.db).bySha256(sha256);
  if (!entry) return new Response('no pack with this sha256 in the library\n', { status: 404 });
  const response = await artifactResponse(request, sha256, services.artifacts);
  if (response.status !== 200) return response;
  const headers = new Headers(response.headers);
  headers.set('content-type', 'application/octet-stream');
  headers.set('content-disposition', `attachment; filename="${packFileName(entry)}"`);
  return new Response(response.body, { status: 200, headers });
}
