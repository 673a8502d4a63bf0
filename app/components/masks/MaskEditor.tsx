'use client';
// Step 1: mark each object of the photo as an instance with a mask and a name (its token). Click-to-segment with SAM
// (points and a box), brush and eraser, imports of mask PNGs and SAM automatic-mask-generator JSON. Every change is
// saved as the instance's mask, with the clicks that made it, and can be undone and redone.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { TRPCClientError } from '@trpc/client';
import Link from 'next/link';
import { useCallback, useEffect, useMemo, useRef, useState, type KeyboardEvent } from 'react';
import { artifactUrl } from '../../lib/artifacts.ts';
import { nextInstanceColor } from '../../lib/colors.ts';
import { errorMessage } from '../../lib/format.ts';
import { useTRPC, type InstanceRow } from '../../lib/trpc.ts';
import { useJobEvents } from '../../lib/useJobEvents.ts';
import { Alert, Button, Card, Kbd, Spinner } from '../ui.tsx';
import { bitsToPngBlob, countBits, emptyBits, loadMaskBits, paintStroke, type MaskBits, type OverlayLayer } from './bits.ts';
import { MaskHistory, type MaskSource, type MaskState } from './history.ts';
import { InstancePanel } from './InstancePanel.tsx';
import { MaskCanvas, type MaskCanvasHandle, type PhotoPoint, type SamBox, type SamPoint, type Tool } from './MaskCanvas.tsx';
import { freeInstanceName } from './names.ts';

interface Editing {
  instanceId: string;
  bits: MaskBits;
  points: SamPoint[];
  box: SamBox | null;
  source: MaskSource;
  /** the stored mask this edit starts from, while it is still loading */
  pendingSha: string | null;
}

const TOOLS: { id: Tool; label: string; key: string }[] = [
  { id: 'click', label: 'Click', key: 'c' },
  { id: 'box', label: 'Box', key: 'b' },
  { id: 'brush', label: 'Brush', key: 'p' },
  { id: 'erase', label: 'Eraser', key: 'e' },
];

const SAM_NOT_READY = 'Click-to-segment is still being prepared for this photo: wait for it, or use the brush or an import.';

function SamStatus({ projectId, ready }: { projectId: string; ready: boolean }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const prepare = useMutation(trpc.masks.prepare.mutationOptions());
  const { mutate } = prepare;
  useEffect(() => {
    if (!ready) mutate({ projectId });
  }, [mutate, projectId, ready]);
  const jobId = prepare.data && !prepare.data.ready ? prepare.data.jobId : null;
  const stream = useJobEvents(ready ? null : jobId, (event) => {
    if (event.kind === 'completed') void queryClient.invalidateQueries({ queryKey: trpc.projects.get.queryKey({ id: projectId }) });
  });
  if (ready) {
    return (
      <span className="inline-flex items-center gap-1.5 text-xs text-emerald-700 dark:text-emerald-400" data-testid="sam-ready">
        <span aria-hidden className="size-2 rounded-full bg-emerald-500" /> Click-to-segment ready
      </span>
    );
  }
  if (prepare.error || stream.ended === 'failed' || stream.ended === 'cancelled') {
    const failed = stream.events.findLast((event) => event.kind === 'failed');
    const message = prepare.error ? errorMessage(prepare.error) : String((failed?.data.error as { message?: string } | undefined)?.message ?? 'the encoder stopped');
    return (
      <span className="inline-flex items-center gap-2 text-xs text-red-700 dark:text-red-400">
        Click-to-segment is unavailable: {message}.
        <Button size="sm" onClick={() => mutate({ projectId })}>
          Try again
        </Button>
        Brush and import still work.
      </span>
    );
  }
  return (
    <span className="inline-flex items-center gap-1.5 text-xs text-neutral-600 dark:text-neutral-400" role="status">
      <Spinner className="size-3" /> Preparing click-to-segment for this photo (a few seconds)… Brush and import work already.
    </span>
  );
}

