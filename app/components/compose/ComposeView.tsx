'use client';
// Step 3: compose the learned tokens in a new scene. A prompt with the tokens as chips, one box per token on the
// canvas, the sampling settings and control switches; the live denoising preview while it runs; the gallery below.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import Link from 'next/link';
import { useEffect, useId, useMemo, useState } from 'react';
import type { ProgressUpdate } from '@/server/jobs/contract.ts';
import { artifactUrl } from '../../lib/artifacts.ts';
import { withTokenColors } from '../../lib/colors.ts';
import { errorMessage } from '../../lib/format.ts';
import { carryBoxes, promptTokens } from '../../lib/promptBoxes.ts';
import { useTRPC, type JobRow, type LearnedToken } from '../../lib/trpc.ts';
import { useJobEvents } from '../../lib/useJobEvents.ts';
import { Alert, Button, Card, EmptyState, ProgressBar, SectionTitle, Spinner } from '../ui.tsx';
import { ModelProblem } from '../ModelProblem.tsx';
import { BoxCanvas, defaultBoxes, type NormBox } from './BoxCanvas.tsx';
import { Gallery, type GenerationParams } from './Gallery.tsx';
import { PromptEditor } from './PromptEditor.tsx';

const ABLATIONS = [
  { id: 'ca-only', label: 'cross-attention loss only' },
  { id: 'sa-only', label: 'self-attention loss only' },
  { id: 'in-box-only', label: 'in-box reward only' },
  { id: 'out-of-box-only', label: 'out-of-box penalty only' },
  { id: 'no-decay', label: 'constant out-of-box weight' },
  { id: 'no-refine', label: 'no mask refinement' },
] as const;
type Ablation = (typeof ABLATIONS)[number]['id'];

const PRESETS = [
  { id: 'mifo', label: 'MIFO', hint: 'In-box reward and out-of-box penalty: each token stays in its box.' },
  { id: 'ba', label: 'Bounded Attention', hint: 'In-box reward only (the method MIFO builds on).' },
  { id: 'off', label: 'Off', hint: 'Plain sampling: the boxes are ignored.' },
] as const;

interface Settings {
  prompt: string;
  negativePrompt: string;
  boxes: NormBox[];
  seed: number;
  batch: number;
  steps: number;
  guidanceScale: number;
  guidanceRescale: number;
  preset: 'mifo' | 'ba' | 'off';
  ablations: Ablation[];
  crossMask: boolean;
  selfMask: boolean;
  maskEos: boolean;
  compare: boolean;
  livePreview: boolean;
}

function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 31);
}

function initialPrompt(tokens: LearnedToken[]): string {
  if (tokens.length === 0) return '';
  // A scene the default model's world knows (its captions: "a photo of … on snow", "… on grass", …).
  return `a photo of ${tokens.map((t) => t.token).join(' and ')} on snow`;
}

function NumberField({ label, value, onChange, min, max, step = 1, hint }: { label: string; value: number; onChange: (value: number) => void; min: number; max: number; step?: number; hint?: string }) {
  const id = useId();
  return (
    <div>
      <label htmlFor={id} className="block text-sm font-medium">
        {label}
      </label>
      <input
        id={id}
        type="number"
        value={Number.isFinite(value) ? value : ''}
        min={min}
        max={max}
        step={step}
        onChange={(event) => onChange(event.target.value === '' ? Number.NaN : Number(event.target.value))}
        className="mt-1 w-full rounded-md border border-neutral-300 bg-white px-2.5 py-1.5 text-sm dark:border-neutral-700 dark:bg-neutral-800"
      />
      {hint && <p className="mt-0.5 text-xs text-neutral-500">{hint}</p>}
    </div>
  );
}

function Toggle({ label, checked, onChange, hint }: { label: string; checked: boolean; onChange: (checked: boolean) => void; hint?: string }) {
  return (
    <label className="flex items-start gap-2 text-sm">
      <input type="checkbox" checked={checked} onChange={(event) => onChange(event.target.checked)} className="mt-0.5 accent-indigo-600" />
      <span>
        {label}
        {hint && <span className="block text-xs text-neutral-500">{hint}</span>}
      </span>
    </label>
  );
}

