'use client';
// A token's attention map (grey PNG, peak = white) as a heatmap over the photo.
import { useEffect, useRef } from 'react';

const SIZE = 192;

/** A perceptual dark-to-bright ramp (black → purple → orange → yellow). */
function heat(value: number): [number, number, number] {
  const stops: [number, [number, number, number]][] = [
    [0, [0, 0, 4]],
    [0.35, [120, 28, 109]],
    [0.65, [237, 105, 37]],
    [1, [252, 255, 164]],
  ];
  for (let i = 1; i < stops.length; i++) {
    const [t1, c1] = stops[i]!;
    const [t0, c0] = stops[i - 1]!;
    if (value <= t1) {
      const f = (value - t0) / (t1 - t0);
      return [c0[0] + (c1[0] - c0[0]) * f, c0[1] + (c1[1] - c0[1]) * f, c0[2] + (c1[2] - c0[2]) * f];
    }
  }
  return stops.at(-1)![1];
}

function load(src: string): Promise<HTMLImageElement> {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = reject;
    image.src = src;
  });
}

export function AttentionHeatmap({ photoUrl, mapUrl, label }: { photoUrl: string; mapUrl: string; label: string }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    let cancelled = false;
    Promise.all([load(photoUrl), load(mapUrl)]).then(([photo, map]) => {
      const context = canvas.current?.getContext('2d', { willReadFrequently: true });
      if (cancelled || !context) return;
      context.imageSmoothingQuality = 'high';
      context.drawImage(map, 0, 0, SIZE, SIZE);
      const attention = context.getImageData(0, 0, SIZE, SIZE).data;
      context.drawImage(photo, 0, 0, SIZE, SIZE);
      const image = context.getImageData(0, 0, SIZE, SIZE);
      for (let i = 0; i < SIZE * SIZE; i++) {
        const value = attention[i * 4]! / 255;
        const [r, g, b] = heat(value);
        const alpha = 0.1 + 0.8 * value * value;
        const o = i * 4;
        // the photo dimmed to grey underneath, so the colours read as attention
        const grey = (image.data[o]! * 0.3 + image.data[o + 1]! * 0.59 + image.data[o + 2]! * 0.11) * 0.6;
        image.data[o] = grey * (1 - alpha) + r * alpha;
        image.data[o + 1] = grey * (1 - alpha) + g * alpha;
        image.data[o + 2] = grey * (1 - alpha) + b * alpha;
      }
      context.putImageData(image, 0, 0);
    }, () => undefined);
    return () => {
      cancelled = true;
    };
  }, [mapUrl, photoUrl]);
  return <canvas ref={canvas} width={SIZE} height={SIZE} className="aspect-square w-full rounded-md" role="img" aria-label={label} />;
}
