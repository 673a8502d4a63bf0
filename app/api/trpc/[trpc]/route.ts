import { fetchRequestHandler } from '@trpc/server/adapters/fetch';
import { appRouter } from '@/server/api/root.ts';
import { createContext } from '@/server/api/trpc.ts';
import { limitRequestBody, maxRequestBytes } from '@/server/http/body-limit.ts';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

const MAX_REQUEST_BYTES = maxRequestBytes();

function handler(req: Request): Promise<Response> {
  return fetchRequestHandler({ endpoint: '/api/trpc', req: limitRequestBody(req, MAX_REQUEST_BYTES), router: appRouter, createContext });
}

export { handler as GET, handler as POST };