function settingsProblem(settings: Settings, tokens: LearnedToken[]): string | null {
  const used = promptTokens(settings.prompt);
  if (!settings.prompt.trim()) return 'Write a prompt.';
  const unknown = used.filter((token) => !tokens.some((t) => t.token === token));
  if (unknown.length) return `${unknown.join(', ')} ${unknown.length === 1 ? 'is not a learned token' : 'are not learned tokens'}: use the buttons under the prompt.`;
  if (used.length === 0) return 'Put at least one learned token in the prompt: each token gets a box.';
  if (!Number.isInteger(settings.seed) || settings.seed < 0) return 'The seed is a whole number ≥ 0.';
  if (!Number.isInteger(settings.steps) || settings.steps < 1 || settings.steps > 200) return 'Steps go from 1 to 200.';
  if (!Number.isInteger(settings.batch) || settings.batch < 1 || settings.batch > 8) return 'Images per run go from 1 to 8.';
  if (!(settings.guidanceScale >= 0 && settings.guidanceScale <= 30)) return 'Guidance goes from 0 to 30.';
  if (!(settings.guidanceRescale >= 0 && settings.guidanceRescale <= 1)) return 'Guidance rescale goes from 0 to 1.';
  return null;
}

function LivePreview({ job, colorOf, onDone }: { job: JobRow; colorOf: (token: string) => string | null; onDone: () => void }) {
  const trpc = useTRPC();
  // the run's own boxes: the ones on the canvas may have moved since it started
  const input = job.input as { prompt: string; boxes: NormBox[] };
  const boxes = input.boxes;
  const colors = promptTokens(input.prompt).map(colorOf);
  const stream = useJobEvents(job.id, (event) => {
    if (event.kind === 'completed' || event.kind === 'failed' || event.kind === 'cancelled') onDone();
  });
  const cancel = useMutation(trpc.jobs.cancel.mutationOptions());
  let progress: ProgressUpdate | null = null;
  let previews: { name: string; sha256: string }[] = [];
  let failure: string | null = null;
  let finished: { variant: string; images: string[] }[] = [];
  for (const event of stream.events) {
    if (event.kind === 'completed') finished = ((event.data.result as { variants?: { variant: string; images: string[] }[] } | undefined)?.variants ?? []).map((v) => ({ variant: v.variant, images: v.images }));
    if (event.kind === 'progress') {
      progress = event.data as unknown as ProgressUpdate;
      const images = (progress.images ?? []).filter((image) => image.name.startsWith('preview:'));
      if (images.length) previews = images;
    }
    if (event.kind === 'failed') failure = String((event.data.error as { message?: string } | undefined)?.message ?? 'the run failed');
  }
  const active = !stream.ended;
  const started = stream.events.some((event) => event.kind === 'started');
  return (
    <Card>
      <div className="flex items-center justify-between gap-2">
        <h3 className="flex items-center gap-2 text-sm font-semibold" data-testid="compose-state">
          {active && <Spinner />}
          {stream.ended === 'completed' ? 'Done' : stream.ended === 'failed' ? 'Failed' : stream.ended === 'cancelled' ? 'Cancelled' : progress ? `Composing (${progress.phase ?? ''})` : started ? 'Loading the model…' : 'Waiting for a worker…'}
        </h3>
        {active && (
          <Button size="sm" variant="danger" onClick={() => cancel.mutate({ id: job.id })} disabled={cancel.isPending}>
            Cancel
          </Button>
        )}
      </div>
      <div className="mt-2">
        <ProgressBar value={stream.ended === 'completed' ? 1 : progress && progress.total ? progress.step / progress.total : 0} label="Composition progress" />
        <p className="mt-1 text-xs text-neutral-500">{progress ? `step ${progress.step} of ${progress.total}${progress.metrics?.loss !== undefined ? ` · guidance loss ${progress.metrics.loss.toFixed(3)}` : ''}` : 'loading the model and the learned tokens…'}</p>
      </div>
      {previews.length > 0 && active && (
        <div className="mt-3 grid grid-cols-2 gap-2" data-testid="live-preview">
          {previews.map((image) => (
            <div key={image.name} className="relative">
              {/* eslint-disable-next-line @next/next/no-img-element */}
              <img src={artifactUrl(image.sha256)} alt={`Denoising preview ${image.name.slice('preview:'.length)}`} className="aspect-square w-full rounded-md" style={{ imageRendering: 'pixelated' }} />
              <svg viewBox="0 0 100 100" preserveAspectRatio="none" className="pointer-events-none absolute inset-0 size-full" aria-hidden>
                {boxes.map(([x0, y0, x1, y1], i) => (
                  <rect key={i} x={x0 * 100} y={y0 * 100} width={(x1 - x0) * 100} height={(y1 - y0) * 100} fill="none" stroke={colors[i] ?? '#fff'} style={{ strokeWidth: 2 }} vectorEffect="non-scaling-stroke" />
                ))}
              </svg>
            </div>
          ))}
        </div>
      )}
      {stream.ended === 'completed' && finished.length > 0 && (
        <div className="mt-3" data-testid="compose-result">
          <div className="grid grid-cols-2 gap-2">
            {finished.map((variant) => (
              <figure key={variant.variant}>
                {/* eslint-disable-next-line @next/next/no-img-element */}
                <img src={artifactUrl(variant.images[0]!)} alt={`Result, ${variant.variant}`} className="aspect-square w-full rounded-md" style={{ imageRendering: 'pixelated' }} />
                <figcaption className="mt-0.5 text-center text-xs text-neutral-500">{variant.variant}</figcaption>
              </figure>
            ))}
          </div>
          <p className="mt-2 text-xs text-neutral-500">Saved in the gallery below with its settings.</p>
        </div>
      )}
      {failure && (
        <div className="mt-3">
          <Alert tone="error" title="The composition failed">
            {failure}
          </Alert>
        </div>
      )}
    </Card>
  );
}

