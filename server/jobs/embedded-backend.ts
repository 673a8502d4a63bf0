// The embedded queue needs no hand-over: its workers claim queued rows from the same SQLite database and poll it
// for cancellations.
import type { QueueBackend } from './service.ts';

export class EmbeddedBackend implements QueueBackend {
  readonly kind = 'embedded' as const;

  async enqueue(): Promise<void> {}

  async cancel(): Promise<void> {}

  async close(): Promise<void> {}
}
