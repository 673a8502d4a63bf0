// Writing a concept folder at the end of learning (format in docs/concept-folder.md).
import { copyFileSync, mkdirSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { writePng, type GrayImage, type RgbImage } from '../io/image.ts';
import { writeSafetensors } from '../io/safetensors.ts';
import type { StableDiffusionPipeline } from '../pipelines/stable_diffusion.ts';
import type { Mask } from '../learn/masks.ts';
import { CONCEPT_FORMAT, CONCEPT_VERSION, EMBEDDINGS_FILE, LORA_FILE, MANIFEST_FILE, type ConceptManifest, type ConceptToken, type ConceptWeights, writeEmbeddings } from './format.ts';
import { loraStateDict, type LoraTarget } from './lora.ts';

export interface ConceptContent {
  pipeline: StableDiffusionPipeline;
  baseModel: ConceptManifest['baseModel'];
  tokens: string[];
  names: (string | null)[];
  initializers: (string | null)[];
  /** learned rows [tokens, hidden] */
  rows: Float32Array;
  image: RgbImage;
  masks: Mask[];
  /** one final attention map per token */
  attentionMaps: Mask[];
  weights: { type: 'none' } | { type: 'lora'; targets: LoraTarget[]; rank: number; alpha: number } | { type: 'full' };
  options: unknown;
  metrics: unknown;
}

/** A map or soft mask as an 8-bit PNG (maps are scaled so their maximum is white). */
export function maskToGray(mask: Mask, normalise: boolean): GrayImage {
  let max = 1;
  if (normalise) max = mask.data.reduce((m, v) => Math.max(m, v), 0) || 1;
  return { width: mask.width, height: mask.height, data: Uint8Array.from(mask.data, (v) => Math.round(Math.min(1, Math.max(0, v / max)) * 255)) };
}

function tokenFileStem(token: string, index: number): string {
  const cleaned = token.replace(/[^A-Za-z0-9_-]+/g, '');
  return cleaned || `token${index}`;
}

function writeFullWeights(dir: string, pipeline: StableDiffusionPipeline, baseVocabSize: number): ConceptWeights {
  mkdirSync(join(dir, 'unet'), { recursive: true });
  mkdirSync(join(dir, 'text_encoder'), { recursive: true });
  copyFileSync(join(pipeline.modelDir, 'unet', 'config.json'), join(dir, 'unet', 'config.json'));
  writeSafetensors(join(dir, 'unet', 'diffusion_pytorch_model.safetensors'), pipeline.unet.store.stateDict(), { format: 'pt' });
  // The added rows live in learned_embeds; the table keeps the base vocabulary so the folder loads into a fresh model.
  const textState = pipeline.textEncoder.store.stateDict();
  const tableKey = pipeline.textEncoder.tokenEmbedding.weight;
  const table = textState[tableKey]!;
  const hidden = table.shape[1]!;
  textState[tableKey] = { dtype: 'F32', shape: [baseVocabSize, hidden], data: (table.data as Float32Array).slice(0, baseVocabSize * hidden) };
  const config = { ...pipeline.textEncoder.config, vocab_size: baseVocabSize };
  writeFileSync(join(dir, 'text_encoder', 'config.json'), JSON.stringify(config, null, 2));
  writeSafetensors(join(dir, 'text_encoder', 'model.safetensors'), textState, { format: 'pt' });
  return { type: 'full', unet: 'unet', textEncoder: 'text_encoder' };
}

export async function writeConcept(dir: string, content: ConceptContent): Promise<ConceptManifest> {
  mkdirSync(join(dir, 'masks'), { recursive: true });
  mkdirSync(join(dir, 'attention'), { recursive: true });
  const hidden = content.pipeline.textEncoder.config.hidden_size;
  writeEmbeddings(join(dir, EMBEDDINGS_FILE), content.tokens, content.rows, hidden);
  await writePng(join(dir, 'image.png'), content.image);
  const tokens: ConceptToken[] = [];
  for (const [i, token] of content.tokens.entries()) {
    const stem = tokenFileStem(token, i);
    const mask = `masks/mask${i}.png`;
    const attentionMap = `attention/${stem}.png`;
    await writePng(join(dir, mask), maskToGray(content.masks[i]!, false));
    await writePng(join(dir, attentionMap), maskToGray(content.attentionMaps[i]!, true));
    tokens.push({ token, name: content.names[i] ?? null, initializer: content.initializers[i] ?? null, mask, attentionMap });
  }
  let weights: ConceptWeights = { type: 'none' };
  if (content.weights.type === 'lora') {
    writeSafetensors(join(dir, LORA_FILE), loraStateDict(content.pipeline, content.weights.targets), { format: 'pt' });
    const components = [...new Set(content.weights.targets.map((t) => t.component))];
    weights = { type: 'lora', file: LORA_FILE, rank: content.weights.rank, alpha: content.weights.alpha, components };
  } else if (content.weights.type === 'full') {
    weights = writeFullWeights(dir, content.pipeline, content.baseModel.baseVocabSize);
  }
  const manifest: ConceptManifest = {
    format: CONCEPT_FORMAT,
    version: CONCEPT_VERSION,
    createdAt: new Date().toISOString(),
    baseModel: content.baseModel,
    image: 'image.png',
    resolution: content.image.width,
    embeddings: EMBEDDINGS_FILE,
    tokens,
    weights,
    options: content.options,
    metrics: content.metrics,
  };
  const temp = join(dir, `${MANIFEST_FILE}.tmp-${process.pid}`);
  writeFileSync(temp, JSON.stringify(manifest, null, 2));
  renameSync(temp, join(dir, MANIFEST_FILE));
  return manifest;
}
