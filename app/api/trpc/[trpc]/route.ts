import { fetchRequestHandler } from '@trpc/server/adapters/fetch';
import { appRouter } from '@/server/api/root.ts';
import { createContext } from '@/server/api/trpc.ts';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

function handler(req: Request): Promise<Response> {
  return fetchRequestHandler({ endpoint: '/api/trpc', req, router: appRouter, createContext });
}

export { handler as GET, handler as POST };