export function MaskEditor({ projectId }: { projectId: string }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const project = useQuery(trpc.projects.get.queryOptions({ id: projectId }));
  const detail = project.data;
  const width = detail?.photo?.width ?? 0;
  const height = detail?.photo?.height ?? 0;
  const instances = useMemo(() => detail?.instances ?? [], [detail?.instances]);

  const [tool, setTool] = useState<Tool>('click');
  const [brushRadius, setBrushRadius] = useState(12);
  const [selectedId, setSelectedId] = useState<string | null>(null);
  const [cache, setCache] = useState<Map<string, MaskBits>>(new Map());
  const [problem, setProblem] = useState<string | null>(null);
  const [saveState, setSaveState] = useState<'idle' | 'pending' | 'saving' | 'saved' | 'error'>('idle');
  const [, setVersion] = useState(0);
  const editing = useRef<Editing | null>(null);
  const canvas = useRef<MaskCanvasHandle>(null);
  const saveTimer = useRef<{ timer: ReturnType<typeof setTimeout>; snapshot: Editing } | null>(null);
  const samRequest = useRef(0);
  /** the instance whose click still waits for SAM's answer: further clicks join that click's undo step */
  const samPendingFor = useRef<string | null>(null);
  /** drops the answer of the click in flight (a stroke, undo or clear has replaced what it would segment) */
  const cancelSam = () => {
    samRequest.current++;
    samPendingFor.current = null;
  };
  const history = useRef(new MaskHistory());

  const invalidate = useCallback(() => queryClient.invalidateQueries({ queryKey: trpc.projects.get.queryKey({ id: projectId }) }), [projectId, queryClient, trpc]);
  const segment = useMutation(trpc.masks.segment.mutationOptions());
  // mutateAsync is stable across renders, so the callbacks below keep their identity.
  const { mutateAsync: segmentMask } = segment;
  const { mutateAsync: uploadMask } = useMutation(trpc.masks.upload.mutationOptions());
  const { mutateAsync: addInstance } = useMutation(trpc.projects.addInstance.mutationOptions());
  const { mutateAsync: updateInstance } = useMutation(trpc.projects.updateInstance.mutationOptions());
  const loading = useRef(new Set<string>());
  const creating = useRef<Promise<Editing> | null>(null);

  useEffect(() => {
    if (width) setBrushRadius(Math.max(2, Math.round(width / 48)));
  }, [width]);

  // Every instance's mask, read once per artifact.
  useEffect(() => {
    if (!width) return;
    for (const instance of instances) {
      const sha = instance.maskSha256;
      if (!sha || cache.has(sha) || loading.current.has(sha)) continue;
      loading.current.add(sha);
      loadMaskBits(artifactUrl(sha), width, height)
        .then(
          (bits) => setCache((current) => new Map(current).set(sha, bits)),
          (error: Error) => setProblem(`The mask of '${instance.name}' could not be loaded: ${error.message}`),
        )
        .finally(() => loading.current.delete(sha));
    }
  }, [cache, height, instances, width]);

  const layers = useCallback((): OverlayLayer[] => {
    const active = editing.current;
    return instances.flatMap((instance): OverlayLayer[] => {
      const color = instance.color ?? '#4f46e5';
      if (active && active.instanceId === instance.id) return [{ bits: active.bits, color, selected: true }];
      const bits = instance.maskSha256 ? cache.get(instance.maskSha256) : undefined;
      return bits ? [{ bits, color, selected: false }] : [];
    });
  }, [cache, instances]);

  const redraw = useCallback(() => {
    canvas.current?.redraw();
    setVersion((v) => v + 1);
  }, []);

  const save = useCallback(
    async (snapshot: Editing) => {
      setSaveState('saving');
      try {
        const prompts = { source: snapshot.source, points: snapshot.points, box: snapshot.box };
        if (countBits(snapshot.bits) === 0) {
          await updateInstance({ id: snapshot.instanceId, maskSha256: null, prompts });
        } else {
          const form = new FormData();
          form.set('projectId', projectId);
          form.set('file', await bitsToPngBlob(snapshot.bits), 'mask.png');
          const stored = await uploadMask(form);
          setCache((current) => new Map(current).set(stored.sha256, { ...snapshot.bits, data: snapshot.bits.data.slice() }));
          await updateInstance({ id: snapshot.instanceId, maskSha256: stored.sha256, prompts });
        }
        setSaveState('saved');
        await invalidate();
      } catch (error) {
        // The instance was deleted while its last change was on its way: nothing is left to save.
        if (error instanceof TRPCClientError && error.data?.code === 'NOT_FOUND') return setSaveState('idle');
        setSaveState('error');
        setProblem(`The mask was not saved: ${errorMessage(error)}`);
      }
    },
    [invalidate, projectId, updateInstance, uploadMask],
  );

  const flushSave = useCallback(() => {
    const pending = saveTimer.current;
    if (!pending) return;
    clearTimeout(pending.timer);
    saveTimer.current = null;
    void save(pending.snapshot);
  }, [save]);

  const scheduleSave = useCallback(() => {
    const snapshot = editing.current;
    if (!snapshot) return;
    if (saveTimer.current && saveTimer.current.snapshot.instanceId !== snapshot.instanceId) flushSave();
    if (saveTimer.current) clearTimeout(saveTimer.current.timer);
    setSaveState('pending');
    saveTimer.current = { snapshot, timer: setTimeout(() => flushSave(), 300) };
  }, [flushSave]);

  // Leaving the page saves what is still waiting.
  const latestFlush = useRef(flushSave);
  latestFlush.current = flushSave;
  useEffect(() => () => latestFlush.current(), []);

  const beginEditing = useCallback(
    (instance: InstanceRow) => {
      const prompts = instance.prompts as { points?: SamPoint[]; box?: SamBox | null; source?: MaskSource };
      const stored = instance.maskSha256 ? cache.get(instance.maskSha256) : undefined;
      editing.current = {
        instanceId: instance.id,
        bits: stored ? { ...stored, data: stored.data.slice() } : emptyBits(width, height),
        points: Array.isArray(prompts.points) ? prompts.points : [],
        box: Array.isArray(prompts.box) ? prompts.box : null,
        source: prompts.source ?? 'sam',
        pendingSha: instance.maskSha256 && !stored ? instance.maskSha256 : null,
      };
    },
    [cache, height, width],
  );

  const select = useCallback(
    (id: string | null) => {
      flushSave();
      setSelectedId(id);
      const instance = instances.find((i) => i.id === id);
      if (instance) beginEditing(instance);
      else editing.current = null;
      redraw();
    },
    [beginEditing, flushSave, instances, redraw],
  );

  // A selected instance whose stored mask was still loading gets it as soon as it arrives.
  useEffect(() => {
    const active = editing.current;
    const loaded = active?.pendingSha ? cache.get(active.pendingSha) : undefined;
    if (!active || !loaded) return;
    active.bits = { ...loaded, data: loaded.data.slice() };
    active.pendingSha = null;
    redraw();
  }, [cache, redraw]);

  useEffect(() => redraw(), [cache, instances, redraw]);

  /** The instance being edited; a new one when none is selected (its name and colour are free ones), made once. */
  const ensureEditing = useCallback((): Promise<Editing> => {
    if (editing.current) return Promise.resolve(editing.current);
    creating.current ??= (async () => {
      const name = freeInstanceName('object', instances.map((i) => i.name));
      const created = await addInstance({ projectId, name, color: nextInstanceColor(instances.map((i) => i.color)) });
      editing.current = { instanceId: created.id, bits: emptyBits(width, height), points: [], box: null, source: 'sam', pendingSha: null };
      setSelectedId(created.id);
      await invalidate();
      return editing.current;
    })().finally(() => {
      creating.current = null;
    });
    return creating.current;
  }, [addInstance, height, instances, invalidate, projectId, width]);

  const runSam = useCallback(
    async (points: SamPoint[], box: SamBox | null) => {
      setProblem(null);
      let target: Editing;
      try {
        target = await ensureEditing();
      } catch (error) {
        setProblem(`A new instance could not be added: ${errorMessage(error)}`);
        return;
      }
      // the masks between clicks whose answers have not come back are not states anyone saw
      if (samPendingFor.current !== target.instanceId) history.current.record(target.instanceId, target);
      target.points = points;
      target.box = box;
      target.source = 'sam';
      target.pendingSha = null;
      redraw();
      const request = ++samRequest.current;
      samPendingFor.current = target.instanceId;
      try {
        const result = await segmentMask({ projectId, points, box });
        const bits = await loadMaskBits(result.dataUrl, width, height);
        if (request !== samRequest.current || editing.current !== target) return;
        target.bits = bits;
        redraw();
        scheduleSave();
      } catch (error) {
        if (request === samRequest.current) setProblem(errorMessage(error));
      } finally {
        if (request === samRequest.current) samPendingFor.current = null;
      }
    },
    [ensureEditing, height, projectId, redraw, scheduleSave, segmentMask, width],
  );

  const samReady = Boolean(detail?.samEmbeddingSha256);
  const onPoint = (point: SamPoint) => {
    // before the photo's embedding exists a click could only make an empty instance
    if (!samReady) return setProblem(SAM_NOT_READY);
    const current = editing.current;
    void runSam([...(current?.points ?? []), { x: Math.round(point.x), y: Math.round(point.y), positive: point.positive }], current?.box ?? null);
  };
  const onBox = (box: SamBox) => {
    if (!samReady) return setProblem(SAM_NOT_READY);
    void runSam(editing.current?.points ?? [], box.map(Math.round) as SamBox);
  };

  const strokeTarget = useRef<Promise<Editing> | null>(null);
  const onStroke = (from: PhotoPoint, to: PhotoPoint, done: boolean) => {
    // erasing with nothing selected has nothing to erase: it must not leave an empty new instance behind
    if (tool === 'erase' && !editing.current && !strokeTarget.current) return;
    const strokeStarts = !strokeTarget.current;
    strokeTarget.current ??= ensureEditing();
    const value = tool === 'erase' ? 0 : 1;
    void strokeTarget.current.then(
      (target) => {
        if (strokeStarts) {
          // a click's answer arriving mid-stroke would replace the painting
          cancelSam();
          history.current.record(target.instanceId, target);
        }
        // a painted mask is no longer what its clicks segment: a further click would start from them and lose the painting
        target.source = 'brush';
        target.points = [];
        target.box = null;
        target.pendingSha = null;
        paintStroke(target.bits, from, to, brushRadius, value);
        canvas.current?.redraw();
        if (done) {
          strokeTarget.current = null;
          setVersion((v) => v + 1);
          scheduleSave();
        }
      },
      (error: unknown) => {
        strokeTarget.current = null;
        setProblem(`A new instance could not be added: ${errorMessage(error)}`);
      },
    );
  };

  const restore = (direction: 'undo' | 'redo') => {
    const current = editing.current;
    if (!current || strokeTarget.current) return;
    const state: MaskState | null = history.current[direction](current.instanceId, current);
    if (!state) return;
    cancelSam();
    Object.assign(current, state, { pendingSha: null });
    redraw();
    scheduleSave();
  };
  const clearMask = () => {
    const current = editing.current;
    if (!current || (!current.points.length && !current.box && countBits(current.bits) === 0)) return;
    cancelSam();
    history.current.record(current.instanceId, current);
    current.points = [];
    current.box = null;
    current.bits = emptyBits(width, height);
    redraw();
    scheduleSave();
  };

  const onKey = (event: KeyboardEvent): boolean => {
    if (event.ctrlKey || event.metaKey) {
      const key = event.key.toLowerCase();
      if (key === 'z' || key === 'y') {
        event.preventDefault();
        restore(key === 'y' || event.shiftKey ? 'redo' : 'undo');
        return true;
      }
      return false;
    }
    const chosen = TOOLS.find((t) => t.key === event.key.toLowerCase());
    if (chosen && !event.altKey) {
      setTool(chosen.id);
      return true;
    }
    if (event.key === '[' || event.key === ']') {
      setBrushRadius((r) => Math.max(1, Math.round(r * (event.key === ']' ? 1.25 : 0.8))));
      return true;
    }
    if (event.key === 'Escape') {
      select(null);
      return true;
    }
    if (event.key.toLowerCase() === 'n') {
      select(null);
      return true;
    }
    return false;
  };

  if (project.isPending) return null;
  if (!detail?.photo || !width || !height) {
    return <Alert tone="warning" title="This project has no photo">Create a new project from a photo on the project list.</Alert>;
  }
  const current = editing.current;
  const selected = instances.find((i) => i.id === selectedId) ?? null;
  const allMasked = instances.length > 0 && instances.every((instance) => instance.maskSha256);
  return (
    <div className="grid gap-6 lg:grid-cols-[minmax(0,1fr)_24rem]">
      <div className="min-w-0">
        <div className="mb-3 flex flex-wrap items-center gap-2">
          <div role="toolbar" aria-label="Mask tools" className="inline-flex rounded-lg bg-neutral-200/70 p-0.5 dark:bg-neutral-800">
            {TOOLS.map((t) => (
              <button
                key={t.id}
                type="button"
                aria-pressed={tool === t.id}
                onClick={() => setTool(t.id)}
                title={`${t.label} (${t.key.toUpperCase()})`}
                className={`rounded-md px-3 py-1.5 text-sm font-medium focus-visible:outline-2 focus-visible:outline-indigo-500 ${tool === t.id ? 'bg-white shadow-sm dark:bg-neutral-600' : 'text-neutral-700 hover:text-neutral-950 dark:text-neutral-300'}`}
              >
                {t.label}
              </button>
            ))}
          </div>
          {(tool === 'brush' || tool === 'erase') && (
            <label className="flex items-center gap-2 text-sm">
              Size
              <input type="range" min={1} max={Math.max(8, Math.round(width / 8))} value={brushRadius} onChange={(event) => setBrushRadius(Number(event.target.value))} aria-label="Brush size" />
            </label>
          )}
          <Button size="sm" variant="ghost" onClick={() => restore('undo')} disabled={!current || !history.current.canUndo(current.instanceId)} title="Undo (Ctrl+Z)">
            Undo
          </Button>
          <Button size="sm" variant="ghost" onClick={() => restore('redo')} disabled={!current || !history.current.canRedo(current.instanceId)} title="Redo (Ctrl+Shift+Z)">
            Redo
          </Button>
          <Button size="sm" variant="ghost" onClick={clearMask} disabled={!current}>
            Clear mask
          </Button>
          <span className="ml-auto text-xs text-neutral-500" aria-live="polite">
            {segment.isPending ? 'Segmenting…' : saveState === 'saving' || saveState === 'pending' ? 'Saving…' : saveState === 'saved' ? 'All changes saved' : ''}
          </span>
        </div>
        <MaskCanvas
          ref={canvas}
          photoUrl={artifactUrl(detail.photo.sha256)}
          width={width}
          height={height}
          tool={tool}
          brushRadius={brushRadius}
          layers={layers}
          points={current?.points ?? []}
          box={current?.box ?? null}
          onPoint={onPoint}
          onBox={onBox}
          onStroke={onStroke}
          onKey={onKey}
        />
        <div className="mt-2 flex flex-wrap items-center justify-between gap-2">
          <SamStatus projectId={projectId} ready={samReady} />
          <p className="text-xs text-neutral-500">
            {selected ? (
              <>
                Editing <strong style={{ color: selected.color ?? undefined }}>{selected.name}</strong>. <Kbd>N</Kbd> starts a new instance.
              </>
            ) : (
              'Click an object to add it as a new instance.'
            )}{' '}
            Shift-click: not part of it. Keys: <Kbd>C</Kbd> <Kbd>B</Kbd> <Kbd>P</Kbd> <Kbd>E</Kbd> tools, <Kbd>[</Kbd> <Kbd>]</Kbd> brush, <Kbd>Ctrl+Z</Kbd> undo, <Kbd>Ctrl+Shift+Z</Kbd> redo.
          </p>
        </div>
        {problem && (
          <div className="mt-3">
            <Alert tone="error" action={<Button size="sm" variant="ghost" onClick={() => setProblem(null)}>Dismiss</Button>}>
              {problem}
            </Alert>
          </div>
        )}
      </div>
      <div className="space-y-4">
        <InstancePanel projectId={projectId} photo={{ width, height, sha256: detail.photo.sha256 }} instances={instances} selectedId={selectedId} onSelect={select} onProblem={setProblem} />
        <Card>
          <p className="text-sm font-medium">Next: learn a token for each object</p>
          <p className="mt-1 text-sm text-neutral-600 dark:text-neutral-400">
            {instances.length === 0
              ? 'Mark at least one object first.'
              : allMasked
                ? `${instances.length} instance${instances.length === 1 ? '' : 's'} ready: each name becomes a token such as <${instances[0]!.name}>.`
                : 'Every instance needs a mask before learning.'}
          </p>
          <Link
            href={`/projects/${projectId}/learn`}
            aria-disabled={!allMasked}
            onClick={(event) => {
              if (!allMasked) event.preventDefault();
              flushSave();
            }}
            className={`mt-3 inline-flex rounded-md px-3.5 py-2 text-sm font-medium ${allMasked ? 'bg-indigo-600 text-white hover:bg-indigo-500' : 'cursor-not-allowed bg-neutral-200 text-neutral-500 dark:bg-neutral-800'}`}
          >
            Continue to Learn →
          </Link>
        </Card>
      </div>
    </div>
  );
}
