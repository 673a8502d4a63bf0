// tRPC v11 setup shared by every router. The web server never computes: routers read storage and enqueue jobs.
import { initTRPC } from '@trpc/server';
import { getServerServices, type ServerServices } from '../services.ts';

export interface Context {
  requestId: string;
  /** opened on first use, so requests that need no storage (health) never touch it */
  services: () => Promise<ServerServices>;
}

export function createContext(): Context {
  return { requestId: crypto.randomUUID(), services: getServerServices };
}

const t = initTRPC.context<Context>().create();

export const router = t.router;
export const publicProcedure = t.procedure;
export const createCallerFactory = t.createCallerFactory;
