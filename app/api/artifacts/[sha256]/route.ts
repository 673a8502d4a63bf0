// Artifacts (photos, masks, previews, records, packs) over plain HTTP so <img src> works and browsers cache them by
// their content address.
import { artifactResponse } from '@/server/http/artifacts.ts';
import { getServerServices } from '@/server/services.ts';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

export async function GET(request: Request, { params }: { params: Promise<{ sha256: string }> }): Promise<Response> {
  return artifactResponse(request, (await params).sha256, (await getServerServices()).artifacts);
}
