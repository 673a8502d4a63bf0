'use client';
// The project list (newest first, with thumbnails), a new project from a photo, and the sample photos.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import Link from 'next/link';
import { useRouter } from 'next/navigation';
import { useState } from 'react';
import { artifactUrl } from '../lib/artifacts.ts';
import { errorMessage, formatAgo } from '../lib/format.ts';
import { useTRPC } from '../lib/trpc.ts';
import { NewProjectDialog } from './NewProjectDialog.tsx';
import { Alert, Button, EmptyState, Spinner } from './ui.tsx';

function Samples() {
  const trpc = useTRPC();
  const router = useRouter();
  const samples = useQuery(trpc.studio.samples.queryOptions());
  const open = useMutation(trpc.studio.openSample.mutationOptions({ onSuccess: (project) => router.push(`/projects/${project.id}/masks`) }));
  if (!samples.data?.length) return null;
  return (
    <section aria-labelledby="samples-title" className="mt-12">
      <h2 id="samples-title" className="text-lg font-semibold">
        Try a sample
      </h2>
      <p className="mt-1 text-sm text-neutral-600 dark:text-neutral-400">Photos from the procedural world the default model knows. Open one with its masks ready, or mark the objects yourself with click-to-segment.</p>
      {open.error && (
        <div className="mt-3">
          <Alert tone="error" title="The sample could not be opened">
            {errorMessage(open.error)}
          </Alert>
        </div>
      )}
      <ul className="mt-4 grid gap-4 sm:grid-cols-2 lg:grid-cols-3">
        {samples.data.map((sample) => (
          <li key={sample.id} className="flex overflow-hidden rounded-xl border border-neutral-200 bg-white shadow-sm dark:border-neutral-800 dark:bg-neutral-900" data-testid={`sample-${sample.id}`}>
            {/* eslint-disable-next-line @next/next/no-img-element */}
            <img src={sample.photo} alt="" className="size-32 shrink-0 object-cover" />
            <div className="flex min-w-0 flex-1 flex-col p-3">
              <p className="font-medium">{sample.title}</p>
              <p className="mt-0.5 line-clamp-2 text-xs text-neutral-600 dark:text-neutral-400">{sample.caption}</p>
              <div className="mt-auto flex flex-wrap gap-1.5 pt-2">
                <Button size="sm" variant="primary" disabled={open.isPending} onClick={() => open.mutate({ sampleId: sample.id, withMasks: true })}>
                  Open with masks
                </Button>
                <Button size="sm" disabled={open.isPending} onClick={() => open.mutate({ sampleId: sample.id, withMasks: false })}>
                  Mark objects myself
                </Button>
              </div>
            </div>
          </li>
        ))}
      </ul>
    </section>
  );
}

export function ProjectsHome() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [creating, setCreating] = useState(false);
  const projects = useQuery(trpc.projects.list.queryOptions());
  const remove = useMutation(trpc.projects.delete.mutationOptions({ onSuccess: () => queryClient.invalidateQueries({ queryKey: trpc.projects.list.queryKey() }) }));

  return (
    <div>
      <div className="flex flex-wrap items-end justify-between gap-4">
        <div>
          <h1 className="text-2xl font-semibold tracking-tight">Projects</h1>
          <p className="mt-1 max-w-2xl text-sm text-neutral-600 dark:text-neutral-400">
            One photo per project: mark its objects, learn one token for each, then compose them in new scenes with a box per object.
          </p>
        </div>
        <Button variant="primary" onClick={() => setCreating(true)}>
          New project from a photo
        </Button>
      </div>
      <NewProjectDialog open={creating} onClose={() => setCreating(false)} />

      <div className="mt-6">
        {projects.isPending && (
          <p className="flex items-center gap-2 text-sm text-neutral-600">
            <Spinner /> Loading projects…
          </p>
        )}
        {projects.error && <Alert tone="error" title="The projects could not be loaded">{errorMessage(projects.error)} Reload the page; if it persists, check the server log.</Alert>}
        {remove.error && <Alert tone="error" title="The project was not deleted">{errorMessage(remove.error)}</Alert>}
        {projects.data?.length === 0 && (
          <EmptyState title="No projects yet" action={<Button variant="primary" onClick={() => setCreating(true)}>New project from a photo</Button>}>
            Start from your own photo, or open a sample below: its objects are already marked, so you can go straight to learning.
          </EmptyState>
        )}
        {projects.data && projects.data.length > 0 && (
          <ul className="grid grid-cols-2 gap-4 sm:grid-cols-3 lg:grid-cols-4 xl:grid-cols-5" aria-label="Projects">
            {projects.data.map((project) => (
              <li key={project.id} className="group relative overflow-hidden rounded-xl border border-neutral-200 bg-white shadow-sm transition-shadow focus-within:ring-2 focus-within:ring-indigo-500 hover:shadow-md dark:border-neutral-800 dark:bg-neutral-900">
                <Link href={`/projects/${project.id}/masks`} className="block focus:outline-none" data-testid="project-card">
                  <div className="aspect-square bg-neutral-100 dark:bg-neutral-800">
                    {(project.thumbnailSha256 ?? project.photo?.sha256) && (
                      // eslint-disable-next-line @next/next/no-img-element
                      <img src={artifactUrl((project.thumbnailSha256 ?? project.photo?.sha256)!)} alt="" className="size-full object-cover" loading="lazy" />
                    )}
                  </div>
                  <div className="p-3">
                    <p className="truncate font-medium">{project.name}</p>
                    <p className="text-xs text-neutral-500">updated {formatAgo(project.updatedAt)}</p>
                  </div>
                </Link>
                <button
                  type="button"
                  aria-label={`Delete ${project.name}`}
                  disabled={remove.isPending}
                  onClick={() => {
                    if (window.confirm(`Delete “${project.name}” with its masks, learned tokens and images? This cannot be undone.`)) remove.mutate({ id: project.id });
                  }}
                  className="absolute right-2 top-2 rounded-md bg-white/90 px-2 py-1 text-xs font-medium text-red-700 opacity-0 shadow transition-opacity focus:opacity-100 group-hover:opacity-100 dark:bg-neutral-900/90 dark:text-red-400"
                >
                  Delete
                </button>
              </li>
            ))}
          </ul>
        )}
      </div>
      <Samples />
    </div>
  );
}
