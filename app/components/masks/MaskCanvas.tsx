'use client';
// The photo with every instance's mask as a colour overlay, and the pointer and keyboard input of the mask tools:
// click (SAM point; Shift, Alt or right click for a negative point), box (SAM box prompt), brush and eraser.
import { forwardRef, useCallback, useEffect, useImperativeHandle, useRef, useState, type KeyboardEvent, type PointerEvent } from 'react';
import { drawOverlay, type OverlayLayer } from './bits.ts';

export type Tool = 'click' | 'box' | 'brush' | 'erase';
export interface PhotoPoint {
  x: number;
  y: number;
}
export interface SamPoint extends PhotoPoint {
  positive: boolean;
}
export type SamBox = [number, number, number, number];

export interface MaskCanvasHandle {
  redraw(): void;
}

interface Props {
  photoUrl: string;
  width: number;
  height: number;
  tool: Tool;
  brushRadius: number;
  layers: () => OverlayLayer[];
  points: SamPoint[];
  box: SamBox | null;
  onPoint(point: SamPoint): void;
  onBox(box: SamBox): void;
  /** a brush or eraser stroke: called on each segment, then once with `done` */
  onStroke(from: PhotoPoint, to: PhotoPoint, done: boolean): void;
  onKey(event: KeyboardEvent): boolean;
}

const CLICK_SLOP_PX = 5;

