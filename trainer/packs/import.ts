// Importing a pack into a concept folder that loadConcepts() and compose read like one written by learning. The pack
// is read and checked completely (read.ts, then against the base model in base.ts) before anything is written; the
// folder is then created through a temporary sibling and renamed into place. Tokens that are already taken get a
// new name (<asset0> -> <asset0-2>); nothing is ever overwritten.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONCEPT_FORMAT, CONCEPT_VERSION, EMBEDDINGS_FILE, LORA_FILE, MANIFEST_FILE, writeEmbeddings, type ConceptManifest, type ConceptToken } from '../concepts/format.ts';
import { writeSafetensors, type TensorToWrite } from '../io/safetensors.ts';
import { checkPackForBase, type BaseModelCheckOptions, type BaseModelProfile } from './base.ts';
import { writeFolderAtomically } from './export.ts';
import { PackError, TOKEN_PATTERN, tokenStem, type Pack } from './format.ts';
import { readPack, type ReadPackOptions } from './read.ts';

export interface ImportOptions extends BaseModelCheckOptions, ReadPackOptions {
  base: BaseModelProfile;
  /** the concept folder to create (must not exist, or be empty) */
  outDir: string;
  /** tokens already in use where the concept will be loaded (other concepts of the project); the base vocabulary's are added */
  takenTokens?: Iterable<string>;
}

export interface ImportResult {
  dir: string;
  pack: Pack;
  /** the concept's tokens as written, in pack order */
  tokens: string[];
  /** pack token -> the name it got, for every token that clashed */
  renamed: Record<string, string>;
  warnings: string[];
}

/** The pack's tokens with every clash renamed to the first free <stem-2>, <stem-3>, ... */
export function resolveTokenClashes(tokens: readonly string[], taken: Iterable<string>): { tokens: string[]; renamed: Record<string, string> } {
  const used = new Set(taken);
  const renamed: Record<string, string> = {};
  const result = tokens.map((token) => {
    let name = token;
    for (let n = 2; used.has(name); n++) {
      const stem = tokenStem(token).slice(0, 40);
      name = `<${stem}-${n}>`;
      if (!TOKEN_PATTERN.test(name)) throw new PackError(`cannot find a free name for ${token}`);
    }
    if (name !== token) renamed[token] = name;
    used.add(name);
    return name;
  });
  return { tokens: result, renamed };
}

/** Reads, checks and writes a pack as a concept folder. Throws PackError (nothing written) when anything is wrong. */
export function importPack(bytes: Uint8Array, options: ImportOptions): ImportResult {
  const pack = readPack(bytes, options);
  const check = checkPackForBase(pack, options.base, options);
  const { tokens, renamed } = resolveTokenClashes(
    pack.instances.map((instance) => instance.token),
    [...(options.takenTokens ?? []), ...options.base.vocabularyTokens],
  );
  const hidden = pack.baseModel.hiddenSize;
  const rows = new Float32Array(tokens.length * hidden);
  pack.instances.forEach((instance, i) => rows.set(pack.embeddings.get(instance.token)!, i * hidden));
  const lora: Record<string, TensorToWrite> = {};
  for (const module of pack.lora.values()) {
    const target = check.modules.get(module.name)!;
    lora[`${target.component}.${target.prefix}.lora_A.weight`] = { dtype: 'F32', shape: module.down.shape, data: module.down.data };
    lora[`${target.component}.${target.prefix}.lora_B.weight`] = { dtype: 'F32', shape: module.up.shape, data: module.up.data };
  }

  writeFolderAtomically(options.outDir, (dir) => {
    mkdirSync(join(dir, 'masks'));
    mkdirSync(join(dir, 'attention'));
    writeEmbeddings(join(dir, EMBEDDINGS_FILE), tokens, rows, hidden);
    writeFileSync(join(dir, 'image.png'), pack.source.image);
    const conceptTokens: ConceptToken[] = pack.instances.map((instance, i) => {
      const mask = `masks/mask${i}.png`;
      const attentionMap = `attention/${tokenStem(tokens[i]!)}.png`;
      writeFileSync(join(dir, mask), instance.mask);
      writeFileSync(join(dir, attentionMap), instance.attention);
      return { token: tokens[i]!, name: instance.name, initializer: instance.initializer, mask, attentionMap };
    });
    const loraRecord = pack.training.lora;
    if (loraRecord) writeSafetensors(join(dir, LORA_FILE), lora, { format: 'pt' });
    const manifest: ConceptManifest & { pack: Record<string, unknown> } = {
      format: CONCEPT_FORMAT,
      version: CONCEPT_VERSION,
      createdAt: pack.training.learnedAt,
      baseModel: { ...pack.baseModel },
      image: 'image.png',
      resolution: pack.source.resolution,
      embeddings: EMBEDDINGS_FILE,
      tokens: conceptTokens,
      weights: loraRecord ? { type: 'lora', file: LORA_FILE, rank: loraRecord.rank, alpha: loraRecord.alpha, components: [...loraRecord.components] } : { type: 'none' },
      options: pack.training.options,
      metrics: pack.training.metrics,
      pack: { name: pack.header.name, note: pack.header.note, sha256: pack.sha256, createdAt: pack.header.createdAt, importedAt: new Date().toISOString(), renamed, boxes: pack.instances.map((instance) => instance.box) },
    };
    writeFileSync(join(dir, MANIFEST_FILE), JSON.stringify(manifest, null, 2));
  });
  return { dir: options.outDir, pack, tokens, renamed, warnings: check.warnings };
}
