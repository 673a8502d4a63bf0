// Exporting a concept folder (docs/concept-folder.md) as a pack, or as the plain diffusers layout
// (learned_embeds.safetensors + PEFT pytorch_lora_weights.safetensors + one embedding file per token).
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import sharp from 'sharp';
import { readEmbeddings, readManifest, type ConceptManifest } from '../concepts/format.ts';
import { SafetensorsFile, serializeSafetensors, writeSafetensors, type TensorToWrite } from '../io/safetensors.ts';
import {
  bundleKey,
  INSTANCE_THUMBNAIL_SIDE,
  kohyaKey,
  kohyaModuleName,
  METADATA_KEYS,
  PACK_FORMAT,
  PACK_VERSION,
  PackError,
  SOURCE_THUMBNAIL_SIDE,
  TOKEN_PATTERN,
  tokenStem,
  type LoraComponent,
  type Pack,
  type PackBaseModel,
  type PackHeader,
  type PackInstanceMetadata,
  type PackSourceMetadata,
  type PackTraining,
} from './format.ts';
import { readPack } from './read.ts';

const GENERATOR = 'mifo-studio';
const PEFT_KEY = /^(unet|text_encoder)\.([a-z0-9_]+(?:\.[a-z0-9_]+)*)\.lora_(A|B)\.weight$/;

export interface ExportOptions {
  /** shown in libraries and as ss_output_name; default: the folder name */
  name?: string;
  /** the author's note */
  note?: string;
  /** new names for tokens, e.g. { '<asset0>': '<mug>' } */
  rename?: Record<string, string>;
  /** instance names replacing the concept's, by (original) token, e.g. { '<asset0>': 'blue mug' } */
  names?: Record<string, string>;
}

interface ConceptLora {
  rank: number;
  alpha: number;
  components: LoraComponent[];
  modules: { component: LoraComponent; prefix: string; down: { shape: number[]; data: Float32Array }; up: { shape: number[]; data: Float32Array } }[];
}

interface ConceptContent {
  manifest: ConceptManifest;
  /** tokens after renaming, in manifest order */
  tokens: string[];
  vectors: Float32Array[];
  lora: ConceptLora | null;
}

function renamedTokens(manifest: ConceptManifest, rename: Record<string, string> = {}): string[] {
  const original = manifest.tokens.map((t) => t.token);
  for (const from of Object.keys(rename)) {
    if (!original.includes(from)) throw new PackError(`cannot rename ${from}: the concept's tokens are ${original.join(', ')}`);
  }
  const tokens = original.map((token) => rename[token] ?? token);
  for (const token of tokens) {
    if (!TOKEN_PATTERN.test(token)) throw new PackError(`token ${JSON.stringify(token)} cannot go into a pack: use <name> with lowercase letters, digits, _ and - (rename it)`);
  }
  const duplicate = tokens.find((token, i) => tokens.indexOf(token) !== i);
  if (duplicate) throw new PackError(`two tokens would both be named ${duplicate}`);
  return tokens;
}

function readConceptLora(dir: string, manifest: ConceptManifest): ConceptLora | null {
  const weights = manifest.weights;
  if (weights.type === 'none') return null;
  if (weights.type === 'full') {
    throw new PackError(`${dir} holds a full fine-tune (phase2.mode "full"), which a pack cannot carry; learn with phase2.mode "lora" (the default) to share it`);
  }
  const file = SafetensorsFile.open(join(dir, weights.file));
  try {
    const modules = new Map<string, ConceptLora['modules'][number]>();
    for (const key of file.keys()) {
      const match = PEFT_KEY.exec(key);
      if (!match) throw new PackError(`${join(dir, weights.file)}: '${key}' is not a PEFT LoRA name (unet.<module>.lora_A.weight / .lora_B.weight)`);
      const [, component, prefix, which] = match as unknown as [string, LoraComponent, string, 'A' | 'B'];
      const id = `${component}.${prefix}`;
      const entry = modules.get(id) ?? { component, prefix, down: { shape: [], data: new Float32Array() }, up: { shape: [], data: new Float32Array() } };
      entry[which === 'A' ? 'down' : 'up'] = file.readFloat32(key);
      modules.set(id, entry);
    }
    for (const [id, entry] of modules) {
      if (entry.down.shape[0] !== weights.rank || entry.up.shape[1] !== weights.rank) {
        throw new PackError(`${join(dir, weights.file)}: ${id} has shapes [${entry.down.shape}] / [${entry.up.shape}], not rank ${weights.rank}`);
      }
    }
    return { rank: weights.rank, alpha: weights.alpha, components: [...weights.components], modules: [...modules.values()] };
  } finally {
    file.close();
  }
}

