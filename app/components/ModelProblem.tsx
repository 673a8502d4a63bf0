'use client';
// Learning and composing need a base model; when the workers' default is missing, say so before anything starts.
import { useQuery } from '@tanstack/react-query';
import { useTRPC } from '../lib/trpc.ts';
import { Alert } from './ui.tsx';

export function ModelProblem() {
  const trpc = useTRPC();
  const model = useQuery(trpc.studio.model.queryOptions());
  if (!model.data || model.data.available) return null;
  return (
    <Alert tone="warning" title="No base model to learn or compose with">
      {model.data.problem}. Start the studio with <code>MIFO_MODEL=/path/to/a/diffusers/model npm start</code> (for a quick try, <code>MIFO_MODEL=../shared/fixtures/tiny-sd</code>), or install the embedded model in <code>models/default</code>.
    </Alert>
  );
}
