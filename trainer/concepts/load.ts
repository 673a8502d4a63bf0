// Loading concept folders into a pipeline: tokens and their embeddings, LoRA adapters (stacked when several concepts
// adapt the same projection), or the full fine-tuned weights of one concept. Synthesis, packs and the studio use this.
import { join } from 'node:path';
import { tf } from '../runtime/backend.ts';
import { WeightSource } from '../io/diffusers.ts';
import { SafetensorsFile } from '../io/safetensors.ts';
import type { StableDiffusionPipeline } from '../pipelines/stable_diffusion.ts';
import { TokenizerError, type CLIPTokenizer } from '../tokenizer/clip_tokenizer.ts';
import { readEmbeddings, readManifest, type ConceptManifest } from './format.ts';
import { applyLoraStateDict } from './lora.ts';

export interface ConceptSource {
  dir: string;
  /** load a token under another name, e.g. { '<asset0>': '<mug>' } (needed when two concepts share a token) */
  rename?: Record<string, string>;
  /** LoRA strength (1 = as trained) */
  loraScale?: number;
}

export interface LoadedConcept {
  dir: string;
  manifest: ConceptManifest;
  /** tokens as added to the tokenizer (after renaming), in manifest order */
  tokens: string[];
  tokenIds: number[];
}

function loadFullWeights(pipeline: StableDiffusionPipeline, dir: string, manifest: ConceptManifest): void {
  if (manifest.weights.type !== 'full') return;
  const textEncoder = pipeline.textEncoder;
  if (textEncoder.vocabSize !== manifest.baseModel.baseVocabSize) {
    throw new Error(`${dir}: full fine-tuned weights need the base vocabulary (${manifest.baseModel.baseVocabSize} rows), but the text encoder has ${textEncoder.vocabSize}; load this concept first`);
  }
  for (const [store, component] of [
    [pipeline.unet.store, manifest.weights.unet],
    [textEncoder.store, manifest.weights.textEncoder],
  ] as const) {
    const source = WeightSource.forComponent(join(dir, component));
    try {
      store.load(source);
    } finally {
      source.close();
    }
  }
}

function readLora(path: string): Map<string, { shape: number[]; data: Float32Array }> {
  const file = SafetensorsFile.open(path);
  try {
    return new Map(file.keys().map((key) => [key, file.readFloat32(key)]));
  } finally {
    file.close();
  }
}

/**
 * Adds every concept's tokens (with their learned rows) and phase-2 weights to `pipeline`. At most one concept may
 * carry full fine-tuned weights; it is applied before any token is added.
 */
export function loadConcepts(pipeline: StableDiffusionPipeline, sources: readonly (string | ConceptSource)[]): LoadedConcept[] {
  const concepts = sources.map((s) => {
    const source = typeof s === 'string' ? { dir: s } : s;
    return { source, manifest: readManifest(source.dir) };
  });
  const full = concepts.filter((c) => c.manifest.weights.type === 'full');
  if (full.length > 1) throw new Error(`only one concept with full fine-tuned weights can be loaded at a time: ${full.map((c) => c.source.dir).join(', ')}`);
  for (const c of full) loadFullWeights(pipeline, c.source.dir, c.manifest);

  const { tokenizer, textEncoder } = pipeline;
  const hidden = textEncoder.config.hidden_size;
  return concepts.map(({ source, manifest }) => {
    if (manifest.baseModel.hiddenSize !== hidden) {
      throw new Error(`${source.dir} was learned on a text encoder of width ${manifest.baseModel.hiddenSize}; this model's is ${hidden} (base ${manifest.baseModel.id})`);
    }
    const vectors = readEmbeddings(join(source.dir, manifest.embeddings));
    const learned = manifest.tokens.map(({ token }) => {
      const vector = vectors.get(token);
      if (!vector) throw new Error(`${source.dir}: ${manifest.embeddings} has no vector for '${token}'`);
      if (vector.length !== hidden) throw new Error(`${source.dir}: '${token}' has ${vector.length} values, expected ${hidden}`);
      return vector;
    });
    const tokens = manifest.tokens.map(({ token }) => source.rename?.[token] ?? token);
    let tokenIds: number[];
    try {
      tokenIds = tokenizer.addTokens(tokens);
    } catch (error) {
      if (error instanceof TokenizerError) throw new Error(`${source.dir}: ${error.message}; load it with a rename, e.g. { '${tokens[0]}': '<other>' }`);
      throw error;
    }
    textEncoder.ensureTokenRows(tokenizer.length);
    const rows = tf.tensor2d(Float32Array.from(learned.flatMap((v) => Array.from(v))), [tokens.length, hidden]);
    textEncoder.setTokenEmbeddings(tokenIds, rows);
    rows.dispose();
    if (manifest.weights.type === 'lora') {
      applyLoraStateDict(pipeline, readLora(join(source.dir, manifest.weights.file)), { alpha: manifest.weights.alpha, scale: source.loraScale });
    }
    return { dir: source.dir, manifest, tokens, tokenIds };
  });
}

/**
 * Throws when the prompt names a learned-token-shaped word (<asset0>, <mug>) that no loaded concept added: the
 * tokenizer would silently split it into the pieces "<", "asset", "0", ">" and the image would ignore the concept.
 */
export function assertConceptTokensLoaded(tokenizer: CLIPTokenizer, prompt: string): void {
  const added = tokenizer.addedVocab();
  const missing = [...new Set(prompt.match(/<[A-Za-z0-9][\w-]*>/g) ?? [])].filter((token) => !(token in added));
  if (missing.length === 0) return;
  const special = new Set(tokenizer.allSpecialIds);
  const loaded = Object.entries(added).flatMap(([token, id]) => (special.has(id) ? [] : [token]));
  throw new Error(
    `the prompt names ${missing.join(', ')}, which no loaded concept provides (loaded: ${loaded.join(', ') || 'none'}); load the concept folder that learned it`,
  );
}
