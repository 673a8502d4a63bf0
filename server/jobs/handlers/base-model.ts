// The base model a job runs on: the folder its input names, else the worker's default ($MIFO_MODEL or the embedded
// model). A missing or wrong folder is the input's fault, so the job fails once with the reason instead of retrying.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { defaultModelDir } from '../../../trainer/cli/default_model.ts';
import { JobInputError } from '../contract.ts';

export function resolveBaseModel(model: string | undefined, workerId: string): string {
  let dir: string;
  try {
    dir = model ? resolve(model) : defaultModelDir();
  } catch (error) {
    throw new JobInputError((error as Error).message);
  }
  if (!existsSync(join(dir, 'model_index.json'))) throw new JobInputError(`base model ${dir} is not a diffusers folder (no model_index.json) on worker ${workerId}`);
  return dir;
}
