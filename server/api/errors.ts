// Maps the server's own errors to tRPC codes, so clients get BAD_REQUEST / NOT_FOUND / CONFLICT with the message
// that says what to fix instead of INTERNAL_SERVER_ERROR.
import { TRPCError } from '@trpc/server';
import { z } from 'zod';
import { JobInputError } from '../jobs/contract.ts';
import { JobNotFoundError } from '../jobs/service.ts';
import { ArtifactNotFoundError, ArtifactTooLargeError } from '../storage/artifacts.ts';
import { UploadError } from '../storage/images.ts';
import { ConflictError, NotFoundError } from '../storage/projects.ts';

export function toTRPCError(error: unknown): unknown {
  if (error instanceof TRPCError) return error;
  if (error instanceof z.ZodError) return new TRPCError({ code: 'BAD_REQUEST', message: z.prettifyError(error), cause: error });
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof JobInputError || error instanceof UploadError || error instanceof ArtifactTooLargeError) return new TRPCError({ code: 'BAD_REQUEST', message, cause: error });
  if (error instanceof JobNotFoundError || error instanceof NotFoundError || error instanceof ArtifactNotFoundError) return new TRPCError({ code: 'NOT_FOUND', message, cause: error });
  if (error instanceof ConflictError) return new TRPCError({ code: 'CONFLICT', message, cause: error });
  return error;
}

export async function mapErrors<T>(run: () => Promise<T> | T): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw toTRPCError(error);
  }
}
