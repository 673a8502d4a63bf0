'use client';
// The project's instances: colour, name (= token), mask status; select to edit, rename, reorder, delete; import
// masks as PNG files or from SAM automatic-mask-generator JSON.
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useEffect, useRef, useState } from 'react';
import { nextInstanceColor } from '../../lib/colors.ts';
import { errorMessage } from '../../lib/format.ts';
import { useTRPC, type InstanceRow } from '../../lib/trpc.ts';
import { Button, Card, EmptyState, Spinner } from '../ui.tsx';
import { freeInstanceName, instanceNameProblem } from './names.ts';
import { SamJsonDialog, type Candidate } from './SamJsonDialog.tsx';

function maskSourceLabel(source: string | undefined): string {
  return { sam: 'click-to-segment mask', brush: 'painted mask', import: 'imported mask', sample: 'sample mask' }[source ?? ''] ?? 'mask';
}

function NameField({ instance, others, onSaved }: { instance: InstanceRow; others: string[]; onSaved: () => void }) {
  const trpc = useTRPC();
  const [draft, setDraft] = useState(instance.name);
  const [problem, setProblem] = useState<string | null>(null);
  const rename = useMutation(trpc.projects.updateInstance.mutationOptions({ onSuccess: onSaved, onError: (error) => setProblem(errorMessage(error)) }));
  useEffect(() => setDraft(instance.name), [instance.name]);
  const commit = () => {
    const name = draft.trim();
    if (name === instance.name) return setProblem(null);
    const issue = instanceNameProblem(name, others);
    setProblem(issue);
    if (!issue) rename.mutate({ id: instance.id, name });
  };
  return (
    <div className="min-w-0 flex-1">
      <label className="sr-only" htmlFor={`name-${instance.id}`}>
        Name of this instance (its token)
      </label>
      <div className="flex min-w-0 items-center gap-0.5 font-mono text-sm" title="The instance's name is its token in prompts">
        <span aria-hidden className="text-neutral-400">&lt;</span>
        <input
          id={`name-${instance.id}`}
          value={draft}
          onChange={(event) => setDraft(event.target.value)}
          onBlur={commit}
          onKeyDown={(event) => {
            if (event.key === 'Enter') (event.target as HTMLInputElement).blur();
            if (event.key === 'Escape') setDraft(instance.name);
          }}
          aria-invalid={Boolean(problem)}
          aria-describedby={problem ? `name-problem-${instance.id}` : undefined}
          data-testid="instance-name"
          maxLength={64}
          style={{ width: `${Math.max(4, draft.length + 1)}ch` }}
          className="min-w-0 max-w-full rounded border border-transparent bg-transparent px-1 py-0.5 font-semibold hover:border-neutral-300 focus:border-indigo-500 focus:bg-white focus:outline-none dark:hover:border-neutral-600 dark:focus:bg-neutral-800"
        />
        <span aria-hidden className="text-neutral-400">&gt;</span>
      </div>
      {problem && (
        <p id={`name-problem-${instance.id}`} className="mt-0.5 text-xs text-red-700 dark:text-red-400">
          {problem}
        </p>
      )}
    </div>
  );
}

