'use client';
// Step 2: learn one token per instance. Choose a preset, start, and follow the run live: progress with ETA, the loss
// terms, each token's attention over the photo, preview images. Cancel keeps a checkpoint; Resume continues from it
// (also after the server or a worker restarted: the run picks up from its last checkpoint by itself).
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import Link from 'next/link';
import { useMemo, useState } from 'react';
import type { JobEvent, ProgressUpdate } from '@/server/jobs/contract.ts';
import { artifactUrl } from '../../lib/artifacts.ts';
import { errorMessage, formatDuration } from '../../lib/format.ts';
import { LEARN_PRESET_INFO, type LearnPresetId } from '../../lib/learnPresets.ts';
import { useTRPC, type JobRow, type ProjectDetail } from '../../lib/trpc.ts';
import { useJobEvents } from '../../lib/useJobEvents.ts';
import { Alert, Button, Card, EmptyState, ProgressBar, SectionTitle, Spinner, TokenChip } from '../ui.tsx';
import { ModelProblem } from '../ModelProblem.tsx';
import { AttentionHeatmap } from './AttentionHeatmap.tsx';
import { LossChart, type LossPoint } from './LossChart.tsx';

interface RunSummary {
  progress: ProgressUpdate | null;
  losses: LossPoint[];
  attention: Map<string, { sha256: string; step: number }>;
  attentionInside: Map<string, number>;
  previews: { sha256: string; step: number }[];
  logs: { at: number; message: string }[];
  state: 'queued' | 'running' | 'retrying' | 'stopping' | 'completed' | 'failed' | 'cancelled';
  error: string | null;
  /** 'input': the same input fails every time, so resuming cannot help */
  errorKind: string | null;
  startedAt: number | null;
}

function summarize(events: JobEvent[]): RunSummary {
  const summary: RunSummary = { progress: null, losses: [], attention: new Map(), attentionInside: new Map(), previews: [], logs: [], state: 'queued', error: null, errorKind: null, startedAt: null };
  const lossByStep = new Map<number, LossPoint>();
  for (const event of events) {
    const data = event.data as Record<string, unknown>;
    switch (event.kind) {
      case 'queued':
        summary.state = 'queued';
        summary.error = null;
        break;
      case 'started':
        summary.state = 'running';
        summary.startedAt ??= event.at;
        break;
      case 'progress': {
        summary.state = 'running';
        const update = data as unknown as ProgressUpdate;
        summary.progress = update;
        const metrics = update.metrics ?? {};
        if (typeof metrics.loss === 'number') lossByStep.set(update.step, { step: update.step, phase: update.phase ?? '', values: metrics });
        for (const [key, value] of Object.entries(metrics)) if (key.startsWith('attentionInside:')) summary.attentionInside.set(key.slice('attentionInside:'.length), value);
        for (const image of update.images ?? []) {
          if (image.name.startsWith('attention:')) summary.attention.set(image.name.slice('attention:'.length), { sha256: image.sha256, step: update.step });
          else if (image.name === 'preview') summary.previews.push({ sha256: image.sha256, step: update.step });
        }
        break;
      }
      case 'log':
        summary.logs.push({ at: event.at, message: String(data.message ?? '') });
        break;
      case 'retrying':
      case 'released':
      case 'stalled':
        summary.state = 'retrying';
        summary.logs.push({ at: event.at, message: `${event.kind}: ${String((data.error as { message?: string } | undefined)?.message ?? data.reason ?? 'the run continues from its last checkpoint')}` });
        break;
      case 'cancel-requested':
        summary.state = 'stopping';
        break;
      case 'completed':
        summary.state = 'completed';
        break;
      case 'failed':
        summary.state = 'failed';
        summary.error = String((data.error as { message?: string } | undefined)?.message ?? 'the run failed');
        summary.errorKind = (data.error as { kind?: string } | undefined)?.kind ?? null;
        break;
      case 'cancelled':
        summary.state = 'cancelled';
        break;
    }
  }
  summary.losses = [...lossByStep.values()].sort((a, b) => a.step - b.step);
  return summary;
}

const STATE_LABEL: Record<RunSummary['state'], string> = {
  queued: 'Waiting for a worker',
  running: 'Learning',
  retrying: 'Resuming from the last checkpoint',
  stopping: 'Stopping',
  completed: 'Learned',
  failed: 'Stopped with an error',
  cancelled: 'Cancelled',
};

