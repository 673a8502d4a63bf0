// The attention layers where a model's cross-attention ties words to image regions. MIFO's learning losses and
// bounded attention read the layers the reference chose for SD at 512 px (decoder maps of 16² and 32², the mid block);
// a small model may ground words elsewhere (the embedded one only in its finest maps: docs/default-model.md), so a
// folder may carry attention_layers.json naming its own, in the vocabulary of the learning options
// (`phase1.attention.layers`) and of box control (`lossLayers`, `mapLayers`). No tensor code here.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFolderError, readJson } from '../io/model_index.ts';
import { isLayerOrderList, layerSelectionProblem, type LayerSelection } from '../models/attention_layers.ts';

export const ATTENTION_LAYERS_FILE = 'attention_layers.json';

/** Where the learning stage's attention terms act: phase 1's set (𝓛_TI) and phase 2's (𝓛_DB, also Break-a-Scene's). */
export interface LearningLayers {
  phase1: LayerSelection;
  phase2: LayerSelection;
}

/**
 * Box control's layers by ℓ (forward order of all attention layers): the guidance losses', the mask maps', and,
 * optionally, the layers whose attention is bounded (absent: every layer, as the reference).
 */
export interface SynthesisLayers {
  lossLayers: number[];
  mapLayers: number[];
  boundedLayers?: number[];
}

/** A folder's choices; null where it names none (the spec's choice by role then applies). */
export interface ModelAttentionLayers {
  learning: LearningLayers | null;
  synthesis: SynthesisLayers | null;
}

export const NO_MODEL_ATTENTION_LAYERS: ModelAttentionLayers = { learning: null, synthesis: null };

/** The object's fields, every one of `keys` required unless `optional`; other names are an error ("_" comments aside). */
function fields(value: unknown, where: string, keys: readonly string[], optional = false): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ModelFolderError(`${where} must be an object`);
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!key.startsWith('_') && !keys.includes(key)) throw new ModelFolderError(`${where} has an unknown field '${key}' (known: ${keys.join(', ')})`);
  }
  if (!optional) for (const key of keys) if (!(key in record)) throw new ModelFolderError(`${where} lacks '${key}'`);
  return record;
}

function selection(value: unknown, where: string): LayerSelection {
  const problem = layerSelectionProblem(value);
  if (problem) throw new ModelFolderError(`${where} ${problem}`);
  return value as LayerSelection;
}

function layerOrders(value: unknown, where: string): number[] {
  if (!isLayerOrderList(value)) throw new ModelFolderError(`${where} must list attention layer indices ℓ (integers ≥ 0), got ${JSON.stringify(value)}`);
  return value;
}

export function parseAttentionLayers(raw: unknown, source: string): ModelAttentionLayers {
  const record = fields(raw, source, ['learning', 'synthesis'], true);
  const parsed: ModelAttentionLayers = { learning: null, synthesis: null };
  if (record.learning !== undefined) {
    const learning = fields(record.learning, `${source}: learning`, ['phase1', 'phase2']);
    parsed.learning = { phase1: selection(learning.phase1, `${source}: learning.phase1`), phase2: selection(learning.phase2, `${source}: learning.phase2`) };
  }
  if (record.synthesis !== undefined) {
    const synthesis = fields(record.synthesis, `${source}: synthesis`, ['lossLayers', 'mapLayers', 'boundedLayers'], true);
    for (const key of ['lossLayers', 'mapLayers']) if (!(key in synthesis)) throw new ModelFolderError(`${source}: synthesis lacks '${key}'`);
    parsed.synthesis = { lossLayers: layerOrders(synthesis.lossLayers, `${source}: synthesis.lossLayers`), mapLayers: layerOrders(synthesis.mapLayers, `${source}: synthesis.mapLayers`) };
    if (synthesis.boundedLayers !== undefined) parsed.synthesis.boundedLayers = layerOrders(synthesis.boundedLayers, `${source}: synthesis.boundedLayers`);
  }
  return parsed;
}

/** The file's content, null when there is nothing to choose (then no file is written). */
export function attentionLayersJson(layers: ModelAttentionLayers): Record<string, unknown> | null {
  const json = Object.fromEntries(Object.entries(layers).filter(([, value]) => value !== null));
  return Object.keys(json).length > 0 ? json : null;
}

/** A folder's attention_layers.json, or no choices when it has none. */
export function readModelAttentionLayers(dir: string): ModelAttentionLayers {
  const path = join(dir, ATTENTION_LAYERS_FILE);
  return existsSync(path) ? parseAttentionLayers(readJson(path), path) : NO_MODEL_ATTENTION_LAYERS;
}
