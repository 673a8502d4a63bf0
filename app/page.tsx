import { appRouter } from '@/server/api/root.ts';
import { createCallerFactory, createContext } from '@/server/api/trpc.ts';

export const dynamic = 'force-dynamic';

export default async function Home() {
  const caller = createCallerFactory(appRouter)(createContext());
  const health = await caller.health();
  return (
    <main className="mx-auto max-w-3xl p-8">
      <h1 className="text-3xl font-semibold">MIFO Studio</h1>
      <p className="mt-2 text-neutral-600 dark:text-neutral-400">
        Learn several objects from one photo, then recompose them in new scenes with a box for each.
      </p>
      <p className="mt-6 text-sm" data-testid="server-status">
        Server {health.ok ? 'ready' : 'unavailable'} · {health.time}
      </p>
    </main>
  );
}
