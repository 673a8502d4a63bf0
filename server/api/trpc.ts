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

// Job event streams can be quiet for minutes (a slow step); pings keep proxies from closing them, and a client
// that hears nothing for 30 s reconnects (resuming from its last event id).
const t = initTRPC.context<Context>().create({
  sse: { ping: { enabled: true, intervalMs: 10_000 }, client: { reconnectAfterInactivityMs: 30_000 } },
});

export const router = t.router;
export const publicProcedure = t.procedure;
export const createCallerFactory = t.createCallerFactory;
