'use client';
// Every composed image of the project, newest first, grouped by run: with and without box control side by side, the
// boxes on demand, and every parameter needed to reproduce the image (reusable in one click).
import { useState } from 'react';
import { artifactUrl } from '../../lib/artifacts.ts';
import { formatAgo } from '../../lib/format.ts';
import type { GenerationRow, LearnedToken } from '../../lib/trpc.ts';
import { EmptyState } from '../ui.tsx';
import { Button } from '../ui.tsx';
import type { NormBox } from './BoxCanvas.tsx';

export interface GenerationParams {
  variant: string;
  model: string;
  prompt: string;
  negativePrompt: string;
  boxes: NormBox[];
  subjects: string[];
  seed: number;
  batch: number;
  index: number;
  steps: number;
  guidanceScale: number;
  /** absent in images made before it could be set */
  guidanceRescale?: number;
  height: number;
  width: number;
  preset: 'mifo' | 'ba' | 'off';
  ablations: string[];
  control: Record<string, unknown>;
  seconds: number;
}

function BoxOverlay({ boxes, colors }: { boxes: NormBox[]; colors: (string | null)[] }) {
  return (
    <svg viewBox="0 0 100 100" preserveAspectRatio="none" className="pointer-events-none absolute inset-0 size-full" aria-hidden>
      {boxes.map(([x0, y0, x1, y1], i) => (
        <rect key={i} x={x0 * 100} y={y0 * 100} width={(x1 - x0) * 100} height={(y1 - y0) * 100} fill="none" stroke={colors[i] ?? '#fff'} strokeWidth={0.8} vectorEffect="non-scaling-stroke" style={{ strokeWidth: 2 }} />
      ))}
    </svg>
  );
}

function PromptText({ text, tokens }: { text: string; tokens: LearnedToken[] }) {
  const colors = new Map(tokens.map((token) => [token.token, token.color]));
  const parts = text.split(/(<[^<>\s]+>)/g);
  return (
    <span>
      {parts.map((part, i) =>
        /^<[^<>\s]+>$/.test(part) ? (
          <span key={i} className="rounded-full px-1.5 font-mono text-[0.9em] font-semibold text-white" style={{ backgroundColor: colors.get(part) ?? '#737373' }}>
            {part}
          </span>
        ) : (
          <span key={i}>{part}</span>
        ),
      )}
    </span>
  );
}

const PRESET_LABEL: Record<string, string> = { mifo: 'MIFO', ba: 'Bounded Attention', off: 'no box control' };

export function Gallery({ generations, tokens, onReuse }: { generations: GenerationRow[]; tokens: LearnedToken[]; onReuse: (params: GenerationParams) => void }) {
  const [showBoxes, setShowBoxes] = useState(true);
  if (generations.length === 0) {
    return <EmptyState title="No images yet">Write a prompt with your tokens, place a box for each, and press Generate. Every image stays here with the settings that made it.</EmptyState>;
  }
  const groups = new Map<string, GenerationRow[]>();
  for (const generation of generations) {
    const key = generation.composeJobId ?? generation.id;
    groups.set(key, [...(groups.get(key) ?? []), generation]);
  }
  const colorOf = (subject: string) => tokens.find((token) => token.token === subject)?.color ?? null;
  return (
    <div>
      <label className="mb-3 flex items-center gap-2 text-sm">
        <input type="checkbox" checked={showBoxes} onChange={(event) => setShowBoxes(event.target.checked)} className="accent-indigo-600" />
        Show the boxes on the images
      </label>
      <ul className="space-y-4" data-testid="gallery">
        {[...groups].map(([key, rows]) => {
          // a run's settings are those of its box-controlled images; the side-by-side ones without control only differ there
          const lead = rows.find((row) => (row.params as unknown as GenerationParams).variant !== 'no box control') ?? rows[0]!;
          const params = lead.params as unknown as GenerationParams;
          const byIndex = new Map<number, { controlled?: GenerationRow; plain?: GenerationRow }>();
          for (const row of rows) {
            const p = row.params as unknown as GenerationParams;
            const slot = byIndex.get(p.index) ?? {};
            if (p.variant === 'no box control') slot.plain = row;
            else slot.controlled = row;
            byIndex.set(p.index, slot);
          }
          const compared = rows.some((row) => (row.params as unknown as GenerationParams).variant === 'no box control');
          const colors = params.subjects.map(colorOf);
          return (
            <li key={key} className="rounded-xl border border-neutral-200 bg-white p-3 shadow-sm dark:border-neutral-800 dark:bg-neutral-900" data-testid="generation">
              <div className="flex flex-wrap items-start justify-between gap-2">
                <p className="text-sm leading-6">
                  <PromptText text={params.prompt} tokens={tokens} />
                </p>
                <Button size="sm" onClick={() => onReuse(params)}>
                  Use these settings
                </Button>
              </div>
              <p className="mt-1 text-xs text-neutral-600 dark:text-neutral-400">
                seed {params.seed} · {params.steps} steps · guidance {params.guidanceScale}
                {params.guidanceRescale ? ` rescaled by ${params.guidanceRescale}` : ''} · {PRESET_LABEL[params.preset] ?? params.preset}
                {params.ablations.length ? ` (${params.ablations.join(', ')})` : ''} · {params.width}×{params.height} px · {formatAgo(lead.createdAt)}
                {params.negativePrompt ? ` · negative “${params.negativePrompt}”` : ''}
              </p>
              <div className="mt-3 flex flex-wrap gap-3">
                {[...byIndex].sort(([a], [b]) => a - b).map(([index, slot]) => (
                  <div key={index} className="flex gap-2">
                    {[slot.controlled, compared ? slot.plain : undefined].map((row, i) =>
                      row ? (
                        <figure key={row.id} className="w-44">
                          <div className="relative">
                            {/* eslint-disable-next-line @next/next/no-img-element */}
                            <img src={artifactUrl(row.imageSha256!)} alt={`${i === 0 ? 'With' : 'Without'} box control: ${params.prompt}`} className="aspect-square w-full rounded-md object-cover" style={{ imageRendering: params.width < 128 ? 'pixelated' : 'auto' }} data-testid="generated-image" />
                            {showBoxes && <BoxOverlay boxes={params.boxes} colors={colors} />}
                          </div>
                          <figcaption className="mt-1 flex flex-wrap items-center justify-between gap-x-2 text-xs text-neutral-600 dark:text-neutral-400">
                            <span className="font-medium">{compared ? (i === 0 ? PRESET_LABEL[(row.params as unknown as GenerationParams).preset] : 'no box control') : `image ${index + 1}`}</span>
                            <span className="flex gap-2">
                              <a href={artifactUrl(row.imageSha256!)} download={`mifo-seed${params.seed}-${index}${i === 1 ? '-nocontrol' : ''}.png`} className="underline">
                                PNG
                              </a>
                              {row.reportSha256 && (
                                <a href={artifactUrl(row.reportSha256)} target="_blank" rel="noreferrer" className="underline" title="Every parameter, the subjects, the final masks and the per-step losses">
                                  record
                                </a>
                              )}
                            </span>
                          </figcaption>
                        </figure>
                      ) : null,
                    )}
                  </div>
                ))}
              </div>
            </li>
          );
        })}
      </ul>
    </div>
  );
}
