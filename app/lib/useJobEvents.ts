'use client';
// Follows one job's events over SSE from its first event, so a page opened mid-run (or after a restart of the server
// or the worker) rebuilds the whole history; a dropped connection resumes from the last event id.
import { skipToken } from '@tanstack/react-query';
import { useSubscription } from '@trpc/tanstack-react-query';
import { useEffect, useRef, useState } from 'react';
import type { JobEvent } from '@/server/jobs/contract.ts';
import { useTRPC } from './trpc.ts';

export interface JobStream {
  events: JobEvent[];
  /** the last terminal event's kind, once the job ended */
  ended: 'completed' | 'failed' | 'cancelled' | null;
  connection: 'idle' | 'connecting' | 'pending' | 'error';
  error: string | null;
}

export function useJobEvents(jobId: string | null, onEvent?: (event: JobEvent) => void): JobStream {
  const trpc = useTRPC();
  const [events, setEvents] = useState<JobEvent[]>([]);
  const lastId = useRef(0);
  const callback = useRef(onEvent);
  callback.current = onEvent;

  useEffect(() => {
    setEvents([]);
    lastId.current = 0;
  }, [jobId]);

  const subscription = useSubscription(
    trpc.jobs.events.subscriptionOptions(jobId ? { jobId } : skipToken, {
      onData: ({ data: event }) => {
        if (event.id <= lastId.current) return;
        lastId.current = event.id;
        setEvents((previous) => [...previous, event]);
        callback.current?.(event);
      },
    }),
  );
  // A retried job starts again after its terminal event: only the latest run counts.
  let ended: JobStream['ended'] = null;
  for (const event of events) {
    if (event.kind === 'completed' || event.kind === 'failed' || event.kind === 'cancelled') ended = event.kind;
    else if (event.kind === 'queued' || event.kind === 'started' || event.kind === 'progress') ended = null;
  }
  return {
    events,
    ended,
    connection: subscription.status,
    error: subscription.error ? subscription.error.message : null,
  };
}
