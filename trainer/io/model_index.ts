// A diffusers folder's model_index.json and the JSON files around it, read without touching any weights: the web
// server uses this much (its bundle leaves out the weight loading of diffusers.ts).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export class ModelFolderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelFolderError';
  }
}

export interface PipelineIndex {
  className: string;
  /** component name -> [library, class name]; components saved as null are left out */
  components: Record<string, [string, string]>;
}

export function readJson<T = unknown>(path: string): T {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ModelFolderError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new ModelFolderError(`${path} is not valid JSON: ${(error as Error).message}`);
  }
}

export function readPipelineIndex(dir: string): PipelineIndex {
  const path = join(dir, 'model_index.json');
  if (!existsSync(path)) {
    throw new ModelFolderError(`${dir} is not a diffusers pipeline folder: model_index.json is missing`);
  }
  const raw = readJson<Record<string, unknown>>(path);
  const components: Record<string, [string, string]> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (name.startsWith('_') || !Array.isArray(value)) continue;
    const [library, className] = value as [unknown, unknown];
    if (typeof library === 'string' && typeof className === 'string') components[name] = [library, className];
  }
  return { className: String(raw._class_name ?? ''), components };
}
