'use client';
import { useQuery } from '@tanstack/react-query';
import Link from 'next/link';
import { usePathname } from 'next/navigation';
import { useTRPC } from '../lib/trpc.ts';

function ModelBadge() {
  const trpc = useTRPC();
  const model = useQuery(trpc.studio.model.queryOptions());
  if (!model.data) return null;
  if (!model.data.available) {
    return (
      <span className="rounded-full bg-red-100 px-2.5 py-1 text-xs font-medium text-red-800 dark:bg-red-950 dark:text-red-200" title={model.data.problem}>
        No base model: set MIFO_MODEL
      </span>
    );
  }
  return (
    <span className="rounded-full bg-neutral-200/80 px-2.5 py-1 text-xs text-neutral-700 dark:bg-neutral-800 dark:text-neutral-300" title={model.data.dir} data-testid="model-badge">
      model <span className="font-semibold">{model.data.name}</span> · {model.data.resolution} px
    </span>
  );
}

export function Header() {
  const pathname = usePathname();
  const link = (href: string, label: string, active: boolean) => (
    <Link
      href={href}
      aria-current={active ? 'page' : undefined}
      className={`rounded-md px-3 py-1.5 text-sm font-medium focus-visible:outline-2 focus-visible:outline-indigo-500 ${active ? 'bg-neutral-200 dark:bg-neutral-800' : 'text-neutral-600 hover:bg-neutral-200/60 dark:text-neutral-400 dark:hover:bg-neutral-800/60'}`}
    >
      {label}
    </Link>
  );
  return (
    <header className="sticky top-0 z-30 border-b border-neutral-200 bg-white/85 backdrop-blur dark:border-neutral-800 dark:bg-neutral-950/85">
      <div className="mx-auto flex h-14 max-w-7xl items-center gap-4 px-4 sm:px-6">
        <Link href="/" className="flex items-center gap-2 font-semibold tracking-tight focus-visible:outline-2 focus-visible:outline-indigo-500">
          <span aria-hidden className="grid size-7 place-items-center rounded-md bg-indigo-600 text-xs font-bold text-white">M</span>
          MIFO Studio
        </Link>
        <nav aria-label="Main" className="flex gap-1">
          {link('/', 'Projects', pathname === '/' || pathname.startsWith('/projects'))}
          {link('/packs', 'Shared packs', pathname.startsWith('/packs'))}
        </nav>
        <div className="ml-auto">
          <ModelBadge />
        </div>
      </div>
    </header>
  );
}
