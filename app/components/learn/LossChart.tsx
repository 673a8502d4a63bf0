'use client';
// Loss terms per step as lines (SVG), with the phase boundary marked.
export interface LossPoint {
  step: number;
  phase: string;
  values: Record<string, number>;
}

const SERIES = [
  { key: 'loss', label: 'total', color: '#4f46e5' },
  { key: 'reconstruction', label: 'reconstruction', color: '#0891b2' },
  { key: 'attention', label: 'attention', color: '#e11d48' },
  { key: 'prior', label: 'prior', color: '#ca8a04' },
];

/** An exponential moving average, so the trend shows through per-step noise (the raw values stay drawn faintly). */
function smoothed(points: LossPoint[], key: string): [number, number][] {
  const out: [number, number][] = [];
  let average: number | null = null;
  const weight = Math.min(0.5, 8 / Math.max(8, points.length));
  for (const point of points) {
    const value = point.values[key];
    if (!Number.isFinite(value)) continue;
    average = average === null ? value! : average + weight * (value! - average);
    out.push([point.step, average]);
  }
  return out;
}

const W = 640;
const H = 200;
const PAD = { left: 44, right: 10, top: 10, bottom: 24 };

export function LossChart({ points, total }: { points: LossPoint[]; total: number }) {
  const series = SERIES.filter((s) => points.some((p) => Number.isFinite(p.values[s.key]) && p.values[s.key] !== 0));
  const values = points.flatMap((p) => series.map((s) => p.values[s.key]).filter((v): v is number => Number.isFinite(v)));
  if (points.length < 2 || values.length === 0) {
    return <p className="grid h-40 place-items-center rounded-lg bg-neutral-100 text-sm text-neutral-500 dark:bg-neutral-800/60">The loss chart appears after the first steps.</p>;
  }
  const max = Math.max(...values);
  const min = Math.min(0, ...values);
  const x = (step: number) => PAD.left + ((W - PAD.left - PAD.right) * step) / Math.max(1, total);
  const y = (value: number) => PAD.top + (H - PAD.top - PAD.bottom) * (1 - (value - min) / (max - min || 1));
  const phaseTwo = points.find((p) => p.phase === 'phase 2');
  const ticks = [min, (min + max) / 2, max];
  const last = points.at(-1)!;
  return (
    <figure>
      <svg viewBox={`0 0 ${W} ${H}`} className="w-full" role="img" aria-label={`Loss over ${points.length} steps; latest total ${last.values.loss?.toFixed(4) ?? '–'}`}>
        {ticks.map((tick) => (
          <g key={tick}>
            <line x1={PAD.left} x2={W - PAD.right} y1={y(tick)} y2={y(tick)} className="stroke-neutral-200 dark:stroke-neutral-800" />
            <text x={PAD.left - 6} y={y(tick) + 4} textAnchor="end" className="fill-neutral-500 text-[10px]">
              {tick.toPrecision(2)}
            </text>
          </g>
        ))}
        {phaseTwo && (
          <g>
            <line x1={x(phaseTwo.step)} x2={x(phaseTwo.step)} y1={PAD.top} y2={H - PAD.bottom} stroke="#a3a3a3" strokeDasharray="4 3" />
            <text x={x(phaseTwo.step) + 4} y={PAD.top + 10} className="fill-neutral-500 text-[10px]">
              phase 2
            </text>
          </g>
        )}
        <text x={PAD.left} y={H - 6} className="fill-neutral-500 text-[10px]">
          step 0
        </text>
        <text x={W - PAD.right} y={H - 6} textAnchor="end" className="fill-neutral-500 text-[10px]">
          {total}
        </text>
        {[...series].reverse().map((s) => (
          <polyline
            key={s.key}
            fill="none"
            stroke={s.color}
            strokeOpacity={0.35}
            strokeWidth={1}
            strokeLinejoin="round"
            points={points
              .filter((p) => Number.isFinite(p.values[s.key]))
              .map((p) => `${x(p.step).toFixed(1)},${y(p.values[s.key]!).toFixed(1)}`)
              .join(' ')}
          />
        ))}
        {[...series].reverse().map((s) => (
          <polyline key={`${s.key}-smooth`} fill="none" stroke={s.color} strokeWidth={s.key === 'loss' ? 2.5 : 1.75} strokeLinejoin="round" points={smoothed(points, s.key).map(([step, value]) => `${x(step).toFixed(1)},${y(value).toFixed(1)}`).join(' ')} />
        ))}
      </svg>
      <figcaption className="mt-1 flex flex-wrap gap-x-4 gap-y-1 text-xs text-neutral-600 dark:text-neutral-400">
        <span>latest (thick lines: moving average)</span>
        {series.map((s) => (
          <span key={s.key} className="inline-flex items-center gap-1.5">
            <span aria-hidden className="h-0.5 w-4 rounded" style={{ backgroundColor: s.color }} />
            {s.label} {Number.isFinite(last.values[s.key]) ? last.values[s.key]!.toFixed(4) : ''}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}
