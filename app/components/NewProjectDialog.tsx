'use client';
// New project from a photo: pick or drop a JPEG, PNG or WebP, choose the square the model will learn, name it.
// The server checks the file again (format from its bytes, size and pixel limits) and applies EXIF orientation.
import { useMutation, useQuery } from '@tanstack/react-query';
import { useRouter } from 'next/navigation';
import { useEffect, useId, useRef, useState, type DragEvent } from 'react';
import { errorMessage } from '../lib/format.ts';
import { useTRPC } from '../lib/trpc.ts';
import { Dialog } from './Dialog.tsx';
import { centeredCrop, ModelViewPreview, SquareCropEditor, type Crop } from './SquareCrop.tsx';
import { Alert, Button, Spinner } from './ui.tsx';

const ACCEPTED = ['image/jpeg', 'image/png', 'image/webp'];
const ACCEPTED_EXTENSIONS = /\.(jpe?g|png|webp)$/i;
/** The server's default limits (MIFO_MAX_UPLOAD_BYTES / _PIXELS); it checks again and has the last word. */
const MAX_BYTES = 25 * 1024 * 1024;
const MAX_PIXELS = 40_000_000;

interface Picked {
  file: File;
  url: string;
  width: number;
  height: number;
}

function checkFile(file: File): string | null {
  if (!ACCEPTED.includes(file.type) && !ACCEPTED_EXTENSIONS.test(file.name)) {
    return `${file.name} is ${file.type ? `a ${file.type} file` : 'not an image the studio reads'}: choose a JPEG, PNG or WebP photo.`;
  }
  if (file.size > MAX_BYTES) return `${file.name} is ${(file.size / 1048576).toFixed(1)} MB; photos up to 25 MB work. Export it smaller and try again.`;
  return null;
}

