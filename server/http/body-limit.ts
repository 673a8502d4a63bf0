// Caps what one request may upload before anything buffers it: the tRPC fetch adapter reads a FormData body whole,
// so without a cap a single request could fill the web server's memory before any per-file limit is checked.
import { readServerConfig } from '../config.ts';
import { MAX_UPLOADED_PACK_BYTES } from '../packs/previews.ts';

/** The largest upload (a photo or mask, or a pack) plus room for the form's other fields. */
export function maxRequestBytes(config = readServerConfig()): number {
  return Math.max(config.maxUploadBytes, MAX_UPLOADED_PACK_BYTES) + 1024 * 1024;
}

/** The same request whose body fails to read, with a message saying so, once it passes `maxBytes`. */
export function limitRequestBody(request: Request, maxBytes: number): Request {
  if (!request.body) return request;
  const tooLarge = () => new Error(`the request is larger than ${(maxBytes / 1048576).toFixed(0)} MB; upload a smaller file`);
  let seen = 0;
  const counted = request.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      start(controller) {
        if (Number(request.headers.get('content-length')) > maxBytes) controller.error(tooLarge());
      },
      transform(chunk, controller) {
        seen += chunk.byteLength;
        if (seen > maxBytes) controller.error(tooLarge());
        else controller.enqueue(chunk);
      },
    }),
  );
  return new Request(request, { body: counted, duplex: 'half' } as RequestInit);
}
