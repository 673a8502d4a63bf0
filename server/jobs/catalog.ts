// The built-in job types, defined once for the web server (which validates submissions) and the workers (which
// attach handlers to the same definitions in server/jobs/handlers.ts).
import type { JobDefinition } from './contract.ts';
import { JobRegistry } from './registry.ts';
import { composeJob } from './types/compose.ts';
import { learnJob } from './types/learn.ts';
import { packExportJob } from './types/pack-export.ts';
import { packImportJob } from './types/pack-import.ts';
import { samEncodeJob } from './types/sam-encode.ts';

export const builtinJobDefinitions: readonly JobDefinition[] = [learnJob, composeJob, samEncodeJob, packExportJob, packImportJob];

export function createJobRegistry(): JobRegistry {
  const registry = new JobRegistry();
  for (const definition of builtinJobDefinitions) registry.define(definition);
  return registry;
}
