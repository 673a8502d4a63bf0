'use client';
// Step 4: share. Export the learned tokens as a pack (one .safetensors file that A1111, ComfyUI and diffusers load
// too), manage this project's packs and their links, and import packs (a file, a share link, or one from the
// library) into this project so compose can use their tokens.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import Link from 'next/link';
import { useId, useRef, useState } from 'react';
import type { JobEvent } from '@/server/jobs/contract.ts';
import { withTokenColors } from '../../lib/colors.ts';
import { errorMessage } from '../../lib/format.ts';
import { useTRPC } from '../../lib/trpc.ts';
import { JobStatus } from '../JobStatus.tsx';
import { Alert, Button, Card, EmptyState, SectionTitle, Spinner, TokenChip } from '../ui.tsx';
import { PackCard, packDownloadUrl, type PackRow } from './PackCard.tsx';

const VISIBILITY = [
  { id: 'private', label: 'Private', hint: 'only in this studio' },
  { id: 'unlisted', label: 'Unlisted link', hint: 'anyone with the link' },
  { id: 'public', label: 'Public', hint: 'listed under Shared packs' },
] as const;

function shareUrl(pack: PackRow): string {
  return `${typeof window === 'undefined' ? '' : window.location.origin}/packs/${pack.shareToken}`;
}

/** The share token from a pasted link (…/packs/<token>) or the bare token. */
function shareTokenOf(text: string): string | null {
  const match = /(?:\/packs\/)?([A-Za-z0-9_-]{8,64})\/?$/.exec(text.trim());
  return match ? match[1]! : null;
}

function CopyLink({ pack }: { pack: PackRow }) {
  const [copied, setCopied] = useState<'copied' | 'refused' | null>(null);
  if (pack.visibility === 'private') return null;
  return (
    <>
      <Button
        size="sm"
        onClick={async () => {
          // the clipboard is only there on https or localhost, and the browser may refuse it: then the link is shown
          const written = await (navigator.clipboard?.writeText(shareUrl(pack)).then(() => true, () => false) ?? Promise.resolve(false));
          setCopied(written ? 'copied' : 'refused');
          if (written) setTimeout(() => setCopied(null), 1500);
        }}
        title={shareUrl(pack)}
      >
        {copied === 'copied' ? 'Link copied' : 'Copy share link'}
      </Button>
      {copied === 'refused' && (
        <input
          readOnly
          autoFocus
          value={shareUrl(pack)}
          onFocus={(event) => event.currentTarget.select()}
          aria-label="Share link (the browser did not allow copying: copy it from here)"
          className="w-72 rounded-md border border-neutral-300 bg-white px-2 py-1 text-xs dark:border-neutral-700 dark:bg-neutral-900"
        />
      )}
    </>
  );
}

function ProjectPacks({ projectId }: { projectId: string }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const packs = useQuery(trpc.packs.list.queryOptions({ scope: 'library', projectId }));
  const invalidate = () => queryClient.invalidateQueries({ queryKey: trpc.packs.list.queryKey() });
  const setVisibility = useMutation(trpc.packs.setVisibility.mutationOptions({ onSuccess: invalidate }));
  const remove = useMutation(trpc.packs.delete.mutationOptions({ onSuccess: invalidate }));
  if (!packs.data?.length) return null;
  return (
    <Card>
      <SectionTitle>This project’s packs</SectionTitle>
      {(setVisibility.error || remove.error) && <Alert tone="error">{errorMessage(setVisibility.error ?? remove.error)}</Alert>}
      <ul className="space-y-3">
        {packs.data.map((pack) => (
          <li key={pack.id}>
            <PackCard
              pack={pack}
              actions={
                <>
                  <a href={packDownloadUrl(pack)} download={pack.fileName} className="rounded-md bg-indigo-600 px-2.5 py-1 text-sm font-medium text-white hover:bg-indigo-500" data-testid="pack-download">
                    Download .safetensors
                  </a>
                  <CopyLink pack={pack} />
                  <label className="flex items-center gap-1 text-sm">
                    <span className="sr-only">Visibility of {pack.name}</span>
                    <select value={pack.visibility} onChange={(event) => setVisibility.mutate({ id: pack.id, visibility: event.target.value as PackRow['visibility'] })} className="rounded-md border border-neutral-300 bg-white px-1.5 py-1 text-sm dark:border-neutral-700 dark:bg-neutral-800">
                      {VISIBILITY.map((v) => (
                        <option key={v.id} value={v.id}>
                          {v.label}
                        </option>
                      ))}
                    </select>
                  </label>
                  <Button size="sm" variant="ghost" className="text-red-700 dark:text-red-400" onClick={() => remove.mutate({ id: pack.id })}>
                    Remove from library
                  </Button>
                </>
              }
            />
          </li>
        ))}
      </ul>
    </Card>
  );
}