function LearnRun({ job, detail, onRestart }: { job: JobRow; detail: ProjectDetail; onRestart: () => void }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [runKey, setRunKey] = useState(0);
  const refresh = () =>
    Promise.all([
      queryClient.invalidateQueries({ queryKey: trpc.projects.get.queryKey({ id: detail.id }) }),
      queryClient.invalidateQueries({ queryKey: trpc.studio.tokens.queryKey({ projectId: detail.id }) }),
      queryClient.invalidateQueries({ queryKey: trpc.jobs.list.queryKey() }),
    ]);
  return <LearnRunStream key={`${job.id}:${runKey}`} job={job} detail={detail} onResumed={() => setRunKey((k) => k + 1)} onTerminal={refresh} onRestart={onRestart} />;
}

function LearnRunStream({ job, detail, onResumed, onTerminal, onRestart }: { job: JobRow; detail: ProjectDetail; onResumed: () => void; onTerminal: () => void; onRestart: () => void }) {
  const trpc = useTRPC();
  const stream = useJobEvents(job.id, (event) => {
    if (event.kind === 'completed' || event.kind === 'failed' || event.kind === 'cancelled') onTerminal();
  });
  const summary = useMemo(() => summarize(stream.events), [stream.events]);
  const cancel = useMutation(trpc.jobs.cancel.mutationOptions());
  const resume = useMutation(trpc.jobs.retry.mutationOptions({ onSuccess: onResumed }));
  const tokens = useQuery(trpc.studio.tokens.queryOptions({ projectId: detail.id }));
  const input = job.input as { names?: (string | null)[]; preset?: string };
  const nameOf = (token: string) => {
    const index = Number(/^<asset(\d+)>$/.exec(token)?.[1]);
    return input.names?.[index] ?? token;
  };
  const colorOf = (token: string) => detail.instances.find((instance) => instance.name === nameOf(token))?.color ?? null;
  const progress = summary.progress;
  const fraction = progress && progress.total > 0 ? progress.step / progress.total : 0;
  const active = summary.state === 'queued' || summary.state === 'running' || summary.state === 'retrying' || summary.state === 'stopping';
  const preset = LEARN_PRESET_INFO.find((p) => p.id === input.preset);
  const photoUrl = detail.photo ? artifactUrl(detail.photo.sha256) : '';

  return (
    <div className="space-y-5" data-testid="learn-run">
      <Card>
        <div className="flex flex-wrap items-start justify-between gap-3">
          <div>
            <p className="text-sm text-neutral-600 dark:text-neutral-400">
              {preset?.title ?? input.preset} preset · {(input.names ?? []).length} token{(input.names ?? []).length === 1 ? '' : 's'}
            </p>
            <h2 className="mt-0.5 flex items-center gap-2 text-lg font-semibold" data-testid="learn-state">
              {active && <Spinner />}
              {STATE_LABEL[summary.state]}
            </h2>
          </div>
          <div className="flex gap-2">
            {active && (
              <Button variant="danger" onClick={() => cancel.mutate({ id: job.id })} disabled={cancel.isPending || summary.state === 'stopping'}>
                Cancel
              </Button>
            )}
            {(summary.state === 'cancelled' || (summary.state === 'failed' && summary.errorKind !== 'input')) && (
              <Button variant="primary" onClick={() => resume.mutate({ id: job.id })} disabled={resume.isPending}>
                Resume from checkpoint
              </Button>
            )}
            {!active && (
              <Button onClick={onRestart} variant={summary.state === 'completed' ? 'secondary' : 'ghost'}>
                Learn again…
              </Button>
            )}
          </div>
        </div>
        <div className="mt-4">
          <ProgressBar value={summary.state === 'completed' ? 1 : fraction} label="Learning progress" />
          <p className="mt-2 flex flex-wrap gap-x-4 text-sm text-neutral-600 dark:text-neutral-400" aria-live="polite">
            <span data-testid="learn-step">
              {progress && progress.total > 0 ? `step ${progress.step} of ${progress.total}` : summary.state === 'queued' ? 'queued' : active ? 'loading the model…' : 'no step ran'}
            </span>
            {progress?.phase && <span>{progress.phase}</span>}
            {active && progress?.etaMs !== undefined && <span>about {formatDuration(progress.etaMs)} left</span>}
            {summary.startedAt && <span>started {new Date(summary.startedAt).toLocaleTimeString()}</span>}
            {stream.connection === 'connecting' && stream.events.length > 0 && active && <span className="text-amber-700">reconnecting to the server…</span>}
          </p>
        </div>
        {summary.state === 'queued' && (
          <p className="mt-3 text-sm text-neutral-600 dark:text-neutral-400">The run starts as soon as a worker is free. <code>npm start</code> runs one beside the studio; see docs/deploy.md for more.</p>
        )}
        {summary.state === 'failed' && (
          <div className="mt-4 space-y-3">
            <Alert tone="error" title={summary.errorKind === 'input' ? 'Learning cannot run with this input' : 'Learning stopped'}>
              {summary.error}.{' '}
              {summary.errorKind === 'input' ? 'Fix what the message says (the masks are on the Objects step), then learn again.' : 'Resume continues from the last checkpoint.'}
            </Alert>
            <ModelProblem />
          </div>
        )}
        {summary.state === 'cancelled' && (
          <div className="mt-4">
            <Alert tone="warning" title="Cancelled">Resume continues from the last checkpoint.</Alert>
          </div>
        )}
        {summary.state === 'completed' && (
          <div className="mt-4">
            <Alert
              tone="success"
              title="Every token is learned"
              action={
                <Link href={`/projects/${detail.id}/compose`} className="rounded-md bg-emerald-700 px-3 py-1.5 text-sm font-medium text-white hover:bg-emerald-600">
                  Compose with them →
                </Link>
              }
            >
              <span className="inline-flex flex-wrap gap-1.5" data-testid="learned-tokens">
                {(tokens.data ?? []).map((token) => (
                  <TokenChip key={token.conceptId} token={token.token} color={token.color} />
                ))}
              </span>
            </Alert>
          </div>
        )}
        {(cancel.error || resume.error) && (
          <div className="mt-3">
            <Alert tone="error">{errorMessage(cancel.error ?? resume.error)}</Alert>
          </div>
        )}
        {stream.error && (
          <div className="mt-3">
            <Alert tone="warning">The live view lost the server ({stream.error}); it reconnects by itself. Reload the page if nothing moves.</Alert>
          </div>
        )}
      </Card>

      <div className="grid gap-5 xl:grid-cols-[minmax(0,3fr)_minmax(0,2fr)]">
        <Card>
          <SectionTitle hint="Reconstruction inside the masks plus the attention reward (phase 1 start) and penalty terms.">Loss</SectionTitle>
          <LossChart points={summary.losses} total={progress?.total ?? 0} />
        </Card>
        <Card>
          <SectionTitle hint="What the tokens generate so far.">Previews</SectionTitle>
          {summary.previews.length === 0 ? (
            <p className="text-sm text-neutral-500">Previews appear every few steps.</p>
          ) : (
            <ul className="grid grid-cols-3 gap-2" data-testid="learn-previews">
              {summary.previews.slice(-6).map((preview) => (
                <li key={`${preview.sha256}-${preview.step}`}>
                  {/* eslint-disable-next-line @next/next/no-img-element */}
                  <img src={artifactUrl(preview.sha256)} alt={`Preview at step ${preview.step}`} className="aspect-square w-full rounded-md object-cover" style={{ imageRendering: 'pixelated' }} />
                  <p className="mt-0.5 text-center text-xs text-neutral-500">step {preview.step}</p>
                </li>
              ))}
            </ul>
          )}
        </Card>
      </div>

      <Card>
        <SectionTitle hint="Where each token looks in the photo: learning pulls its attention into its own object's mask.">Attention per token</SectionTitle>
        {summary.attention.size === 0 ? (
          <p className="text-sm text-neutral-500">Attention maps appear with the first measurement.</p>
        ) : (
          <ul className="grid grid-cols-2 gap-4 sm:grid-cols-3 lg:grid-cols-5" data-testid="attention-maps">
            {[...summary.attention].map(([token, map]) => {
              const inside = summary.attentionInside.get(token);
              return (
                <li key={token}>
                  <AttentionHeatmap photoUrl={photoUrl} mapUrl={artifactUrl(map.sha256)} label={`Attention of <${nameOf(token)}> at step ${map.step}`} />
                  <div className="mt-1.5 flex items-center justify-between gap-2 text-xs">
                    <TokenChip token={`<${nameOf(token)}>`} color={colorOf(token)} />
                    {inside !== undefined && <span className="text-neutral-600 dark:text-neutral-400">{Math.round(inside * 100)}% inside its mask</span>}
                  </div>
                </li>
              );
            })}
          </ul>
        )}
      </Card>

      {summary.logs.length > 0 && (
        <details className="text-sm">
          <summary className="cursor-pointer text-neutral-600 dark:text-neutral-400">Run log ({summary.logs.length})</summary>
          <ul className="mt-2 space-y-0.5 font-mono text-xs text-neutral-600 dark:text-neutral-400">
            {summary.logs.map((log, i) => (
              <li key={i}>
                {new Date(log.at).toLocaleTimeString()} {log.message}
              </li>
            ))}
          </ul>
        </details>
      )}
    </div>
  );
}

