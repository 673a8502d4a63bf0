// Uploading blobs that other records point to (instance masks, thumbnails). Reading them goes through plain HTTP
// (server/http/artifacts.ts) so that <img src> works and browsers cache them by address.
import { z } from 'zod';
import { inspectPhoto, UploadError } from '../../storage/images.ts';
import { mapErrors } from '../errors.ts';
import { publicProcedure, router } from '../trpc.ts';

export const artifactsRouter = router({
  /** FormData: file (JPEG, PNG or WebP). Returns its reference; storing the same bytes twice returns the same one. */
  uploadImage: publicProcedure.input(z.instanceof(FormData)).mutation(({ ctx, input }) =>
    mapErrors(async () => {
      const services = await ctx.services();
      const file = input.get('file');
      if (!(file instanceof Blob)) throw new UploadError("attach the image as the file field 'file'");
      if (file.size > services.config.maxUploadBytes) throw new UploadError(`the image is larger than ${services.config.maxUploadBytes} bytes`);
      const bytes = new Uint8Array(await file.arrayBuffer());
      const info = await inspectPhoto(bytes, { maxBytes: services.config.maxUploadBytes, maxPixels: services.config.maxUploadPixels });
      return { ...(await services.artifacts.put(bytes, info.mediaType)), width: info.width, height: info.height };
    }),
  ),

  exists: publicProcedure
    .input(z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/) }))
    .query(({ ctx, input }) => mapErrors(async () => ({ sha256: input.sha256, size: (await ctx.services()).artifacts.sizeOf(input.sha256) }))),
});