function ExportPack({ projectId, projectName }: { projectId: string; projectName: string }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const tokens = useQuery(trpc.studio.tokens.queryOptions({ projectId }));
  const [name, setName] = useState(projectName);
  const [note, setNote] = useState('');
  const [visibility, setVisibility] = useState<PackRow['visibility']>('unlisted');
  const [jobId, setJobId] = useState<string | null>(null);
  const [outcome, setOutcome] = useState<JobEvent['kind'] | null>(null);
  const nameId = useId();
  const noteId = useId();
  const publish = useMutation(trpc.packs.publish.mutationOptions({ onSuccess: (job) => (setJobId(job.id), setOutcome(null)) }));
  const learned = (tokens.data ?? []).filter((token) => token.source === 'learned');
  if (tokens.isPending) return null;
  if (learned.length === 0) {
    return (
      <EmptyState title="Nothing to export yet" action={<Link href={`/projects/${projectId}/learn`} className="rounded-md bg-indigo-600 px-3.5 py-2 text-sm font-medium text-white hover:bg-indigo-500">Go to Learn</Link>}>
        A pack carries the tokens learned from this photo. Learn them first.
      </EmptyState>
    );
  }
  return (
    <Card>
      <SectionTitle hint="One .safetensors file with the token embeddings and the LoRA, loadable in AUTOMATIC1111, ComfyUI and diffusers too (docs/packs.md).">Export the learned tokens as a pack</SectionTitle>
      <div className="mb-3 flex flex-wrap gap-1.5">
        {learned.map((token) => (
          <TokenChip key={token.conceptId} token={token.token} color={token.color} />
        ))}
      </div>
      <div className="grid gap-3 sm:grid-cols-2">
        <div>
          <label htmlFor={nameId} className="mb-1 block text-sm font-medium">
            Pack name
          </label>
          <input id={nameId} value={name} maxLength={100} onChange={(event) => setName(event.target.value)} className="w-full rounded-md border border-neutral-300 bg-white px-2.5 py-1.5 text-sm dark:border-neutral-700 dark:bg-neutral-800" />
        </div>
        <fieldset>
          <legend className="mb-1 text-sm font-medium">Who can get it</legend>
          <div className="flex flex-wrap gap-3">
            {VISIBILITY.map((v) => (
              <label key={v.id} className="flex items-center gap-1.5 text-sm" title={v.hint}>
                <input type="radio" name="visibility" checked={visibility === v.id} onChange={() => setVisibility(v.id)} className="accent-indigo-600" />
                {v.label}
              </label>
            ))}
          </div>
        </fieldset>
        <div className="sm:col-span-2">
          <label htmlFor={noteId} className="mb-1 block text-sm font-medium">
            Note <span className="font-normal text-neutral-500">(optional: what it is, how to prompt it)</span>
          </label>
          <textarea id={noteId} value={note} rows={2} maxLength={4000} onChange={(event) => setNote(event.target.value)} className="w-full rounded-md border border-neutral-300 bg-white px-2.5 py-1.5 text-sm dark:border-neutral-700 dark:bg-neutral-800" />
        </div>
      </div>
      {publish.error && (
        <div className="mt-3">
          <Alert tone="error" title="Not exported">
            {errorMessage(publish.error)}
          </Alert>
        </div>
      )}
      <div className="mt-4 flex flex-wrap items-center gap-3">
        <Button variant="primary" onClick={() => publish.mutate({ projectId, name: name.trim() || undefined, note: note || undefined, visibility })} disabled={publish.isPending || (jobId !== null && outcome === null)}>
          {publish.isPending && <Spinner />}
          Export pack
        </Button>
        {jobId && (
          <JobStatus
            key={jobId}
            jobId={jobId}
            what="Exporting the pack"
            onFinished={(event) => {
              setOutcome(event.kind);
              void queryClient.invalidateQueries({ queryKey: trpc.packs.list.queryKey() });
            }}
          />
        )}
        {jobId && outcome === 'completed' && <span className="text-sm text-emerald-700 dark:text-emerald-400" data-testid="pack-exported">Exported: download it below.</span>}
      </div>
    </Card>
  );
}