function PresetPicker({ detail, onStarted, onCancel }: { detail: ProjectDetail; onStarted: () => void; onCancel?: () => void }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [preset, setPreset] = useState<LearnPresetId>('paper');
  const [initializeFromNames, setInitializeFromNames] = useState(true);
  const start = useMutation(
    trpc.studio.learn.mutationOptions({
      onSuccess: async () => {
        await queryClient.invalidateQueries({ queryKey: trpc.jobs.list.queryKey() });
        onStarted();
      },
    }),
  );
  const masked = detail.instances.filter((instance) => instance.maskSha256);
  if (detail.instances.length === 0 || masked.length < detail.instances.length) {
    return (
      <EmptyState
        title={detail.instances.length === 0 ? 'Nothing to learn yet' : 'Some instances have no mask'}
        action={
          <Link href={`/projects/${detail.id}/masks`} className="rounded-md bg-indigo-600 px-3.5 py-2 text-sm font-medium text-white hover:bg-indigo-500">
            Go to Objects
          </Link>
        }
      >
        {detail.instances.length === 0 ? 'Mark the objects of the photo first: each instance becomes one token.' : 'Give every instance a mask (or delete it) on the Objects step, then come back.'}
      </EmptyState>
    );
  }
  return (
    <Card>
      <div className="mb-4 empty:hidden">
        <ModelProblem />
      </div>
      <SectionTitle hint="Each instance becomes a token named after it. Learning runs on a worker; you can leave this page and come back.">Learn {masked.length} token{masked.length === 1 ? '' : 's'}</SectionTitle>
      <div className="mb-4 flex flex-wrap gap-1.5">
        {detail.instances.map((instance) => (
          <TokenChip key={instance.id} token={`<${instance.name}>`} color={instance.color} />
        ))}
      </div>
      <fieldset>
        <legend className="mb-2 text-sm font-medium">Preset</legend>
        <div className="grid gap-2 sm:grid-cols-2 xl:grid-cols-4">
          {LEARN_PRESET_INFO.map((info) => (
            <label
              key={info.id}
              className={`cursor-pointer rounded-lg border p-3 text-sm has-[:focus-visible]:ring-2 has-[:focus-visible]:ring-indigo-500 ${preset === info.id ? 'border-indigo-500 bg-indigo-50/70 dark:bg-indigo-950/40' : 'border-neutral-200 hover:border-neutral-300 dark:border-neutral-800'}`}
            >
              <span className="flex items-center gap-2">
                <input type="radio" name="preset" value={info.id} checked={preset === info.id} onChange={() => setPreset(info.id)} className="accent-indigo-600" />
                <span className="font-semibold">{info.title}</span>
                <span className="ml-auto text-xs text-neutral-500">
                  {info.steps[0]} + {info.steps[1]} steps
                </span>
              </span>
              <span className="mt-1 block text-neutral-600 dark:text-neutral-400">{info.text}</span>
            </label>
          ))}
        </div>
      </fieldset>
      <label className="mt-3 flex items-start gap-2 text-sm">
        <input type="checkbox" checked={initializeFromNames} onChange={(event) => setInitializeFromNames(event.target.checked)} className="mt-0.5 accent-indigo-600" />
        <span>
          <span className="font-medium">Start each token from its instance&apos;s name</span>
          <span className="block text-neutral-600 dark:text-neutral-400">
            Where the model knows the name as a word (circle, dog), the token starts there instead of at the average word: so short runs learn the object more reliably.
          </span>
        </span>
      </label>
      {start.error && (
        <div className="mt-3">
          <Alert tone="error" title="Learning did not start">
            {errorMessage(start.error)}
          </Alert>
        </div>
      )}
      <div className="mt-4 flex gap-2">
        <Button variant="primary" onClick={() => start.mutate({ projectId: detail.id, preset, initializeFromNames })} disabled={start.isPending}>
          {start.isPending && <Spinner />}
          Start learning
        </Button>
        {onCancel && (
          <Button variant="ghost" onClick={onCancel}>
            Back to the last run
          </Button>
        )}
      </div>
    </Card>
  );
}

export function LearnView({ projectId }: { projectId: string }) {
  const trpc = useTRPC();
  const project = useQuery(trpc.projects.get.queryOptions({ id: projectId }));
  const jobs = useQuery(trpc.jobs.list.queryOptions({ projectId, type: 'learn', limit: 1 }));
  const [choosing, setChoosing] = useState(false);
  if (!project.data || jobs.isPending) return null;
  if (jobs.error) return <Alert tone="error" title="The learning runs could not be loaded">{errorMessage(jobs.error)}</Alert>;
  const latest = jobs.data[0];
  if (!latest || choosing) return <PresetPicker detail={project.data} onStarted={() => setChoosing(false)} onCancel={latest ? () => setChoosing(false) : undefined} />;
  return <LearnRun job={latest} detail={project.data} onRestart={() => setChoosing(true)} />;
}
