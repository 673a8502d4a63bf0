'use client';
// A square crop over a photo: drag to move, drag the corner to resize, or use the keyboard (arrows move, + and −
// resize, Shift for larger steps). Coordinates are the photo's own (upright) pixels.
import { useCallback, useEffect, useRef, useState, type KeyboardEvent, type PointerEvent } from 'react';

export interface Crop {
  x: number;
  y: number;
  size: number;
}

export function centeredCrop(width: number, height: number): Crop {
  const size = Math.min(width, height);
  return { x: Math.floor((width - size) / 2), y: Math.floor((height - size) / 2), size };
}

function clampCrop(crop: Crop, width: number, height: number): Crop {
  const minimum = Math.max(8, Math.round(Math.min(width, height) / 20));
  const size = Math.round(Math.min(Math.max(crop.size, minimum), width, height));
  return { size, x: Math.round(Math.min(Math.max(crop.x, 0), width - size)), y: Math.round(Math.min(Math.max(crop.y, 0), height - size)) };
}

export function SquareCropEditor({ src, width, height, crop, onChange }: { src: string; width: number; height: number; crop: Crop; onChange: (crop: Crop) => void }) {
  const frame = useRef<HTMLDivElement>(null);
  const [drag, setDrag] = useState<{ mode: 'move' | 'resize'; startX: number; startY: number; start: Crop } | null>(null);

  const scale = useCallback(() => (frame.current ? frame.current.getBoundingClientRect().width / width : 1), [width]);

  const onPointerDown = (mode: 'move' | 'resize') => (event: PointerEvent) => {
    event.preventDefault();
    event.stopPropagation();
    (event.target as Element).setPointerCapture(event.pointerId);
    setDrag({ mode, startX: event.clientX, startY: event.clientY, start: crop });
  };

  useEffect(() => {
    if (!drag) return;
    const move = (event: globalThis.PointerEvent) => {
      const s = scale();
      const dx = (event.clientX - drag.startX) / s;
      const dy = (event.clientY - drag.startY) / s;
      if (drag.mode === 'move') onChange(clampCrop({ ...drag.start, x: drag.start.x + dx, y: drag.start.y + dy }, width, height));
      else {
        const size = Math.min(drag.start.size + Math.max(dx, dy), width - drag.start.x, height - drag.start.y);
        onChange(clampCrop({ ...drag.start, size }, width, height));
      }
    };
    const up = () => setDrag(null);
    window.addEventListener('pointermove', move);
    window.addEventListener('pointerup', up);
    return () => {
      window.removeEventListener('pointermove', move);
      window.removeEventListener('pointerup', up);
    };
  }, [drag, height, onChange, scale, width]);

  const onKeyDown = (event: KeyboardEvent) => {
    const step = Math.max(1, Math.round(Math.min(width, height) / (event.shiftKey ? 10 : 100)));
    const moves: Record<string, [number, number, number]> = {
      ArrowLeft: [-step, 0, 0],
      ArrowRight: [step, 0, 0],
      ArrowUp: [0, -step, 0],
      ArrowDown: [0, step, 0],
      '+': [0, 0, step],
      '=': [0, 0, step],
      '-': [0, 0, -step],
    };
    const change = moves[event.key];
    if (!change) return;
    event.preventDefault();
    onChange(clampCrop({ x: crop.x + change[0] - change[2] / 2, y: crop.y + change[1] - change[2] / 2, size: crop.size + change[2] }, width, height));
  };

  const percent = (value: number, of: number) => `${(100 * value) / of}%`;
  return (
    <div ref={frame} className="relative mx-auto w-full select-none overflow-hidden rounded-lg bg-neutral-900" style={{ aspectRatio: `${width} / ${height}`, maxWidth: `calc(62vh * ${width / height})` }}>
      {/* eslint-disable-next-line @next/next/no-img-element */}
      <img src={src} alt="The photo to crop" className="absolute inset-0 size-full" draggable={false} />
      <div
        role="slider"
        tabIndex={0}
        aria-label="Square crop: arrow keys move it, + and − resize it"
        aria-valuetext={`${crop.size}×${crop.size} px at ${crop.x}, ${crop.y}`}
        aria-valuenow={crop.size}
        aria-valuemin={1}
        aria-valuemax={Math.min(width, height)}
        onKeyDown={onKeyDown}
        onPointerDown={onPointerDown('move')}
        data-testid="crop-box"
        className="absolute cursor-move outline-2 outline-white focus-visible:outline-4 focus-visible:outline-indigo-400"
        style={{
          left: percent(crop.x, width),
          top: percent(crop.y, height),
          width: percent(crop.size, width),
          height: percent(crop.size, height),
          boxShadow: '0 0 0 9999px rgba(0,0,0,0.55)',
          outlineStyle: 'solid',
        }}
      >
        <div className="pointer-events-none absolute inset-0 grid grid-cols-3 grid-rows-3">
          {Array.from({ length: 9 }, (_, i) => (
            <div key={i} className="border border-white/25" />
          ))}
        </div>
        <div
          aria-hidden
          onPointerDown={onPointerDown('resize')}
          className="absolute -bottom-2 -right-2 size-5 cursor-nwse-resize rounded-sm border-2 border-indigo-600 bg-white"
        />
      </div>
    </div>
  );
}

/** What the model sees: the crop at the model's resolution, drawn large with visible pixels. */
export function ModelViewPreview({ src, crop, resolution }: { src: string; crop: Crop; resolution: number }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const [image, setImage] = useState<HTMLImageElement | null>(null);
  useEffect(() => {
    const img = new Image();
    img.onload = () => setImage(img);
    img.src = src;
  }, [src]);
  useEffect(() => {
    const context = canvas.current?.getContext('2d');
    if (!context || !image) return;
    context.imageSmoothingQuality = 'high';
    context.clearRect(0, 0, resolution, resolution);
    context.drawImage(image, crop.x, crop.y, crop.size, crop.size, 0, 0, resolution, resolution);
  }, [crop, image, resolution]);
  return <canvas ref={canvas} width={resolution} height={resolution} className="size-40 rounded-md border border-neutral-300 dark:border-neutral-700" style={{ imageRendering: 'pixelated' }} aria-label={`The crop at ${resolution}×${resolution} px`} />;
}