export function InstancePanel({
  projectId,
  photo,
  instances,
  selectedId,
  onSelect,
  onProblem,
}: {
  projectId: string;
  photo: { width: number; height: number; sha256: string };
  instances: InstanceRow[];
  selectedId: string | null;
  onSelect: (id: string | null) => void;
  onProblem: (message: string | null) => void;
}) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const invalidate = () => queryClient.invalidateQueries({ queryKey: trpc.projects.get.queryKey({ id: projectId }) });
  const remove = useMutation(trpc.projects.deleteInstance.mutationOptions({ onSuccess: invalidate, onError: (error) => onProblem(errorMessage(error)) }));
  const reorder = useMutation(trpc.projects.reorderInstances.mutationOptions({ onSuccess: invalidate, onError: (error) => onProblem(errorMessage(error)) }));
  const upload = useMutation(trpc.masks.upload.mutationOptions());
  const addInstance = useMutation(trpc.projects.addInstance.mutationOptions());
  const importJson = useMutation(trpc.masks.importSamJson.mutationOptions());
  const [importing, setImporting] = useState(false);
  const [candidates, setCandidates] = useState<{ total: number; candidates: Candidate[] } | null>(null);
  const pngInput = useRef<HTMLInputElement>(null);
  const jsonInput = useRef<HTMLInputElement>(null);

  const move = (index: number, delta: number) => {
    const ids = instances.map((i) => i.id);
    const [moved] = ids.splice(index, 1);
    ids.splice(index + delta, 0, moved!);
    reorder.mutate({ projectId, ids });
  };

  const importPngs = async (files: FileList | null) => {
    if (!files?.length) return;
    setImporting(true);
    onProblem(null);
    const taken = instances.map((i) => i.name);
    const colors = instances.map((i) => i.color);
    const failures: string[] = [];
    for (const file of Array.from(files)) {
      try {
        const form = new FormData();
        form.set('projectId', projectId);
        form.set('file', file, file.name);
        const stored = await upload.mutateAsync(form);
        const name = freeInstanceName(file.name, taken);
        const color = nextInstanceColor(colors);
        await addInstance.mutateAsync({ projectId, name, maskSha256: stored.sha256, color, prompts: { source: 'import', file: file.name } });
        taken.push(name);
        colors.push(color);
      } catch (error) {
        failures.push(`${file.name}: ${errorMessage(error)}`);
      }
    }
    setImporting(false);
    if (pngInput.current) pngInput.current.value = '';
    await invalidate();
    if (failures.length) onProblem(`Some masks were not imported. ${failures.join(' ')}`);
  };

  const importSamJson = async (file: File | undefined) => {
    if (!file) return;
    onProblem(null);
    const form = new FormData();
    form.set('projectId', projectId);
    form.set('file', file, file.name);
    try {
      setCandidates(await importJson.mutateAsync(form));
    } catch (error) {
      onProblem(`${file.name} was not imported: ${errorMessage(error)}`);
    } finally {
      if (jsonInput.current) jsonInput.current.value = '';
    }
  };

  const addCandidates = async (chosen: Candidate[]) => {
    setCandidates(null);
    setImporting(true);
    const taken = instances.map((i) => i.name);
    const colors = instances.map((i) => i.color);
    try {
      for (const candidate of chosen) {
        const name = freeInstanceName('object', taken);
        const color = nextInstanceColor(colors);
        await addInstance.mutateAsync({ projectId, name, maskSha256: candidate.sha256, color, prompts: { source: 'import', samIndex: candidate.index } });
        taken.push(name);
        colors.push(color);
      }
    } catch (error) {
      onProblem(`Not every mask was added: ${errorMessage(error)}`);
    }
    setImporting(false);
    await invalidate();
  };

  const names = instances.map((i) => i.name);
  return (
    <Card>
      <div className="mb-3 flex items-center justify-between gap-2">
        <h2 className="text-base font-semibold">Instances</h2>
        <Button size="sm" onClick={() => onSelect(null)} title="The next click on the photo adds a new instance (N)">
          + New instance
        </Button>
      </div>
      {instances.length === 0 ? (
        <EmptyState title="No instances yet">Click an object in the photo: it becomes an instance with its own mask. Name it after what it is; the name becomes its token.</EmptyState>
      ) : (
        <ol className="space-y-2" aria-label="Instances" data-testid="instance-list">
          {instances.map((instance, index) => {
            const selected = instance.id === selectedId;
            return (
              <li
                key={instance.id}
                data-testid="instance-row"
                className={`rounded-lg border p-2 ${selected ? 'border-indigo-500 bg-indigo-50/70 dark:bg-indigo-950/40' : 'border-neutral-200 dark:border-neutral-800'}`}
              >
                <div className="flex items-center gap-1.5">
                  <span aria-hidden className="size-4 shrink-0 rounded-full ring-2 ring-white dark:ring-neutral-900" style={{ backgroundColor: instance.color ?? '#4f46e5' }} />
                  <NameField instance={instance} others={names.filter((n) => n !== instance.name)} onSaved={invalidate} />
                </div>
                <div className="mt-1 flex items-center gap-1 pl-5">
                  <p className={`mr-auto min-w-0 truncate text-xs ${instance.maskSha256 ? 'text-neutral-500' : 'font-medium text-amber-700 dark:text-amber-400'}`}>
                    {instance.maskSha256 ? maskSourceLabel((instance.prompts as { source?: string }).source) : 'no mask yet: click the object'}
                  </p>
                  <Button size="sm" variant={selected ? 'primary' : 'secondary'} aria-pressed={selected} onClick={() => onSelect(selected ? null : instance.id)} className="shrink-0">
                    {selected ? 'Editing' : 'Edit'}
                  </Button>
                  <Button size="sm" variant="ghost" className="shrink-0 px-1.5" aria-label={`Move ${instance.name} up`} disabled={index === 0 || reorder.isPending} onClick={() => move(index, -1)}>
                    ↑
                  </Button>
                  <Button size="sm" variant="ghost" className="shrink-0 px-1.5" aria-label={`Move ${instance.name} down`} disabled={index === instances.length - 1 || reorder.isPending} onClick={() => move(index, 1)}>
                    ↓
                  </Button>
                  <Button
                    size="sm"
                    variant="ghost"
                    aria-label={`Delete ${instance.name}`}
                    className="shrink-0 px-1.5 text-red-700 dark:text-red-400"
                    disabled={remove.isPending}
                    onClick={() => {
                      if (selected) onSelect(null);
                      remove.mutate({ id: instance.id });
                    }}
                  >
                    ✕
                  </Button>
                </div>
              </li>
            );
          })}
        </ol>
      )}
      <div className="mt-4 border-t border-neutral-200 pt-3 dark:border-neutral-800">
        <p className="text-xs font-medium uppercase tracking-wide text-neutral-500">Import masks</p>
        <div className="mt-2 flex flex-wrap gap-2">
          <Button size="sm" onClick={() => pngInput.current?.click()} disabled={importing}>
            Mask images…
          </Button>
          <Button size="sm" onClick={() => jsonInput.current?.click()} disabled={importing || importJson.isPending}>
            {importJson.isPending && <Spinner className="size-3" />}SAM JSON…
          </Button>
          {importing && (
            <span className="flex items-center gap-1 text-xs text-neutral-500">
              <Spinner className="size-3" /> Importing…
            </span>
          )}
        </div>
        <p className="mt-1.5 text-xs text-neutral-500">PNG/JPEG/WebP masks (white or opaque = object) made on this crop; or SAM automatic-mask-generator output with COCO RLE.</p>
        <input ref={pngInput} type="file" multiple accept="image/png,image/jpeg,image/webp" className="sr-only" aria-label="Mask image files" data-testid="mask-png-input" onChange={(event) => void importPngs(event.target.files)} />
        <input ref={jsonInput} type="file" accept="application/json,.json" className="sr-only" aria-label="SAM JSON file" data-testid="sam-json-input" onChange={(event) => void importSamJson(event.target.files?.[0])} />
      </div>
      {candidates && <SamJsonDialog photo={photo} total={candidates.total} candidates={candidates.candidates} onCancel={() => setCandidates(null)} onAdd={(chosen) => void addCandidates(chosen)} />}
    </Card>
  );
}