function readConcept(dir: string, rename?: Record<string, string>): ConceptContent {
  const manifest = readManifest(dir);
  const tokens = renamedTokens(manifest, rename);
  const vectors = readEmbeddings(join(dir, manifest.embeddings));
  return {
    manifest,
    tokens,
    vectors: manifest.tokens.map(({ token }) => {
      const vector = vectors.get(token);
      if (!vector) throw new PackError(`${dir}: ${manifest.embeddings} has no vector for ${token}`);
      return vector;
    }),
    lora: readConceptLora(dir, manifest),
  };
}

/** Learning options without anything that names a place on the author's machine (cache folders and the like). */
export function withoutLocalPaths(value: unknown): unknown {
  if (typeof value === 'string') return /^(\/|~[/\\]|[A-Za-z]:[/\\]|\\\\)/.test(value) ? null : value;
  if (Array.isArray(value)) return value.map(withoutLocalPaths);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withoutLocalPaths(v)]));
  return value;
}

/** Normalised [x0, y0, x1, y1] around the pixels of a mask at or above half intensity (null when there are none). */
export function maskBox(gray: Uint8Array, width: number, height: number): [number, number, number, number] | null {
  let x0 = width;
  let y0 = height;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (gray[y * width + x]! < 128) continue;
      x0 = Math.min(x0, x);
      x1 = Math.max(x1, x);
      y0 = Math.min(y0, y);
      y1 = Math.max(y1, y);
    }
  }
  if (x1 < 0) return null;
  return [x0 / width, y0 / height, (x1 + 1) / width, (y1 + 1) / height];
}

