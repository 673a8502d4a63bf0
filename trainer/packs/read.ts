// Reading a pack from untrusted bytes. Everything is checked before anything is returned: the size limit, the
// safetensors header (length, JSON, dtypes, offsets, holes), the metadata against its schema, each PNG's chunks,
// every tensor key against the whitelist, every shape against the metadata, and every value for NaN/Inf. Nothing
// here touches the filesystem or needs a model; checks against a base model are in base.ts.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { parseSafetensorsBuffer, toFloat32, type RawTensor } from '../io/safetensors.ts';
import {
  baseModelSchema,
  bundleKey,
  DEFAULT_MAX_PACK_BYTES,
  instanceSchema,
  KOHYA_KEY_PATTERN,
  kohyaComponent,
  MAX_INSTANCES,
  MAX_MASK_SIDE,
  MAX_PACK_HEADER_BYTES,
  MAX_PNG_BYTES,
  MAX_TENSOR_KEY_LENGTH,
  MAX_THUMBNAIL_SIDE,
  METADATA_KEYS,
  PackError,
  packHeaderSchema,
  quoted,
  sourceSchema,
  trainingSchema,
  type LoraPartName,
  type Pack,
  type PackInstance,
  type PackLoraModule,
} from './format.ts';
import { inspectPng, PngError } from './png.ts';

const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16']);

export interface ReadPackOptions {
  maxBytes?: number;
  /** names the file in error messages */
  source?: string;
}

