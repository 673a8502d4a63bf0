'use client';
// One box per subject on the square canvas of the composition: drag a box to move it, drag a corner to resize it.
// Keyboard: Tab to a box, arrows move it, Shift+arrows resize it (Alt for small steps). Boxes are normalised
// [x0, y0, x1, y1] with the origin at the top left.
import { useEffect, useRef, useState, type KeyboardEvent, type PointerEvent, type ReactNode } from 'react';

export type NormBox = [number, number, number, number];

export interface BoxSubject {
  label: string;
  color: string | null;
}

const MIN_SIDE = 0.06;
type Corner = 'nw' | 'ne' | 'sw' | 'se';

function clampBox([x0, y0, x1, y1]: NormBox): NormBox {
  const w = Math.max(MIN_SIDE, Math.min(1, x1 - x0));
  const h = Math.max(MIN_SIDE, Math.min(1, y1 - y0));
  const nx0 = Math.min(Math.max(0, x0), 1 - w);
  const ny0 = Math.min(Math.max(0, y0), 1 - h);
  return [nx0, ny0, nx0 + w, ny0 + h].map((v) => Math.round(v * 1000) / 1000) as NormBox;
}

/** Boxes side by side across the lower two thirds, as a starting layout. */
export function defaultBoxes(count: number): NormBox[] {
  const margin = 0.05;
  const gap = 0.1;
  const width = (1 - 2 * margin - gap * (count - 1)) / count;
  return Array.from({ length: count }, (_, i) => clampBox([margin + i * (width + gap), 0.3, margin + i * (width + gap) + width, 0.9]));
}

export function BoxCanvas({ boxes, subjects, onChange, background, disabled = false }: { boxes: NormBox[]; subjects: BoxSubject[]; onChange: (boxes: NormBox[]) => void; background?: ReactNode; disabled?: boolean }) {
  const frame = useRef<HTMLDivElement>(null);
  const [drag, setDrag] = useState<{ index: number; corner: Corner | null; startX: number; startY: number; start: NormBox } | null>(null);

  useEffect(() => {
    if (!drag) return;
    const move = (event: globalThis.PointerEvent) => {
      const rect = frame.current!.getBoundingClientRect();
      const dx = (event.clientX - drag.startX) / rect.width;
      const dy = (event.clientY - drag.startY) / rect.height;
      const [x0, y0, x1, y1] = drag.start;
      let next: NormBox;
      if (!drag.corner) next = clampBox([x0 + dx, y0 + dy, x1 + dx, y1 + dy]);
      else {
        const nx0 = drag.corner.includes('w') ? Math.min(x0 + dx, x1 - MIN_SIDE) : x0;
        const nx1 = drag.corner.includes('e') ? Math.max(x1 + dx, x0 + MIN_SIDE) : x1;
        const ny0 = drag.corner.includes('n') ? Math.min(y0 + dy, y1 - MIN_SIDE) : y0;
        const ny1 = drag.corner.includes('s') ? Math.max(y1 + dy, y0 + MIN_SIDE) : y1;
        next = clampBox([Math.max(0, nx0), Math.max(0, ny0), Math.min(1, nx1), Math.min(1, ny1)]);
      }
      onChange(boxes.map((box, i) => (i === drag.index ? next : box)));
    };
    const up = () => setDrag(null);
    window.addEventListener('pointermove', move);
    window.addEventListener('pointerup', up);
    return () => {
      window.removeEventListener('pointermove', move);
      window.removeEventListener('pointerup', up);
    };
  }, [boxes, drag, onChange]);

  const start = (index: number, corner: Corner | null) => (event: PointerEvent) => {
    if (disabled) return;
    event.preventDefault();
    event.stopPropagation();
    (event.currentTarget as HTMLElement).focus();
    setDrag({ index, corner, startX: event.clientX, startY: event.clientY, start: boxes[index]! });
  };

  const onKeyDown = (index: number) => (event: KeyboardEvent) => {
    if (disabled) return;
    const arrows: Record<string, [number, number]> = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    const arrow = arrows[event.key];
    if (!arrow) return;
    event.preventDefault();
    const step = event.altKey ? 0.005 : 0.02;
    const [x0, y0, x1, y1] = boxes[index]!;
    const next: NormBox = event.shiftKey ? [x0, y0, Math.min(1, x1 + arrow[0] * step), Math.min(1, y1 + arrow[1] * step)] : [x0 + arrow[0] * step, y0 + arrow[1] * step, x1 + arrow[0] * step, y1 + arrow[1] * step];
    onChange(boxes.map((box, i) => (i === index ? clampBox(next) : box)));
  };

  return (
    <div ref={frame} className="relative aspect-square w-full touch-none select-none overflow-hidden rounded-lg border border-neutral-300 bg-[linear-gradient(45deg,#f4f4f5_25%,transparent_25%,transparent_75%,#f4f4f5_75%),linear-gradient(45deg,#f4f4f5_25%,transparent_25%,transparent_75%,#f4f4f5_75%)] bg-[length:24px_24px] bg-[position:0_0,12px_12px] dark:border-neutral-700 dark:bg-neutral-900 dark:bg-none" data-testid="box-canvas">
      {background && <div className="absolute inset-0">{background}</div>}
      {boxes.map((box, index) => {
        const subject = subjects[index];
        const color = subject?.color ?? '#4f46e5';
        const [x0, y0, x1, y1] = box;
        return (
          <div
            key={index}
            role="group"
            tabIndex={disabled ? -1 : 0}
            aria-label={`Box ${index + 1} for ${subject?.label ?? 'subject'}: from ${Math.round(x0 * 100)}%, ${Math.round(y0 * 100)}% to ${Math.round(x1 * 100)}%, ${Math.round(y1 * 100)}%. Arrows move it, Shift+arrows resize it.`}
            data-testid={`box-${index}`}
            onPointerDown={start(index, null)}
            onKeyDown={onKeyDown(index)}
            className={`absolute rounded-md border-[3px] focus-visible:outline-3 focus-visible:outline-offset-2 focus-visible:outline-indigo-500 ${disabled ? '' : 'cursor-move'}`}
            style={{ left: `${x0 * 100}%`, top: `${y0 * 100}%`, width: `${(x1 - x0) * 100}%`, height: `${(y1 - y0) * 100}%`, borderColor: color, backgroundColor: `${color}22` }}
          >
            <span className={`absolute left-0 px-1.5 py-0.5 font-mono text-xs font-semibold text-white ${y0 < 0.07 ? 'top-0 rounded-br' : '-top-px -translate-y-full rounded-t'}`} style={{ backgroundColor: color }}>
              {subject?.label ?? `box ${index + 1}`}
            </span>
            {!disabled &&
              (['nw', 'ne', 'sw', 'se'] as const).map((corner) => (
                <span
                  key={corner}
                  aria-hidden
                  onPointerDown={start(index, corner)}
                  className="absolute size-3.5 rounded-sm border-2 bg-white"
                  style={{
                    borderColor: color,
                    cursor: corner === 'nw' || corner === 'se' ? 'nwse-resize' : 'nesw-resize',
                    left: corner.includes('w') ? -8 : undefined,
                    right: corner.includes('e') ? -8 : undefined,
                    top: corner.includes('n') ? -8 : undefined,
                    bottom: corner.includes('s') ? -8 : undefined,
                  }}
                />
              ))}
          </div>
        );
      })}
    </div>
  );
}
