'use client';
// Picks which of the masks in a SAM automatic-mask-generator file become instances. The generator finds many
// masks (parts and wholes); the largest come first, and the ones that look like whole objects are preselected.
import { useEffect, useRef, useState } from 'react';
import { artifactUrl } from '../../lib/artifacts.ts';
import { Dialog } from '../Dialog.tsx';
import { Button } from '../ui.tsx';
import { loadMaskBits } from './bits.ts';

export interface Candidate {
  index: number;
  sha256: string;
  coverage: number;
  predictedIou: number | null;
  stabilityScore: number | null;
}

const THUMB = 112;

function CandidateThumb({ photoUrl, maskUrl }: { photoUrl: string; maskUrl: string }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    let cancelled = false;
    const photo = new Image();
    photo.onload = async () => {
      const bits = await loadMaskBits(maskUrl, THUMB, THUMB);
      const context = canvas.current?.getContext('2d');
      if (cancelled || !context) return;
      context.drawImage(photo, 0, 0, THUMB, THUMB);
      const image = context.getImageData(0, 0, THUMB, THUMB);
      for (let i = 0; i < bits.data.length; i++) {
        const o = i * 4;
        if (bits.data[i]) {
          image.data[o] = Math.round(image.data[o]! * 0.4 + 255 * 0.6);
          image.data[o + 1] = Math.round(image.data[o + 1]! * 0.4 + 60 * 0.6);
          image.data[o + 2] = Math.round(image.data[o + 2]! * 0.4 + 80 * 0.6);
        } else {
          image.data[o] = image.data[o]! * 0.45;
          image.data[o + 1] = image.data[o + 1]! * 0.45;
          image.data[o + 2] = image.data[o + 2]! * 0.45;
        }
      }
      context.putImageData(image, 0, 0);
    };
    photo.src = photoUrl;
    return () => {
      cancelled = true;
    };
  }, [maskUrl, photoUrl]);
  return <canvas ref={canvas} width={THUMB} height={THUMB} className="size-28 rounded-md" />;
}

export function SamJsonDialog({ photo, total, candidates, onCancel, onAdd }: { photo: { sha256: string }; total: number; candidates: Candidate[]; onCancel: () => void; onAdd: (chosen: Candidate[]) => void }) {
  const [chosen, setChosen] = useState<Set<number>>(() => new Set(candidates.filter((c) => c.coverage > 0.005 && c.coverage < 0.6).slice(0, 3).map((c) => c.index)));
  const toggle = (index: number) =>
    setChosen((current) => {
      const next = new Set(current);
      if (next.has(index)) next.delete(index);
      else next.add(index);
      return next;
    });
  return (
    <Dialog open onClose={onCancel} title="Choose the masks to add" wide>
      <p className="mb-3 text-sm text-neutral-600 dark:text-neutral-400">
        The file holds {total} mask{total === 1 ? '' : 's'}
        {total > candidates.length ? `; the ${candidates.length} largest are shown` : ''}. Each one you pick becomes an instance you can rename and refine.
      </p>
      <ul className="grid max-h-[60vh] grid-cols-2 gap-3 overflow-y-auto sm:grid-cols-4 md:grid-cols-5">
        {candidates.map((candidate) => (
          <li key={candidate.index}>
            <label className={`flex cursor-pointer flex-col items-center gap-1 rounded-lg border-2 p-1.5 text-xs ${chosen.has(candidate.index) ? 'border-indigo-500' : 'border-transparent'}`}>
              <CandidateThumb photoUrl={artifactUrl(photo.sha256)} maskUrl={artifactUrl(candidate.sha256)} />
              <span className="flex items-center gap-1">
                <input type="checkbox" checked={chosen.has(candidate.index)} onChange={() => toggle(candidate.index)} />
                #{candidate.index} · {(candidate.coverage * 100).toFixed(1)}%
              </span>
              {candidate.predictedIou !== null && <span className="text-neutral-500">IoU {candidate.predictedIou.toFixed(2)}</span>}
            </label>
          </li>
        ))}
      </ul>
      <div className="mt-4 flex justify-end gap-2">
        <Button variant="ghost" onClick={onCancel}>
          Cancel
        </Button>
        <Button variant="primary" disabled={chosen.size === 0} onClick={() => onAdd(candidates.filter((c) => chosen.has(c.index)))}>
          Add {chosen.size} instance{chosen.size === 1 ? '' : 's'}
        </Button>
      </div>
    </Dialog>
  );
}
