'use client';
// A project's frame: its name (editable), and the four steps as tabs with what each still needs.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import Link from 'next/link';
import { usePathname } from 'next/navigation';
import { useEffect, useState, type ReactNode } from 'react';
import { artifactUrl } from '../lib/artifacts.ts';
import { errorMessage } from '../lib/format.ts';
import { useTRPC } from '../lib/trpc.ts';
import { Alert, Button, Spinner } from './ui.tsx';

function ProjectName({ projectId, name }: { projectId: string; name: string }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [draft, setDraft] = useState(name);
  useEffect(() => setDraft(name), [name]);
  const rename = useMutation(
    trpc.projects.update.mutationOptions({
      onSuccess: () => queryClient.invalidateQueries({ queryKey: trpc.projects.get.queryKey({ id: projectId }) }),
    }),
  );
  const save = () => {
    const next = draft.trim();
    if (next && next !== name) rename.mutate({ id: projectId, name: next });
    else setDraft(name);
  };
  return (
    <div>
      <label className="sr-only" htmlFor="project-name">
        Project name
      </label>
      <input
        id="project-name"
        value={draft}
        onChange={(event) => setDraft(event.target.value)}
        onBlur={save}
        onKeyDown={(event) => event.key === 'Enter' && (event.target as HTMLInputElement).blur()}
        maxLength={200}
        className="-ml-1.5 w-full max-w-xl rounded-md bg-transparent px-1.5 py-0.5 text-xl font-semibold tracking-tight hover:bg-neutral-200/60 focus:bg-white focus:outline-2 focus:outline-indigo-500 dark:hover:bg-neutral-800 dark:focus:bg-neutral-900"
      />
      {rename.error && <p className="text-sm text-red-700 dark:text-red-400">{errorMessage(rename.error)}</p>}
    </div>
  );
}

export function ProjectShell({ projectId, children }: { projectId: string; children: ReactNode }) {
  const trpc = useTRPC();
  const pathname = usePathname();
  const project = useQuery(trpc.projects.get.queryOptions({ id: projectId }));
  const tokens = useQuery(trpc.studio.tokens.queryOptions({ projectId }));

  if (project.isPending) {
    return (
      <p className="flex items-center gap-2 text-sm text-neutral-600">
        <Spinner /> Loading the project…
      </p>
    );
  }
  if (project.error) {
    const missing = project.error.data?.code === 'NOT_FOUND';
    return (
      <Alert tone="error" title={missing ? 'This project does not exist' : 'The project could not be loaded'} action={<Link href="/"><Button size="sm">All projects</Button></Link>}>
        {missing ? 'It may have been deleted. Open another one from the project list.' : `${errorMessage(project.error)} Reload the page to try again.`}
      </Alert>
    );
  }
  const detail = project.data;
  const withMasks = detail.instances.filter((instance) => instance.maskSha256).length;
  const learned = tokens.data?.filter((token) => token.source === 'learned').length ?? 0;
  const imported = tokens.data?.filter((token) => token.source === 'pack').length ?? 0;
  const steps = [
    { href: 'masks', label: 'Objects', hint: detail.instances.length ? `${withMasks}/${detail.instances.length} masked` : 'mark the objects' },
    { href: 'learn', label: 'Learn', hint: learned ? `${learned} token${learned === 1 ? '' : 's'} learned` : 'not learned yet' },
    { href: 'compose', label: 'Compose', hint: detail.generations.length ? `${detail.generations.length} image${detail.generations.length === 1 ? '' : 's'}` : 'new scenes' },
    { href: 'pack', label: 'Share', hint: imported ? `${imported} token${imported === 1 ? '' : 's'} imported` : 'export / import packs' },
  ];
  return (
    <div>
      <div className="flex items-center gap-3">
        {detail.photo && (
          // eslint-disable-next-line @next/next/no-img-element
          <img src={artifactUrl(detail.thumbnailSha256 ?? detail.photo.sha256)} alt="" className="size-11 rounded-md object-cover ring-1 ring-neutral-300 dark:ring-neutral-700" />
        )}
        <div className="min-w-0 flex-1">
          <Link href="/" className="text-xs font-medium text-neutral-500 hover:underline">
            ← All projects
          </Link>
          <ProjectName projectId={projectId} name={detail.name} />
        </div>
      </div>
      <nav aria-label="Project steps" className="mt-4 border-b border-neutral-200 dark:border-neutral-800">
        <ol className="-mb-px flex gap-1 overflow-x-auto">
          {steps.map((step, i) => {
            const href = `/projects/${projectId}/${step.href}`;
            const active = pathname === href;
            return (
              <li key={step.href}>
                <Link
                  href={href}
                  aria-current={active ? 'page' : undefined}
                  className={`flex flex-col border-b-2 px-4 pb-2 pt-1 focus-visible:outline-2 focus-visible:outline-indigo-500 ${active ? 'border-indigo-600 text-indigo-700 dark:text-indigo-300' : 'border-transparent text-neutral-600 hover:border-neutral-300 hover:text-neutral-900 dark:text-neutral-400 dark:hover:text-neutral-100'}`}
                >
                  <span className="text-sm font-semibold">
                    {i + 1}. {step.label}
                  </span>
                  <span className="text-xs opacity-80">{step.hint}</span>
                </Link>
              </li>
            );
          })}
        </ol>
      </nav>
      <div className="pt-5">{children}</div>
    </div>
  );
}