async function grayPixels(path: string, width: number, height: number): Promise<Uint8Array> {
  const { data, info } = await sharp(path).resize(width, height, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
  return Uint8Array.from({ length: width * height }, (_, i) => data[i * info.channels]!);
}

/** The instance cut out of the photo: its box, with the mask as alpha, scaled down to at most 128 px. */
async function instanceThumbnail(rgb: Buffer, size: number, mask: Uint8Array, box: [number, number, number, number]): Promise<Buffer> {
  const rgba = Buffer.alloc(size * size * 4);
  for (let i = 0; i < size * size; i++) {
    rgba[i * 4] = rgb[i * 3]!;
    rgba[i * 4 + 1] = rgb[i * 3 + 1]!;
    rgba[i * 4 + 2] = rgb[i * 3 + 2]!;
    rgba[i * 4 + 3] = mask[i]!;
  }
  const left = Math.round(box[0] * size);
  const top = Math.round(box[1] * size);
  const region = { left, top, width: Math.max(1, Math.round(box[2] * size) - left), height: Math.max(1, Math.round(box[3] * size) - top) };
  return sharp(rgba, { raw: { width: size, height: size, channels: 4 } })
    .extract(region)
    .resize(INSTANCE_THUMBNAIL_SIDE, INSTANCE_THUMBNAIL_SIDE, { fit: 'inside', withoutEnlargement: true })
    .png()
    .toBuffer();
}

function loraTensors(lora: ConceptLora): Record<string, TensorToWrite> {
  const tensors: Record<string, TensorToWrite> = {};
  for (const module of lora.modules) {
    const name = kohyaModuleName(module.component, module.prefix);
    if (tensors[kohyaKey(name, 'alpha')]) throw new PackError(`two LoRA modules map to the kohya name ${name}`);
    tensors[kohyaKey(name, 'lora_down.weight')] = { dtype: 'F32', shape: module.down.shape, data: module.down.data };
    tensors[kohyaKey(name, 'lora_up.weight')] = { dtype: 'F32', shape: module.up.shape, data: module.up.data };
    tensors[kohyaKey(name, 'alpha')] = { dtype: 'F32', shape: [], data: Float32Array.of(lora.alpha) };
  }
  return tensors;
}

/** Builds a pack from a concept folder; the bytes are read back with readPack before they are returned. */
export async function buildPack(conceptDir: string, options: ExportOptions = {}): Promise<{ bytes: Buffer; pack: Pack }> {
  const { manifest, tokens, vectors, lora } = readConcept(conceptDir, options.rename);
  const resolution = manifest.resolution;
  const imagePath = join(conceptDir, manifest.image);
  const rgb = (await sharp(imagePath).removeAlpha().resize(resolution, resolution, { fit: 'fill' }).raw().toBuffer()) as Buffer;
  const instances: PackInstanceMetadata[] = [];
  for (const [i, entry] of manifest.tokens.entries()) {
    const maskPath = join(conceptDir, entry.mask);
    const mask = await grayPixels(maskPath, resolution, resolution);
    const box = maskBox(mask, resolution, resolution);
    instances.push({
      token: tokens[i]!,
      name: options.names?.[entry.token] ?? entry.name,
      initializer: entry.initializer,
      box,
      mask: readFileSync(maskPath).toString('base64'),
      attention: readFileSync(join(conceptDir, entry.attentionMap)).toString('base64'),
      thumbnail: box ? (await instanceThumbnail(rgb, resolution, mask, box)).toString('base64') : null,
    });
  }
  const thumbnail = await sharp(imagePath).resize(SOURCE_THUMBNAIL_SIDE, SOURCE_THUMBNAIL_SIDE, { fit: 'inside', withoutEnlargement: true }).png().toBuffer();
  const name = (options.name ?? basename(conceptDir)).trim();
  const header: PackHeader = { format: PACK_FORMAT, version: PACK_VERSION, name, note: options.note ?? '', createdAt: new Date().toISOString(), generator: GENERATOR };
  const baseModel: PackBaseModel = { ...manifest.baseModel };
  const source: PackSourceMetadata = { resolution, image: readFileSync(imagePath).toString('base64'), thumbnail: thumbnail.toString('base64') };
  const training: PackTraining = {
    lora: lora ? { rank: lora.rank, alpha: lora.alpha, components: lora.components } : null,
    options: (withoutLocalPaths(manifest.options) ?? {}) as PackTraining['options'],
    metrics: (manifest.metrics ?? {}) as PackTraining['metrics'],
    learnedAt: manifest.createdAt,
  };
  const metadata: Record<string, string> = {
    format: 'pt',
    [METADATA_KEYS.pack]: JSON.stringify(header),
    [METADATA_KEYS.baseModel]: JSON.stringify(baseModel),
    [METADATA_KEYS.instances]: JSON.stringify(instances),
    [METADATA_KEYS.source]: JSON.stringify(source),
    [METADATA_KEYS.training]: JSON.stringify(training),
    ss_output_name: name,
    'modelspec.title': name,
    ...(lora ? { ss_network_module: 'networks.lora', ss_network_dim: String(lora.rank), ss_network_alpha: String(lora.alpha) } : {}),
  };
  const hidden = manifest.baseModel.hiddenSize;
  const tensors: Record<string, TensorToWrite> = {};
  tokens.forEach((token, i) => (tensors[bundleKey(token)] = { dtype: 'F32', shape: [1, hidden], data: vectors[i]! }));
  Object.assign(tensors, lora ? loraTensors(lora) : {});
  const bytes = serializeSafetensors(tensors, metadata);
  return { bytes, pack: readPack(bytes, { source: `the pack built from ${conceptDir}` }) };
}

/** Creates `dir` through a temporary sibling that is renamed into place, so it appears complete or not at all. */
export function writeFolderAtomically(dir: string, fill: (tempDir: string) => void): void {
  if (existsSync(dir) && readdirSync(dir).length > 0) throw new PackError(`${dir} already exists and is not empty; choose another folder`);
  const parent = dirname(dir);
  if (!existsSync(parent)) throw new PackError(`the parent folder of ${dir} does not exist`);
  const temp = join(parent, `.${basename(dir)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  mkdirSync(temp);
  try {
    fill(temp);
    if (existsSync(dir)) rmdirSync(dir);
    renameSync(temp, dir);
  } catch (error) {
    rmSync(temp, { recursive: true, force: true });
    throw error;
  }
}

/**
 * The diffusers layout: learned_embeds.safetensors (every token), embeddings/<token>.safetensors (one token each, for
 * A1111/ComfyUI embedding folders and load_textual_inversion) and pytorch_lora_weights.safetensors with PEFT names and
 * alpha/rank folded into lora_B (diffusers assumes a scale of 1).
 */
export function exportDiffusers(conceptDir: string, outDir: string, options: Pick<ExportOptions, 'rename'> = {}): { tokens: string[]; files: string[] } {
  const { manifest, tokens, vectors, lora } = readConcept(conceptDir, options.rename);
  const hidden = manifest.baseModel.hiddenSize;
  const files: string[] = ['learned_embeds.safetensors', ...tokens.map((token) => `embeddings/${tokenStem(token)}.safetensors`)];
  writeFolderAtomically(outDir, (dir) => {
    const vector = (i: number): TensorToWrite => ({ dtype: 'F32', shape: [1, hidden], data: vectors[i]! });
    writeSafetensors(join(dir, 'learned_embeds.safetensors'), Object.fromEntries(tokens.map((token, i) => [token, vector(i)])), { format: 'pt' });
    mkdirSync(join(dir, 'embeddings'));
    tokens.forEach((token, i) => writeSafetensors(join(dir, 'embeddings', `${tokenStem(token)}.safetensors`), { [token]: vector(i) }, { format: 'pt' }));
    if (lora) {
      const scale = lora.alpha / lora.rank;
      const tensors: Record<string, TensorToWrite> = {};
      for (const module of lora.modules) {
        const stem = `${module.component}.${module.prefix}`;
        tensors[`${stem}.lora_A.weight`] = { dtype: 'F32', shape: module.down.shape, data: module.down.data };
        tensors[`${stem}.lora_B.weight`] = { dtype: 'F32', shape: module.up.shape, data: module.up.data.map((v) => v * scale) };
      }
      writeSafetensors(join(dir, 'pytorch_lora_weights.safetensors'), tensors, { format: 'pt' });
      files.push('pytorch_lora_weights.safetensors');
    }
  });
  return { tokens, files };
}
