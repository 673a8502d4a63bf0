import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The model every command uses when none is given: $MIFO_MODEL, else the embedded model shipped in models/default. */
export function defaultModelDir(): string {
  if (process.env.MIFO_MODEL) return resolve(process.env.MIFO_MODEL);
  const embedded = resolve(import.meta.dirname, '..', '..', 'models', 'default');
  if (!existsSync(join(embedded, 'model_index.json'))) {
    throw new Error(`no --model given and no embedded model at ${embedded}; pass --model DIR or set MIFO_MODEL`);
  }
  return embedded;
}
