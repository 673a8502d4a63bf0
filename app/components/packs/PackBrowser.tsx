'use client';
// Shared packs: the public packs and this studio's whole library, each downloadable and importable into a project;
// also the page a share link opens.
import { useMutation, useQuery } from '@tanstack/react-query';
import Link from 'next/link';
import { useId, useState } from 'react';
import { errorMessage } from '../../lib/format.ts';
import { useTRPC } from '../../lib/trpc.ts';
import { JobStatus } from '../JobStatus.tsx';
import { Alert, Button, EmptyState, Spinner } from '../ui.tsx';
import { PackCard, packDownloadUrl, type PackRow } from './PackCard.tsx';

function ImportInto({ pack, shareToken }: { pack: PackRow; shareToken?: string }) {
  const trpc = useTRPC();
  const projects = useQuery(trpc.projects.list.queryOptions());
  const [projectId, setProjectId] = useState('');
  const [job, setJob] = useState<{ id: string; projectId: string } | null>(null);
  const [done, setDone] = useState(false);
  const selectId = useId();
  const start = useMutation(trpc.packs.importIntoProject.mutationOptions({ onSuccess: (record) => (setJob({ id: record.id, projectId: record.projectId! }), setDone(false)) }));
  return (
    <div className="flex flex-wrap items-center gap-2">
      <label htmlFor={selectId} className="sr-only">
        Project to import {pack.name} into
      </label>
      <select id={selectId} value={projectId} onChange={(event) => setProjectId(event.target.value)} className="rounded-md border border-neutral-300 bg-white px-1.5 py-1 text-sm dark:border-neutral-700 dark:bg-neutral-800">
        <option value="">Import into project…</option>
        {(projects.data ?? []).map((project) => (
          <option key={project.id} value={project.id}>
            {project.name}
          </option>
        ))}
      </select>
      <Button size="sm" disabled={!projectId || start.isPending} onClick={() => start.mutate(shareToken ? { projectId, shareToken } : { projectId, packId: pack.id })}>
        {start.isPending && <Spinner className="size-3" />}
        Import
      </Button>
      {start.error && <span className="text-sm text-red-700 dark:text-red-400">{errorMessage(start.error)}</span>}
      {job && <JobStatus key={job.id} jobId={job.id} what="Importing" onFinished={(event) => setDone(event.kind === 'completed')} />}
      {job && done && (
        <Link href={`/projects/${job.projectId}/compose`} className="text-sm font-medium text-indigo-700 underline dark:text-indigo-300">
          Imported: compose with it →
        </Link>
      )}
    </div>
  );
}

export function PackBrowser() {
  const trpc = useTRPC();
  const [scope, setScope] = useState<'public' | 'library'>('public');
  const packs = useQuery(trpc.packs.list.queryOptions({ scope }));
  return (
    <div>
      <h1 className="text-2xl font-semibold tracking-tight">Shared packs</h1>
      <p className="mt-1 max-w-2xl text-sm text-neutral-600 dark:text-neutral-400">
        A pack is one .safetensors file with learned tokens (embeddings and LoRA): import it into a project to compose with its objects, or load it in AUTOMATIC1111, ComfyUI or diffusers.
      </p>
      <div role="tablist" aria-label="Which packs" className="mt-5 inline-flex rounded-lg bg-neutral-200/70 p-0.5 dark:bg-neutral-800">
        {(['public', 'library'] as const).map((value) => (
          <button
            key={value}
            type="button"
            role="tab"
            aria-selected={scope === value}
            onClick={() => setScope(value)}
            className={`rounded-md px-3 py-1.5 text-sm font-medium focus-visible:outline-2 focus-visible:outline-indigo-500 ${scope === value ? 'bg-white shadow-sm dark:bg-neutral-600' : 'text-neutral-700 dark:text-neutral-300'}`}
          >
            {value === 'public' ? 'Public' : 'All packs in this studio'}
          </button>
        ))}
      </div>
      <div className="mt-4">
        {packs.isPending && (
          <p className="flex items-center gap-2 text-sm text-neutral-600">
            <Spinner /> Loading packs…
          </p>
        )}
        {packs.error && <Alert tone="error">{errorMessage(packs.error)}</Alert>}
        {packs.data?.length === 0 && (
          <EmptyState title={scope === 'public' ? 'No public packs yet' : 'The library is empty'}>
            Export a pack from a project’s Share step (choose “Public” to list it here), or upload a .safetensors pack there.
          </EmptyState>
        )}
        <ul className="grid gap-3 lg:grid-cols-2">
          {(packs.data ?? []).map((pack) => (
            <li key={pack.id}>
              <PackCard
                pack={pack}
                actions={
                  <>
                    <a href={packDownloadUrl(pack)} download={pack.fileName} className="rounded-md bg-indigo-600 px-2.5 py-1 text-sm font-medium text-white hover:bg-indigo-500">
                      Download
                    </a>
                    <ImportInto pack={pack} />
                  </>
                }
              />
            </li>
          ))}
        </ul>
      </div>
    </div>
  );
}

export function SharedPack({ shareToken }: { shareToken: string }) {
  const trpc = useTRPC();
  const pack = useQuery(trpc.packs.byLink.queryOptions({ shareToken }));
  if (pack.isPending) return <Spinner />;
  if (pack.error) {
    return (
      <Alert tone="error" title="This link does not lead to a pack" action={<Link href="/packs" className="text-sm font-medium underline">Browse shared packs</Link>}>
        {pack.error.data?.code === 'NOT_FOUND' ? 'The link may have been replaced by a new one, or the pack made private. Ask whoever shared it for the current link.' : errorMessage(pack.error)}
      </Alert>
    );
  }
  return (
    <div className="max-w-3xl">
      <h1 className="mb-4 text-2xl font-semibold tracking-tight">A shared pack</h1>
      <PackCard
        pack={pack.data}
        actions={
          <>
            <a href={packDownloadUrl(pack.data)} download={pack.data.fileName} className="rounded-md bg-indigo-600 px-2.5 py-1 text-sm font-medium text-white hover:bg-indigo-500">
              Download
            </a>
            <ImportInto pack={pack.data} shareToken={shareToken} />
          </>
        }
      />
    </div>
  );
}