function ImportPack({ projectId }: { projectId: string }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const library = useQuery(trpc.packs.list.queryOptions({ scope: 'library' }));
  const upload = useMutation(trpc.packs.upload.mutationOptions());
  const importPack = useMutation(trpc.packs.importIntoProject.mutationOptions({ onSuccess: (job) => (setJobId(job.id), setDone(false)) }));
  const [jobId, setJobId] = useState<string | null>(null);
  const [done, setDone] = useState(false);
  const [link, setLink] = useState('');
  const [problem, setProblem] = useState<string | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const linkId = useId();
  const tokens = useQuery(trpc.studio.tokens.queryOptions({ projectId }));

  const fromFile = async (file: File | undefined) => {
    if (!file) return;
    setProblem(null);
    if (!/\.safetensors$/i.test(file.name)) {
      setProblem(`${file.name} is not a .safetensors pack: export one from a project’s Share step, or pick a file ending in .safetensors.`);
      return;
    }
    try {
      const form = new FormData();
      form.set('file', file, file.name);
      const entry = await upload.mutateAsync(form);
      await queryClient.invalidateQueries({ queryKey: trpc.packs.list.queryKey() });
      importPack.mutate({ projectId, packId: entry.id });
    } catch (error) {
      setProblem(`${file.name} was not accepted: ${errorMessage(error)}`);
    } finally {
      if (fileInput.current) fileInput.current.value = '';
    }
  };

  const others = (library.data ?? []).filter((pack) => pack.projectId !== projectId);
  const imported = withTokenColors(tokens.data ?? []).filter((token) => token.source === 'pack');
  return (
    <Card>
      <SectionTitle hint="Its tokens join this project's, ready for compose. Packs are checked before anything is written; a pack for another base model is refused.">Import a pack into this project</SectionTitle>
      <div className="flex flex-wrap items-end gap-3">
        <Button onClick={() => fileInput.current?.click()} disabled={upload.isPending || importPack.isPending}>
          {upload.isPending && <Spinner />}
          Upload a .safetensors pack…
        </Button>
        <input ref={fileInput} type="file" accept=".safetensors" className="sr-only" aria-label="Pack file" data-testid="pack-file-input" onChange={(event) => void fromFile(event.target.files?.[0])} />
        <form
          className="flex flex-1 items-end gap-2"
          onSubmit={(event) => {
            event.preventDefault();
            const token = shareTokenOf(link);
            if (!token) return setProblem('Paste a share link such as https://…/packs/AbCdEf12…');
            setProblem(null);
            importPack.mutate({ projectId, shareToken: token });
          }}
        >
          <div className="flex-1">
            <label htmlFor={linkId} className="mb-1 block text-sm font-medium">
              or a share link
            </label>
            <input id={linkId} value={link} onChange={(event) => setLink(event.target.value)} placeholder="https://…/packs/…" className="w-full rounded-md border border-neutral-300 bg-white px-2.5 py-1.5 text-sm dark:border-neutral-700 dark:bg-neutral-800" />
          </div>
          <Button type="submit" disabled={!link.trim() || importPack.isPending}>
            Import
          </Button>
        </form>
      </div>
      {others.length > 0 && (
        <details className="mt-3 text-sm">
          <summary className="cursor-pointer font-medium">or one of the {others.length} other pack{others.length === 1 ? '' : 's'} in this studio</summary>
          <ul className="mt-2 space-y-2">
            {others.map((pack) => (
              <li key={pack.id}>
                <PackCard pack={pack} actions={<Button size="sm" onClick={() => importPack.mutate({ projectId, packId: pack.id })} disabled={importPack.isPending}>Import into this project</Button>} />
              </li>
            ))}
          </ul>
        </details>
      )}
      {(problem || importPack.error) && (
        <div className="mt-3">
          <Alert tone="error" title="Not imported">
            {problem ?? errorMessage(importPack.error)}
          </Alert>
        </div>
      )}
      {jobId && (
        <div className="mt-3">
          <JobStatus
            key={jobId}
            jobId={jobId}
            what="Importing the pack"
            onFinished={(event) => {
              setDone(event.kind === 'completed');
              void queryClient.invalidateQueries({ queryKey: trpc.studio.tokens.queryKey({ projectId }) });
              void queryClient.invalidateQueries({ queryKey: trpc.projects.get.queryKey({ id: projectId }) });
            }}
          />
        </div>
      )}
      {imported.length > 0 && (
        <div className="mt-4 flex flex-wrap items-center gap-2 text-sm" data-testid="imported-tokens">
          {done ? 'Imported.' : 'Imported tokens:'}
          {imported.map((token) => (
            <TokenChip key={token.conceptId} token={token.token} color={token.color} />
          ))}
          <Link href={`/projects/${projectId}/compose`} className="ml-auto rounded-md bg-indigo-600 px-3 py-1.5 font-medium text-white hover:bg-indigo-500">
            Compose with them →
          </Link>
        </div>
      )}
    </Card>
  );
}

export function SharePanel({ projectId }: { projectId: string }) {
  const trpc = useTRPC();
  const project = useQuery(trpc.projects.get.queryOptions({ id: projectId }));
  if (!project.data) return null;
  return (
    <div className="space-y-5">
      <ExportPack projectId={projectId} projectName={project.data.name} />
      <ProjectPacks projectId={projectId} />
      <ImportPack projectId={projectId} />
    </div>
  );
}
