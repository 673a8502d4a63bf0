// Pack downloads by sha256 (the same link always yields the same bytes), named after the library entry.
import { packDownloadResponse } from '@/server/packs/http.ts';
import { getServerServices } from '@/server/services.ts';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

export async function GET(request: Request, { params }: { params: Promise<{ sha256: string }> }): Promise<Response> {
  return packDownloadResponse(request, (await params).sha256, await getServerServices());
}
