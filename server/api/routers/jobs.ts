// Jobs: submit, cancel, retry, read, and follow events over SSE. A reconnecting client sends the id of the last
// event it saw (httpSubscriptionLink does it by itself) and receives only what came after.
import { tracked, TRPCError } from '@trpc/server';
import { z } from 'zod';
import { mapErrors, toTRPCError } from '../errors.ts';
import { publicProcedure, router } from '../trpc.ts';

const jobId = z.string().min(1).max(128);
const statuses = z.enum(['queued', 'running', 'completed', 'failed', 'cancelled']);

export const jobsRouter = router({
  types: publicProcedure.query(({ ctx }) =>
    mapErrors(async () => {
      const { jobs } = await ctx.services();
      return jobs.registry.types().map((type) => {
        const definition = jobs.registry.definition(type)!;
        return { type, description: definition.description, resource: definition.resource, timeoutMs: definition.timeoutMs, maxAttempts: definition.maxAttempts };
      });
    }),
  ),

  submit: publicProcedure
    .input(
      z.object({
        type: z.string().min(1).max(64),
        input: z.unknown(),
        projectId: z.string().min(1).max(128).nullish(),
        priority: z.number().int().min(-1000).max(1000).optional(),
        timeoutMs: z.number().int().positive().optional(),
      }),
    )
    .mutation(({ ctx, input }) =>
      mapErrors(async () => {
        const { jobs, projects } = await ctx.services();
        if (input.projectId) projects.require(input.projectId);
        return jobs.submit(input);
      }),
    ),

  cancel: publicProcedure.input(z.object({ id: jobId })).mutation(({ ctx, input }) => mapErrors(async () => (await ctx.services()).jobs.cancel(input.id))),

  retry: publicProcedure.input(z.object({ id: jobId })).mutation(({ ctx, input }) => mapErrors(async () => (await ctx.services()).jobs.retry(input.id))),

  get: publicProcedure.input(z.object({ id: jobId })).query(({ ctx, input }) =>
    mapErrors(async () => {
      const job = (await ctx.services()).jobs.get(input.id);
      if (!job) throw new TRPCError({ code: 'NOT_FOUND', message: `job ${input.id} does not exist` });
      return job;
    }),
  ),

  list: publicProcedure
    .input(
      z
        .object({
          projectId: z.string().optional(),
          type: z.string().optional(),
          statuses: z.array(statuses).optional(),
          before: jobId.optional(),
          limit: z.number().int().min(1).max(500).optional(),
        })
        .optional(),
    )
    .query(({ ctx, input }) => mapErrors(async () => (await ctx.services()).jobs.list(input ?? {}))),

  /** One job's events (ends after its terminal event) or a whole project's (runs until the client leaves). */
  events: publicProcedure
    .input(
      z
        .object({ jobId: jobId.optional(), projectId: z.string().min(1).optional(), lastEventId: z.string().nullish() })
        .refine((value) => (value.jobId === undefined) !== (value.projectId === undefined), { message: 'give exactly one of jobId and projectId' }),
    )
    .subscription(async function* ({ ctx, input, signal }) {
      const afterId = input.lastEventId ? Number(input.lastEventId) : 0;
      if (!Number.isInteger(afterId) || afterId < 0) throw new TRPCError({ code: 'BAD_REQUEST', message: `lastEventId '${input.lastEventId}' is not an event id` });
      const { jobs } = await ctx.services();
      const scope = input.jobId !== undefined ? { jobId: input.jobId } : { projectId: input.projectId! };
      try {
        for await (const event of jobs.follow(scope, afterId, signal)) yield tracked(String(event.id), event);
      } catch (error) {
        throw toTRPCError(error);
      }
    }),
});
