// Worker side of the registry: attaches the handler of each built-in job type to its definition. Imported only by
// worker processes, so the web server never loads the trainer; each handler module is loaded on its first job, so
// a worker starts in a moment and loads only what its jobs need.
import type { JobContext } from './contract.ts';
import type { JobRegistry } from './registry.ts';
import { composeJob, type ComposeJobInput } from './types/compose.ts';
import { learnJob, type LearnJobInput } from './types/learn.ts';
import { packExportJob, type PackExportJobInput } from './types/pack-export.ts';
import { packImportJob, type PackImportJobInput } from './types/pack-import.ts';
import { samEncodeJob, type SamEncodeJobInput } from './types/sam-encode.ts';

export function attachBuiltinHandlers(registry: JobRegistry): void {
  registry.handle(learnJob, async (context: JobContext<LearnJobInput>) => (await import('./handlers/learn.ts')).runLearnJob(context));
  registry.handle(composeJob, async (context: JobContext<ComposeJobInput>) => (await import('./handlers/compose.ts')).runComposeJob(context));
  registry.handle(samEncodeJob, async (context: JobContext<SamEncodeJobInput>) => (await import('./handlers/sam-encode.ts')).runSamEncodeJob(context));
  registry.handle(packExportJob, async (context: JobContext<PackExportJobInput>) => (await import('./handlers/pack-export.ts')).runPackExportJob(context));
  registry.handle(packImportJob, async (context: JobContext<PackImportJobInput>) => (await import('./handlers/pack-import.ts')).runPackImportJob(context));
}