function metadataDocument<T>(metadata: Record<string, string>, key: string, schema: z.ZodType<T>, what: string): T {
  if (!Object.hasOwn(metadata, key)) throw new PackError(`the metadata has no '${key}' (${what}); this is not a MIFO pack`);
  let value: unknown;
  try {
    value = JSON.parse(metadata[key]!);
  } catch (error) {
    throw new PackError(`metadata '${key}' is not valid JSON (${(error as Error).message})`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new PackError(`metadata '${key}' does not match the pack schema:\n${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

function decodePng(base64: string, maxSide: number, what: string): { bytes: Buffer; width: number; height: number } {
  const bytes = Buffer.from(base64, 'base64');
  if (bytes.length > MAX_PNG_BYTES) throw new PackError(`${what} is ${bytes.length} bytes, more than ${MAX_PNG_BYTES}`);
  try {
    const info = inspectPng(bytes, maxSide);
    return { bytes, width: info.width, height: info.height };
  } catch (error) {
    if (error instanceof PngError) throw new PackError(`${what} is not a valid PNG: ${error.message}`);
    throw error;
  }
}

function finiteFloats(key: string, tensor: RawTensor): Float32Array {
  if (!FLOAT_DTYPES.has(tensor.dtype)) throw new PackError(`tensor ${quoted(key)} has dtype ${tensor.dtype}; a pack holds F32, F16 or BF16 only`);
  const data = toFloat32(tensor);
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) throw new PackError(`tensor ${quoted(key)} holds a non-finite value (${data[i]}) at index ${i}`);
  }
  return data;
}

function readHeaderLength(bytes: Uint8Array, source: string): void {
  if (bytes.byteLength < 8) throw new PackError(`${source} is ${bytes.byteLength} bytes, too short for a safetensors file`);
  const headerBytes = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerBytes > BigInt(MAX_PACK_HEADER_BYTES)) {
    throw new PackError(`${source} declares a ${headerBytes}-byte header; a pack header is at most ${MAX_PACK_HEADER_BYTES} bytes`);
  }
}

/** Parses and validates a pack held in memory. Throws PackError with a message that says what is wrong. */
export function readPack(bytes: Uint8Array, options: ReadPackOptions = {}): Pack {
  const source = options.source ?? 'the pack';
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_PACK_BYTES;
  if (bytes.byteLength > maxBytes) throw new PackError(`${source} is ${bytes.byteLength} bytes; the limit is ${maxBytes}`);
  readHeaderLength(bytes, source);
  let file: ReturnType<typeof parseSafetensorsBuffer>;
  try {
    file = parseSafetensorsBuffer(bytes, source);
  } catch (error) {
    throw new PackError(`not a valid safetensors file: ${(error as Error).message}`);
  }

  const { metadata } = file;
  const header = metadataDocument(metadata, METADATA_KEYS.pack, packHeaderSchema, 'the pack header');
  const baseModel = metadataDocument(metadata, METADATA_KEYS.baseModel, baseModelSchema, 'the base model');
  const instanceList = metadataDocument(metadata, METADATA_KEYS.instances, z.array(instanceSchema).min(1).max(MAX_INSTANCES), 'the instances');
  const sourceMeta = metadataDocument(metadata, METADATA_KEYS.source, sourceSchema, 'the source photo');
  const training = metadataDocument(metadata, METADATA_KEYS.training, trainingSchema, 'the training record');
  const known = new Set<string>(Object.values(METADATA_KEYS));
  for (const key of Object.keys(metadata)) {
    if (key.startsWith('mifo.') && !known.has(key)) throw new PackError(`unknown metadata key ${quoted(key)} (pack version ${header.version} knows ${[...known].join(', ')})`);
  }

  const resolution = sourceMeta.resolution;
  const tokens = new Set<string>();
  const instances: PackInstance[] = instanceList.map((instance, i) => {
    if (tokens.has(instance.token)) throw new PackError(`token ${instance.token} is listed twice`);
    tokens.add(instance.token);
    const mask = decodePng(instance.mask, MAX_MASK_SIDE, `the mask of ${instance.token}`);
    if (mask.width !== resolution || mask.height !== resolution) {
      throw new PackError(`the mask of ${instance.token} is ${mask.width}x${mask.height}, but the learning resolution is ${resolution}`);
    }
    const attention = decodePng(instance.attention, MAX_MASK_SIDE, `the attention map of ${instance.token}`);
    const thumbnail = instance.thumbnail === null ? null : decodePng(instance.thumbnail, MAX_THUMBNAIL_SIDE, `the thumbnail of instance ${i}`).bytes;
    return { token: instance.token, name: instance.name, initializer: instance.initializer, box: instance.box, mask: mask.bytes, attention: attention.bytes, thumbnail };
  });
  const image = decodePng(sourceMeta.image, MAX_MASK_SIDE, 'the source image');
  if (image.width !== resolution || image.height !== resolution) {
    throw new PackError(`the source image is ${image.width}x${image.height}, but the learning resolution is ${resolution}`);
  }
  const sourceThumbnail = decodePng(sourceMeta.thumbnail, MAX_THUMBNAIL_SIDE, 'the source thumbnail').bytes;

  const expectedEmbeddings = new Map(instances.map((instance) => [bundleKey(instance.token), instance.token]));
  const embeddings = new Map<string, Float32Array>();
  const loraParts = new Map<string, Partial<Record<LoraPartName, { shape: number[]; data: Float32Array }>>>();
  for (const [key, info] of file.tensors) {
    if (key.length > MAX_TENSOR_KEY_LENGTH) throw new PackError(`tensor key ${quoted(key)} is longer than ${MAX_TENSOR_KEY_LENGTH} characters`);
    const token = expectedEmbeddings.get(key);
    if (token !== undefined) {
      const hidden = baseModel.hiddenSize;
      const { shape } = info;
      if (!((shape.length === 2 && shape[0] === 1 && shape[1] === hidden) || (shape.length === 1 && shape[0] === hidden))) {
        throw new PackError(`embedding of ${token} has shape [${shape}]; one vector of the base model's width [1, ${hidden}] is expected`);
      }
      embeddings.set(token, finiteFloats(key, file.read(key)));
      continue;
    }
    const match = KOHYA_KEY_PATTERN.exec(key);
    if (!match) {
      throw new PackError(
        `unexpected tensor ${quoted(key)}: a pack holds only ${[...expectedEmbeddings.keys()].map((k) => quoted(k)).join(', ')} and kohya lora_unet_* / lora_te_* tensors`,
      );
    }
    if (training.lora === null) throw new PackError(`tensor ${quoted(key)} is LoRA, but the training record says the pack has no LoRA`);
    const module = `${match[1]}${match[2]}`;
    const part = match[3] as LoraPartName;
    const parts = loraParts.get(module) ?? {};
    parts[part] = { shape: info.shape, data: finiteFloats(key, file.read(key)) };
    loraParts.set(module, parts);
  }
  for (const token of tokens) if (!embeddings.has(token)) throw new PackError(`no embedding for ${token} (expected tensor ${quoted(bundleKey(token))})`);

  const lora = new Map<string, PackLoraModule>();
  if (training.lora !== null) {
    const { rank, alpha, components } = training.lora;
    for (const [name, parts] of loraParts) {
      const { 'lora_down.weight': down, 'lora_up.weight': up, alpha: alphaTensor } = parts;
      if (!down || !up || !alphaTensor) {
        const missing = (['lora_down.weight', 'lora_up.weight', 'alpha'] as const).filter((p) => !parts[p]);
        throw new PackError(`LoRA module ${name} lacks ${missing.join(' and ')}`);
      }
      if (down.shape.length !== 2 || down.shape[0] !== rank || down.shape[1]! < 1) throw new PackError(`${name}.lora_down.weight has shape [${down.shape}]; expected [${rank}, in] (rank ${rank})`);
      if (up.shape.length !== 2 || up.shape[1] !== rank || up.shape[0]! < 1) throw new PackError(`${name}.lora_up.weight has shape [${up.shape}]; expected [out, ${rank}] (rank ${rank})`);
      if (alphaTensor.data.length !== 1 || alphaTensor.shape.length > 1) throw new PackError(`${name}.alpha has shape [${alphaTensor.shape}]; expected a scalar`);
      const moduleAlpha = alphaTensor.data[0]!;
      if (Math.abs(moduleAlpha - alpha) > 1e-3 * Math.abs(alpha)) throw new PackError(`${name}.alpha is ${moduleAlpha}, but the training record says ${alpha}`);
      lora.set(name, {
        name,
        component: kohyaComponent(name),
        down: { shape: [down.shape[0]!, down.shape[1]!], data: down.data },
        up: { shape: [up.shape[0]!, up.shape[1]!], data: up.data },
        alpha,
      });
    }
    const present = new Set([...lora.values()].map((m) => m.component));
    const declared = new Set(components);
    if (present.size !== declared.size || [...present].some((c) => !declared.has(c))) {
      throw new PackError(`the LoRA adapts ${[...present].join(', ') || 'nothing'}, but the training record says ${components.join(', ')}`);
    }
  }

  return {
    sha256: createHash('sha256').update(bytes).digest('hex'),
    size: bytes.byteLength,
    header,
    baseModel,
    instances,
    source: { resolution, image: image.bytes, thumbnail: sourceThumbnail },
    training,
    embeddings,
    lora,
  };
}
