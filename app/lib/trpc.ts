'use client';
// The typed tRPC client for the studio's components (React Query integration).
import { createTRPCContext } from '@trpc/tanstack-react-query';
import type { inferRouterOutputs } from '@trpc/server';
import type { AppRouter } from '@/server/api/root.ts';

export const { TRPCProvider, useTRPC } = createTRPCContext<AppRouter>();

export type RouterOutputs = inferRouterOutputs<AppRouter>;
export type ProjectDetail = RouterOutputs['projects']['get'];
export type InstanceRow = ProjectDetail['instances'][number];
export type GenerationRow = ProjectDetail['generations'][number];
export type JobRow = RouterOutputs['jobs']['get'];
export type LearnedToken = RouterOutputs['studio']['tokens'][number];
