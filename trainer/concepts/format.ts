// The concept folder (docs/concept-folder.md): manifest.json, learned_embeds.safetensors (diffusers textual-inversion
// layout, one key per token, [1, hidden] each), the phase-2 weights (PEFT-named LoRA, or full UNet/text-encoder
// folders) and PNGs of the masks and attention maps.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { findWeightFiles } from '../io/diffusers.ts';
import { readJson, readPipelineIndex } from '../io/model_index.ts';
import { SafetensorsFile, writeSafetensors } from '../io/safetensors.ts';

export const CONCEPT_FORMAT = 'mifo-concept';
export const CONCEPT_VERSION = 1;
export const EMBEDDINGS_FILE = 'learned_embeds.safetensors';
export const LORA_FILE = 'pytorch_lora_weights.safetensors';
export const MANIFEST_FILE = 'manifest.json';

export interface ConceptToken {
  token: string;
  /** the instance's name given by the user, or null */
  name: string | null;
  initializer: string | null;
  /** the instance mask at the learning resolution, relative to the folder */
  mask: string;
  /** the final attention map, relative to the folder */
  attentionMap: string;
}

export type ConceptWeights =
  | { type: 'none' }
  | { type: 'lora'; file: string; rank: number; alpha: number; components: ('unet' | 'text_encoder')[] }
  | { type: 'full'; unet: string; textEncoder: string };

export interface ConceptManifest {
  format: typeof CONCEPT_FORMAT;
  version: number;
  createdAt: string;
  baseModel: { id: string; weightsHash: string; hiddenSize: number; baseVocabSize: number };
  /** the training image at the learning resolution, relative to the folder */
  image: string;
  resolution: number;
  embeddings: string;
  tokens: ConceptToken[];
  weights: ConceptWeights;
  options: unknown;
  metrics: unknown;
}

/** A model's display id: model_index.json's _name_or_path when present, else the folder name. */
export function modelId(modelDir: string): string {
  const raw = readJson<Record<string, unknown>>(join(modelDir, 'model_index.json'));
  return typeof raw._name_or_path === 'string' && raw._name_or_path ? raw._name_or_path : basename(modelDir);
}

/** sha256 over every component's safetensors weights (components in name order), streamed. */
export async function hashModelWeights(modelDir: string): Promise<string> {
  const components = Object.keys(readPipelineIndex(modelDir).components).sort();
  const hash = createHash('sha256');
  for (const component of components) {
    const dir = join(modelDir, component);
    if (!existsSync(dir) || !readdirSync(dir).some((name) => name.endsWith('.safetensors') || name.endsWith('.index.json'))) continue;
    for (const file of findWeightFiles(dir).sort()) {
      hash.update(`${component}/${basename(file)}\n`);
      for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
    }
  }
  return `sha256:${hash.digest('hex')}`;
}

/** learned_embeds.safetensors: one [1, hidden] tensor per token, keyed by the token string. */
export function writeEmbeddings(path: string, tokens: readonly string[], rows: Float32Array, hidden: number): void {
  if (rows.length !== tokens.length * hidden) throw new Error(`${tokens.length} tokens need ${tokens.length * hidden} values, got ${rows.length}`);
  const tensors = Object.fromEntries(tokens.map((token, i) => [token, { dtype: 'F32' as const, shape: [1, hidden], data: rows.slice(i * hidden, (i + 1) * hidden) }]));
  writeSafetensors(path, tensors, { format: 'pt' });
}

/** token -> its [hidden] vector; a file with multi-vector tokens is refused. */
export function readEmbeddings(path: string): Map<string, Float32Array> {
  const file = SafetensorsFile.open(path);
  try {
    const out = new Map<string, Float32Array>();
    for (const key of file.keys()) {
      const { shape, data } = file.readFloat32(key);
      const vector = shape.length === 1 || (shape.length === 2 && shape[0] === 1);
      if (!vector) throw new Error(`${path}: '${key}' has shape [${shape}]; one vector per token ([1, hidden]) is expected`);
      out.set(key, data);
    }
    return out;
  } finally {
    file.close();
  }
}

export function readManifest(dir: string): ConceptManifest {
  const path = join(dir, MANIFEST_FILE);
  if (!existsSync(path)) throw new Error(`${dir} is not a concept folder: ${MANIFEST_FILE} is missing`);
  const manifest = readJson<ConceptManifest>(path);
  if (manifest.format !== CONCEPT_FORMAT) throw new Error(`${path}: format '${String(manifest.format)}' is not '${CONCEPT_FORMAT}'`);
  if (manifest.version !== CONCEPT_VERSION) throw new Error(`${path}: concept version ${manifest.version} is not supported (expected ${CONCEPT_VERSION})`);
  if (!Array.isArray(manifest.tokens) || manifest.tokens.length === 0) throw new Error(`${path}: lists no tokens`);
  return manifest;
}
