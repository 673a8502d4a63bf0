import { publicProcedure, router } from './trpc.ts';

export const appRouter = router({
  health: publicProcedure.query(() => ({ ok: true as const, time: new Date().toISOString() })),
});

export type AppRouter = typeof appRouter;
