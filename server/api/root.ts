import { artifactsRouter } from './routers/artifacts.ts';
import { jobsRouter } from './routers/jobs.ts';
import { masksRouter } from './routers/masks.ts';
import { packsRouter } from './routers/packs.ts';
import { projectsRouter } from './routers/projects.ts';
import { studioRouter } from './routers/studio.ts';
import { publicProcedure, router } from './trpc.ts';

export const appRouter = router({
  health: publicProcedure.query(() => ({ ok: true as const, time: new Date().toISOString() })),
  projects: projectsRouter,
  artifacts: artifactsRouter,
  jobs: jobsRouter,
  studio: studioRouter,
  masks: masksRouter,
  packs: packsRouter,
});

export type AppRouter = typeof appRouter;