export const MaskCanvas = forwardRef<MaskCanvasHandle, Props>(function MaskCanvas(props, ref) {
  const { photoUrl, width, height, tool, brushRadius, layers, points, box, onPoint, onBox, onStroke, onKey } = props;
  const surface = useRef<HTMLDivElement>(null);
  const overlay = useRef<HTMLCanvasElement>(null);
  const frame = useRef<number | null>(null);
  const gesture = useRef<{ start: PhotoPoint; last: PhotoPoint; startClient: PhotoPoint; negative: boolean } | null>(null);
  const [draftBox, setDraftBox] = useState<SamBox | null>(null);
  const [hover, setHover] = useState<PhotoPoint | null>(null);
  const [cursor, setCursor] = useState<PhotoPoint>({ x: width / 2, y: height / 2 });
  const [boxCorner, setBoxCorner] = useState<PhotoPoint | null>(null);
  const [focused, setFocused] = useState(false);

  const redraw = useCallback(() => {
    if (frame.current !== null) return;
    frame.current = requestAnimationFrame(() => {
      frame.current = null;
      if (overlay.current) drawOverlay(overlay.current, width, height, layers());
    });
  }, [height, layers, width]);
  useImperativeHandle(ref, () => ({ redraw }), [redraw]);
  useEffect(() => redraw(), [redraw]);

  const toPhoto = (event: { clientX: number; clientY: number }): PhotoPoint => {
    const rect = surface.current!.getBoundingClientRect();
    return {
      x: Math.min(width - 1, Math.max(0, ((event.clientX - rect.left) / rect.width) * width)),
      y: Math.min(height - 1, Math.max(0, ((event.clientY - rect.top) / rect.height) * height)),
    };
  };

  const onPointerDown = (event: PointerEvent) => {
    if (event.button !== 0 && event.button !== 2) return;
    event.preventDefault();
    surface.current?.focus({ preventScroll: true });
    surface.current?.setPointerCapture(event.pointerId);
    const point = toPhoto(event);
    gesture.current = { start: point, last: point, startClient: { x: event.clientX, y: event.clientY }, negative: event.button === 2 || event.shiftKey || event.altKey };
    if (tool === 'brush' || tool === 'erase') onStroke(point, point, false);
  };

  const onPointerMove = (event: PointerEvent) => {
    const point = toPhoto(event);
    setHover(point);
    const current = gesture.current;
    if (!current) return;
    if (tool === 'brush' || tool === 'erase') {
      onStroke(current.last, point, false);
      current.last = point;
    } else if (tool === 'box') {
      setDraftBox([Math.min(current.start.x, point.x), Math.min(current.start.y, point.y), Math.max(current.start.x, point.x), Math.max(current.start.y, point.y)]);
    }
  };

  const onPointerUp = (event: PointerEvent) => {
    const current = gesture.current;
    gesture.current = null;
    if (!current) return;
    const point = toPhoto(event);
    const moved = Math.hypot(event.clientX - current.startClient.x, event.clientY - current.startClient.y);
    if (tool === 'brush' || tool === 'erase') onStroke(current.last, point, true);
    else if (tool === 'click' && moved < CLICK_SLOP_PX) onPoint({ ...point, positive: !current.negative });
    else if (tool === 'box') {
      setDraftBox(null);
      const next: SamBox = [Math.min(current.start.x, point.x), Math.min(current.start.y, point.y), Math.max(current.start.x, point.x), Math.max(current.start.y, point.y)];
      if (next[2] - next[0] >= 4 && next[3] - next[1] >= 4) onBox(next);
    }
  };

  const onKeyDown = (event: KeyboardEvent) => {
    if (onKey(event)) return;
    const step = (event.shiftKey ? 0.05 : 0.01) * Math.max(width, height);
    const moves: Record<string, [number, number]> = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    const move = moves[event.key];
    if (move) {
      event.preventDefault();
      setCursor((c) => ({ x: Math.min(width - 1, Math.max(0, c.x + move[0])), y: Math.min(height - 1, Math.max(0, c.y + move[1])) }));
      return;
    }
    if (event.key !== 'Enter' && event.key !== ' ') return;
    event.preventDefault();
    if (tool === 'click') onPoint({ ...cursor, positive: !event.shiftKey });
    else if (tool === 'box') {
      if (!boxCorner) setBoxCorner(cursor);
      else {
        onBox([Math.min(boxCorner.x, cursor.x), Math.min(boxCorner.y, cursor.y), Math.max(boxCorner.x, cursor.x), Math.max(boxCorner.y, cursor.y)]);
        setBoxCorner(null);
      }
    } else {
      onStroke(cursor, cursor, true);
    }
  };

  const marker = Math.max(width, height) / 90;
  const shownBox = draftBox ?? box;
  const toolCursor = tool === 'click' ? 'crosshair' : tool === 'box' ? 'crosshair' : 'none';
  const label = {
    click: 'Photo: click an object to segment it (Shift-click or right-click marks a part that does not belong). Keyboard: arrows move the cursor, Enter adds a point, Shift+Enter a negative point.',
    box: 'Photo: drag a box around an object. Keyboard: arrows move the cursor, Enter sets one corner, Enter again the other.',
    brush: 'Photo: paint the mask. Keyboard: arrows move the cursor, Enter paints.',
    erase: 'Photo: erase from the mask. Keyboard: arrows move the cursor, Enter erases.',
  }[tool];
  return (
    <div
      ref={surface}
      role="application"
      aria-label={label}
      tabIndex={0}
      data-testid="mask-canvas"
      onPointerDown={onPointerDown}
      onPointerMove={onPointerMove}
      onPointerUp={onPointerUp}
      onPointerLeave={() => setHover(null)}
      onContextMenu={(event) => event.preventDefault()}
      onKeyDown={onKeyDown}
      onFocus={() => setFocused(true)}
      onBlur={() => {
        setFocused(false);
        setBoxCorner(null);
      }}
      className="relative mx-auto touch-none select-none overflow-hidden rounded-lg bg-neutral-900 outline-none ring-indigo-500 ring-offset-2 focus-visible:ring-2 dark:ring-offset-neutral-950"
      style={{ aspectRatio: `${width} / ${height}`, width: `min(100%, calc((100vh - 17rem) * ${width / height}))`, minWidth: '16rem', cursor: toolCursor }}
    >
      {/* eslint-disable-next-line @next/next/no-img-element */}
      <img src={photoUrl} alt="" draggable={false} className="absolute inset-0 size-full" />
      <canvas ref={overlay} className="absolute inset-0 size-full" />
      <svg viewBox={`0 0 ${width} ${height}`} className="pointer-events-none absolute inset-0 size-full" aria-hidden>
        {shownBox && <rect x={shownBox[0]} y={shownBox[1]} width={shownBox[2] - shownBox[0]} height={shownBox[3] - shownBox[1]} fill="none" stroke="#fff" strokeWidth={marker / 3} strokeDasharray={`${marker} ${marker / 2}`} />}
        {points.map((point, i) => (
          <g key={i}>
            <circle cx={point.x} cy={point.y} r={marker} fill={point.positive ? '#16a34a' : '#dc2626'} stroke="#fff" strokeWidth={marker / 3} />
            <path
              d={point.positive ? `M${point.x - marker / 2} ${point.y}h${marker}M${point.x} ${point.y - marker / 2}v${marker}` : `M${point.x - marker / 2} ${point.y}h${marker}`}
              stroke="#fff"
              strokeWidth={marker / 3.5}
            />
          </g>
        ))}
        {(tool === 'brush' || tool === 'erase') && hover && <circle cx={hover.x} cy={hover.y} r={brushRadius} fill="none" stroke={tool === 'brush' ? '#fff' : '#fca5a5'} strokeWidth={marker / 4} />}
        {focused && !hover && (
          <g>
            <path d={`M${cursor.x - marker * 2} ${cursor.y}h${marker * 4}M${cursor.x} ${cursor.y - marker * 2}v${marker * 4}`} stroke="#facc15" strokeWidth={marker / 3} />
            {(tool === 'brush' || tool === 'erase') && <circle cx={cursor.x} cy={cursor.y} r={brushRadius} fill="none" stroke="#facc15" strokeWidth={marker / 4} />}
            {boxCorner && <rect x={Math.min(boxCorner.x, cursor.x)} y={Math.min(boxCorner.y, cursor.y)} width={Math.abs(cursor.x - boxCorner.x)} height={Math.abs(cursor.y - boxCorner.y)} fill="none" stroke="#facc15" strokeWidth={marker / 3} />}
          </g>
        )}
      </svg>
    </div>
  );
});
