// Worker side of the registry: the handler of each built-in job type. Imported only by worker processes, so the web
// server never loads the trainer.
import type { JobHandler } from './contract.ts';
import type { JobRegistry } from './registry.ts';

const builtinHandlers: Record<string, JobHandler> = {};

export function attachBuiltinHandlers(registry: JobRegistry): void {
  for (const [type, handler] of Object.entries(builtinHandlers)) {
    const definition = registry.definition(type);
    if (!definition) throw new Error(`built-in handler for '${type}' has no definition in the catalog`);
    registry.handle(definition, handler);
  }
}
