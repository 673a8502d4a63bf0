'use client';
// A one-line view of a short job (pack export or import): what it is doing, and its error if it fails.
import type { JobEvent, JsonValue, ProgressUpdate } from '@/server/jobs/contract.ts';
import { useJobEvents } from '../lib/useJobEvents.ts';
import { Alert, Spinner } from './ui.tsx';

export function JobStatus({ jobId, what, onFinished }: { jobId: string; what: string; onFinished?: (event: JobEvent, result: JsonValue | null) => void }) {
  const stream = useJobEvents(jobId, (event) => {
    if (event.kind === 'completed') onFinished?.(event, (event.data.result as JsonValue | undefined) ?? null);
    if (event.kind === 'failed' || event.kind === 'cancelled') onFinished?.(event, null);
  });
  const failed = stream.events.findLast((event) => event.kind === 'failed');
  if (stream.ended === 'failed') {
    return <Alert tone="error" title={`${what} failed`}>{String((failed?.data.error as { message?: string } | undefined)?.message ?? 'the job stopped')}</Alert>;
  }
  if (stream.ended === 'cancelled') return <Alert tone="warning">{what} was cancelled.</Alert>;
  if (stream.ended === 'completed') return null;
  const progress = stream.events.findLast((event) => event.kind === 'progress')?.data as ProgressUpdate | undefined;
  return (
    <p className="flex items-center gap-2 text-sm text-neutral-600 dark:text-neutral-400" role="status">
      <Spinner /> {what}
      {progress?.message ? `: ${progress.message}` : progress?.phase ? `: ${progress.phase}` : stream.events.some((e) => e.kind === 'started') ? '…' : ' (waiting for a worker)…'}
    </p>
  );
}