export function NewProjectDialog({ open, onClose }: { open: boolean; onClose: () => void }) {
  const trpc = useTRPC();
  const router = useRouter();
  const model = useQuery(trpc.studio.model.queryOptions());
  const [picked, setPicked] = useState<Picked | null>(null);
  const [crop, setCrop] = useState<Crop | null>(null);
  const [name, setName] = useState('');
  /** the name was typed, not taken from a file: a photo picked later keeps it */
  const nameTyped = useRef(false);
  const [problem, setProblem] = useState<string | null>(null);
  const [dragging, setDragging] = useState(false);
  const fileInput = useRef<HTMLInputElement>(null);
  const nameId = useId();
  const create = useMutation(trpc.studio.createProject.mutationOptions({ onSuccess: (project) => router.push(`/projects/${project.id}/masks`) }));

  useEffect(() => () => {
    if (picked) URL.revokeObjectURL(picked.url);
  }, [picked]);

  const reset = () => {
    setPicked(null);
    setCrop(null);
    setProblem(null);
    create.reset();
  };

  const pick = (file: File | undefined) => {
    if (!file) return;
    reset();
    const issue = checkFile(file);
    if (issue) {
      setProblem(issue);
      return;
    }
    const url = URL.createObjectURL(file);
    const image = new Image();
    image.onload = () => {
      // Browsers apply the EXIF orientation, so these are the upright sizes the server will crop in.
      const { naturalWidth: width, naturalHeight: height } = image;
      if (width * height > MAX_PIXELS) {
        setProblem(`${file.name} is ${width}×${height} (${((width * height) / 1e6).toFixed(0)} MP); photos up to 40 MP work. Resize it and try again.`);
        URL.revokeObjectURL(url);
        return;
      }
      setPicked({ file, url, width, height });
      setCrop(centeredCrop(width, height));
      if (!nameTyped.current) setName(file.name.replace(/\.[^.]+$/, '').replace(/[_-]+/g, ' ').trim().slice(0, 80) || 'My photo');
    };
    image.onerror = () => {
      URL.revokeObjectURL(url);
      setProblem(`${file.name} could not be opened as an image: the file may be damaged. Try exporting it again as JPEG or PNG.`);
    };
    image.src = url;
  };

  const onDrop = (event: DragEvent) => {
    event.preventDefault();
    setDragging(false);
    pick(event.dataTransfer.files[0]);
  };

  const submit = () => {
    if (!picked || !crop) return;
    const form = new FormData();
    form.set('name', name.trim() || 'My photo');
    form.set('photo', picked.file, picked.file.name);
    form.set('crop', JSON.stringify(crop));
    create.mutate(form);
  };

  const resolution = model.data?.available ? model.data.resolution : null;
  return (
    <Dialog open={open} onClose={() => (create.isPending ? undefined : (reset(), onClose()))} title="New project from a photo" wide>
      <div className="space-y-4">
        {!picked && (
          <div
            onDragOver={(event) => {
              event.preventDefault();
              setDragging(true);
            }}
            onDragLeave={() => setDragging(false)}
            onDrop={onDrop}
            className={`flex flex-col items-center justify-center gap-3 rounded-xl border-2 border-dashed px-6 py-12 text-center ${dragging ? 'border-indigo-500 bg-indigo-50 dark:bg-indigo-950/40' : 'border-neutral-300 dark:border-neutral-700'}`}
          >
            <p className="text-base font-medium">Drop a photo here</p>
            <p className="text-sm text-neutral-600 dark:text-neutral-400">JPEG, PNG or WebP, up to 25 MB and 40 megapixels. One photo with the objects you want to learn, each clearly visible.</p>
            <Button variant="primary" onClick={() => fileInput.current?.click()}>
              Choose a photo…
            </Button>
            <input ref={fileInput} type="file" accept="image/jpeg,image/png,image/webp" className="sr-only" data-testid="photo-input" aria-label="Photo file" onChange={(event) => pick(event.target.files?.[0])} />
          </div>
        )}
        {problem && <Alert tone="error" title="This file cannot be used">{problem}</Alert>}
        {picked && crop && (
          <div className="grid gap-5 md:grid-cols-[minmax(0,1fr)_13rem]">
            <div>
              <SquareCropEditor src={picked.url} width={picked.width} height={picked.height} crop={crop} onChange={setCrop} />
              <p className="mt-2 text-xs text-neutral-600 dark:text-neutral-400">
                Drag the square (or focus it and use the arrow keys, + and −) to choose what the model learns. {picked.width}×{picked.height} px photo, crop {crop.size}×{crop.size} px.
              </p>
            </div>
            <div className="space-y-4">
              {resolution && (
                <div>
                  <p className="mb-1.5 text-sm font-medium">What the model sees</p>
                  <ModelViewPreview src={picked.url} crop={crop} resolution={resolution} />
                  <p className="mt-1 text-xs text-neutral-600 dark:text-neutral-400">
                    The model learns and composes at {resolution}×{resolution} px; masks are drawn on a sharper copy.
                  </p>
                </div>
              )}
              <div>
                <label htmlFor={nameId} className="mb-1 block text-sm font-medium">
                  Project name
                </label>
                <input
                  id={nameId}
                  value={name}
                  onChange={(event) => {
                    nameTyped.current = event.target.value !== '';
                    setName(event.target.value);
                  }}
                  maxLength={200}
                  className="w-full rounded-md border border-neutral-300 bg-white px-2.5 py-1.5 text-sm dark:border-neutral-700 dark:bg-neutral-800"
                />
              </div>
            </div>
          </div>
        )}
        {create.error && <Alert tone="error" title="The photo was not accepted">{errorMessage(create.error)}</Alert>}
        <div className="flex justify-end gap-2 border-t border-neutral-200 pt-4 dark:border-neutral-800">
          {picked && (
            <Button variant="ghost" onClick={reset} disabled={create.isPending}>
              Choose another photo
            </Button>
          )}
          <Button variant="primary" onClick={submit} disabled={!picked || create.isPending || !name.trim()}>
            {create.isPending && <Spinner />}
            Create project
          </Button>
        </div>
      </div>
    </Dialog>
  );
}
