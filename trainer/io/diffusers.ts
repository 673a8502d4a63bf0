// The diffusers folder layout: model_index.json names each component; each component folder holds its
// config.json (scheduler_config.json for schedulers) and safetensors weights, possibly sharded.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFolderError, readJson, type PipelineIndex } from './model_index.ts';
import { refusePickle, SafetensorsError, SafetensorsFile } from './safetensors.ts';

export function requireComponent(dir: string, index: PipelineIndex, name: string, expectedClasses: string[]): string {
  const entry = index.components[name];
  if (!entry) throw new ModelFolderError(`${dir}: model_index.json has no '${name}' component`);
  if (!expectedClasses.includes(entry[1])) {
    throw new ModelFolderError(`${dir}: component '${name}' is a ${entry[1]}; supported: ${expectedClasses.join(', ')}`);
  }
  const componentDir = join(dir, name);
  if (!existsSync(componentDir) || !statSync(componentDir).isDirectory()) {
    throw new ModelFolderError(`${dir}: component folder '${name}/' is missing`);
  }
  return componentDir;
}

export function readComponentConfig<T = Record<string, unknown>>(componentDir: string, fileName = 'config.json'): T {
  return readJson<T>(join(componentDir, fileName));
}

const WEIGHT_STEMS = ['diffusion_pytorch_model', 'model'];

/**
 * A component's weights as one key space over one or more safetensors files (sharded checkpoints carry an
 * `*.safetensors.index.json` with a weight_map).
 */
export class WeightSource {
  private constructor(
    readonly files: SafetensorsFile[],
    private readonly fileOfKey: Map<string, SafetensorsFile>,
  ) {}

  static open(paths: string[]): WeightSource {
    const files: SafetensorsFile[] = [];
    const fileOfKey = new Map<string, SafetensorsFile>();
    try {
      for (const path of paths) {
        const file = SafetensorsFile.open(path);
        files.push(file);
        for (const key of file.keys()) {
          if (fileOfKey.has(key)) throw new SafetensorsError(`tensor '${key}' appears in both ${fileOfKey.get(key)!.path} and ${path}`);
          fileOfKey.set(key, file);
        }
      }
    } catch (error) {
      for (const file of files) file.close();
      throw error;
    }
    return new WeightSource(files, fileOfKey);
  }

  /** Finds the safetensors weights of a component folder, preferring a variant (e.g. "fp16") when asked. */
  static forComponent(componentDir: string, variant?: string): WeightSource {
    return WeightSource.open(findWeightFiles(componentDir, variant));
  }

  keys(): string[] {
    return [...this.fileOfKey.keys()];
  }

  has(key: string): boolean {
    return this.fileOfKey.has(key);
  }

  shape(key: string): number[] {
    return this.file(key).info(key).shape;
  }

  readFloat32(key: string): { shape: number[]; data: Float32Array } {
    return this.file(key).readFloat32(key);
  }

  close(): void {
    for (const file of this.files) file.close();
  }

  private file(key: string): SafetensorsFile {
    const file = this.fileOfKey.get(key);
    if (!file) throw new SafetensorsError(`weights have no tensor '${key}'`);
    return file;
  }
}

export function findWeightFiles(componentDir: string, variant?: string): string[] {
  const names = existsSync(componentDir) ? readdirSync(componentDir) : [];
  const suffix = variant ? `.${variant}.safetensors` : '.safetensors';
  for (const stem of WEIGHT_STEMS) {
    const single = `${stem}${suffix}`;
    if (names.includes(single)) return [join(componentDir, single)];
    const indexName = `${single}.index.json`;
    if (names.includes(indexName)) {
      const index = readJson<{ weight_map?: Record<string, string> }>(join(componentDir, indexName));
      const shards = [...new Set(Object.values(index.weight_map ?? {}))];
      if (shards.length === 0) throw new ModelFolderError(`${join(componentDir, indexName)} has an empty weight_map`);
      return shards.map((shard) => join(componentDir, shard));
    }
  }
  if (variant) return findWeightFiles(componentDir);
  const pickle = names.find((n) => /\.(bin|ckpt|pt|pth)$/.test(n));
  if (pickle) refusePickle(join(componentDir, pickle));
  throw new ModelFolderError(
    `${componentDir}: no safetensors weights found (looked for ${WEIGHT_STEMS.map((s) => s + '.safetensors').join(', ')} and sharded index files)`,
  );
}
