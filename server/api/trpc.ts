// tRPC v11 setup shared by every router. The web server never computes: routers read storage and enqueue jobs.
import { initTRPC } from '@trpc/server';

export interface Context {
  requestId: string;
}

export function createContext(): Context {
  return { requestId: crypto.randomUUID() };
}

const t = initTRPC.context<Context>().create();

export const router = t.router;
export const publicProcedure = t.procedure;
export const createCallerFactory = t.createCallerFactory;