export function ComposeView({ projectId }: { projectId: string }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const project = useQuery(trpc.projects.get.queryOptions({ id: projectId }));
  const tokensQuery = useQuery(trpc.studio.tokens.queryOptions({ projectId }));
  const model = useQuery(trpc.studio.model.queryOptions());
  const jobs = useQuery(trpc.jobs.list.queryOptions({ projectId, type: 'compose', limit: 1 }));
  const tokens = useMemo(() => withTokenColors(tokensQuery.data ?? []), [tokensQuery.data]);
  const [settings, setSettings] = useState<Settings | null>(null);
  const [liveJob, setLiveJob] = useState<JobRow | null>(null);
  const promptId = useId();
  const negativeId = useId();

  // the settings outlive a visit to another step of the project (kept for the browser tab's session)
  const storageKey = `mifo.compose.${projectId}`;
  useEffect(() => {
    if (settings) sessionStorage.setItem(storageKey, JSON.stringify(settings));
  }, [settings, storageKey]);

  useEffect(() => {
    if (settings || !tokensQuery.data || model.isPending) return;
    const generation = model.data?.available ? model.data.generation : null;
    const prompt = initialPrompt(tokensQuery.data);
    const defaults: Settings = {
      prompt,
      negativePrompt: '',
      boxes: defaultBoxes(Math.max(1, promptTokens(prompt).length)),
      seed: randomSeed(),
      batch: 1,
      steps: 50,
      guidanceScale: generation?.guidance ?? 7.5,
      guidanceRescale: generation?.guidanceRescale ?? 0,
      preset: 'mifo',
      ablations: [],
      crossMask: true,
      selfMask: true,
      maskEos: true,
      compare: true,
      livePreview: true,
    };
    const saved = sessionStorage.getItem(storageKey);
    setSettings(saved ? { ...defaults, ...(JSON.parse(saved) as Partial<Settings>) } : defaults);
  }, [settings, storageKey, tokensQuery.data, model.isPending, model.data]);

  // The running composition of this project, also after a reload.
  useEffect(() => {
    const latest = jobs.data?.[0];
    if (latest && (latest.status === 'queued' || latest.status === 'running') && !liveJob) setLiveJob(latest);
  }, [jobs.data, liveJob]);

  const compose = useMutation(trpc.studio.compose.mutationOptions({ onSuccess: (job) => setLiveJob(job) }));

  if (!project.data || !tokensQuery.data) return null;
  if (tokens.length === 0) {
    return (
      <EmptyState
        title="Nothing learned yet"
        action={
          <Link href={`/projects/${projectId}/learn`} className="rounded-md bg-indigo-600 px-3.5 py-2 text-sm font-medium text-white hover:bg-indigo-500">
            Go to Learn
          </Link>
        }
      >
        Compose uses the tokens learned from this photo. Learn them first (the Paper preset takes minutes on the sample model).
      </EmptyState>
    );
  }
  if (!settings) return null;

  const update = (changes: Partial<Settings>) => setSettings((current) => ({ ...current!, ...changes }));
  const used = promptTokens(settings.prompt);
  const colorOf = (token: string) => tokens.find((t) => t.token === token)?.color ?? null;
  const subjects = used.map((token) => ({ label: token, color: colorOf(token) }));
  const boxes = used.length === settings.boxes.length ? settings.boxes : [...settings.boxes.slice(0, used.length), ...defaultBoxes(Math.max(1, used.length)).slice(settings.boxes.length)].slice(0, used.length);
  const problem = settingsProblem(settings, tokens);

  const setPrompt = (prompt: string) => {
    const next = promptTokens(prompt);
    update({ prompt, boxes: next.length === 0 ? settings.boxes : carryBoxes(used, boxes, next, defaultBoxes(next.length)) });
  };

  const submit = () => {
    if (problem) return;
    compose.mutate({
      projectId,
      prompt: settings.prompt.trim(),
      negativePrompt: settings.negativePrompt,
      boxes,
      seed: settings.seed,
      batch: settings.batch,
      steps: settings.steps,
      guidanceScale: settings.guidanceScale,
      guidanceRescale: settings.guidanceRescale,
      preset: settings.preset,
      ablations: settings.ablations,
      control: { crossMask: settings.crossMask, selfMask: settings.selfMask, maskEos: settings.maskEos },
      previewEvery: settings.livePreview ? Math.max(1, Math.round(settings.steps / 10)) : 0,
      compareWithoutControl: settings.compare && settings.preset !== 'off',
    });
  };

  const reuse = (params: GenerationParams) => {
    const control = params.control as { crossMask?: boolean; selfMask?: boolean; maskEos?: boolean };
    setSettings({
      ...settings,
      prompt: params.prompt,
      negativePrompt: params.negativePrompt,
      boxes: params.boxes,
      seed: params.seed,
      batch: params.batch,
      steps: params.steps,
      guidanceScale: params.guidanceScale,
      guidanceRescale: params.guidanceRescale ?? 0,
      preset: params.preset,
      ablations: params.ablations as Ablation[],
      crossMask: control.crossMask ?? true,
      selfMask: control.selfMask ?? true,
      maskEos: control.maskEos ?? true,
    });
    window.scrollTo({ top: 0, behavior: 'smooth' });
  };

  const resolution = model.data?.available ? model.data.resolution : null;
  return (
    <div className="space-y-8">
      <ModelProblem />
      <Card>
        <div className="grid gap-4 md:grid-cols-[minmax(0,2fr)_minmax(0,1fr)]">
          <PromptEditor id={promptId} label="Prompt" value={settings.prompt} onChange={setPrompt} tokens={tokens} />
          <div>
            <label htmlFor={negativeId} className="mb-1 block text-sm font-medium">
              Negative prompt <span className="font-normal text-neutral-500">(optional)</span>
            </label>
            <textarea id={negativeId} rows={2} value={settings.negativePrompt} onChange={(event) => update({ negativePrompt: event.target.value })} className="w-full rounded-lg border border-neutral-300 bg-white px-3 py-2.5 text-[15px] leading-7 dark:border-neutral-700 dark:bg-neutral-900" />
          </div>
        </div>
      </Card>
      <div className="grid gap-6 lg:grid-cols-[minmax(0,24rem)_minmax(0,1fr)] xl:grid-cols-[minmax(0,24rem)_minmax(0,1fr)_minmax(0,20rem)]">
        <Card>
          <SectionTitle hint="Drag a box to move it, a corner to resize it. Keyboard: Tab to a box, arrows move, Shift+arrows resize.">Layout: one box per token</SectionTitle>
          <BoxCanvas boxes={boxes} subjects={subjects} onChange={(next) => update({ boxes: next })} />
          {resolution && <p className="mt-2 text-center text-xs text-neutral-500">The model composes at {resolution}×{resolution} px.</p>}
        </Card>
        <div className="space-y-5">
          <Card>
            <SectionTitle>Settings</SectionTitle>
            <div className="grid grid-cols-2 gap-3">
              <div className="col-span-2 flex items-end gap-2">
                <div className="flex-1">
                  <NumberField label="Seed" value={settings.seed} onChange={(seed) => update({ seed })} min={0} max={2 ** 31 - 1} />
                </div>
                <Button onClick={() => update({ seed: randomSeed() })} title="New random seed">
                  Random
                </Button>
              </div>
              <NumberField label="Images" value={settings.batch} onChange={(batch) => update({ batch })} min={1} max={8} />
              <NumberField label="Steps" value={settings.steps} onChange={(steps) => update({ steps })} min={1} max={200} />
              <NumberField label="Guidance" value={settings.guidanceScale} onChange={(guidanceScale) => update({ guidanceScale })} min={0} max={30} step={0.5} />
              <NumberField label="Guidance rescale" value={settings.guidanceRescale} onChange={(guidanceRescale) => update({ guidanceRescale })} min={0} max={1} step={0.05} />
              <div>
                <label className="block text-sm font-medium" htmlFor={`${promptId}-preset`}>
                  Box control
                </label>
                <select id={`${promptId}-preset`} value={settings.preset} onChange={(event) => update({ preset: event.target.value as Settings['preset'] })} className="mt-1 w-full rounded-md border border-neutral-300 bg-white px-2 py-1.5 text-sm dark:border-neutral-700 dark:bg-neutral-800">
                  {PRESETS.map((preset) => (
                    <option key={preset.id} value={preset.id}>
                      {preset.label}
                    </option>
                  ))}
                </select>
              </div>
              <p className="col-span-2 -mt-1 text-xs text-neutral-500">{PRESETS.find((preset) => preset.id === settings.preset)!.hint}</p>
            </div>
            <div className="mt-4 space-y-2">
              <Toggle label="Side by side without box control" hint="The same seed again with plain sampling, to see what the boxes change." checked={settings.compare && settings.preset !== 'off'} onChange={(compare) => update({ compare })} />
              <Toggle label="Live denoising preview" checked={settings.livePreview} onChange={(livePreview) => update({ livePreview })} />
            </div>
            <details className="mt-4 rounded-lg border border-neutral-200 p-3 text-sm dark:border-neutral-800">
              <summary className="cursor-pointer font-medium">Control switches and ablations</summary>
              <div className="mt-3 space-y-2">
                <Toggle label="Bound cross-attention" hint="Tokens reach only their box; function words reach no pixel." checked={settings.crossMask} onChange={(crossMask) => update({ crossMask })} />
                <Toggle label="Bound self-attention" hint="Subjects do not see each other's pixels." checked={settings.selfMask} onChange={(selfMask) => update({ selfMask })} />
                <Toggle label="Hide the end token from the background" checked={settings.maskEos} onChange={(maskEos) => update({ maskEos })} />
                <p className="pt-2 text-xs font-medium uppercase tracking-wide text-neutral-500">Ablations (paper §4.4)</p>
                {ABLATIONS.map((ablation) => (
                  <Toggle
                    key={ablation.id}
                    label={ablation.label}
                    checked={settings.ablations.includes(ablation.id)}
                    onChange={(on) => update({ ablations: on ? [...settings.ablations, ablation.id] : settings.ablations.filter((a) => a !== ablation.id) })}
                  />
                ))}
              </div>
            </details>
            {problem && <p className="mt-4 text-sm text-amber-800 dark:text-amber-300">{problem}</p>}
            {compose.error && (
              <div className="mt-4">
                <Alert tone="error" title="Not started">
                  {errorMessage(compose.error)}
                </Alert>
              </div>
            )}
            <Button variant="primary" className="mt-4 w-full" onClick={submit} disabled={Boolean(problem) || compose.isPending}>
              {compose.isPending && <Spinner />}
              Generate
            </Button>
          </Card>
        </div>
        <div className="lg:col-span-2 xl:col-span-1">
          {liveJob ? (
            <LivePreview
              key={liveJob.id}
              job={liveJob}
              colorOf={colorOf}
              onDone={() => {
                void queryClient.invalidateQueries({ queryKey: trpc.projects.get.queryKey({ id: projectId }) });
                void queryClient.invalidateQueries({ queryKey: trpc.jobs.list.queryKey() });
              }}
            />
          ) : (
            <div className="grid h-full min-h-32 place-items-center rounded-xl border border-dashed border-neutral-300 p-4 text-center text-sm text-neutral-500 dark:border-neutral-700">
              The denoising shows here live while a composition runs; finished images go to the gallery below.
            </div>
          )}
        </div>
      </div>
      <section aria-labelledby="gallery-title">
        <h2 id="gallery-title" className="mb-3 text-lg font-semibold">
          Gallery
        </h2>
        <Gallery generations={project.data.generations} tokens={tokens} onReuse={reuse} />
      </section>
    </div>
  );
}
