// The concept pack (docs/packs.md): one .safetensors file that AUTOMATIC1111 and ComfyUI load as a LoRA with bundled
// embeddings, carrying our own data as JSON strings in __metadata__.
//   bundle_emb.<token>.string_to_param.*       [1, hidden]   the token's learned embedding (A1111 bundled embedding)
//   lora_unet_<module>.lora_down.weight        [rank, in]    kohya names: the diffusers module path with '.' -> '_'
//   lora_unet_<module>.lora_up.weight          [out, rank]
//   lora_unet_<module>.alpha                   []            scale = alpha / rank
//   lora_te_<module>.…                                       the text encoder's projections, same three tensors
// Metadata: mifo.pack, mifo.base_model, mifo.instances, mifo.source, mifo.training (schemas below), plus the
// ss_* / modelspec.* keys other tools display.
import { z } from 'zod';

export const PACK_FORMAT = 'mifo-pack';
export const PACK_VERSION = 1;

/** A pack larger than this is refused before it is parsed (a rank-128 LoRA on SD1.5's attention is ~100 MB). */
export const DEFAULT_MAX_PACK_BYTES = 256 * 1024 * 1024;
/** The JSON header holds the metadata with its PNGs; anything near this is not a pack. */
export const MAX_PACK_HEADER_BYTES = 16 * 1024 * 1024;
export const MAX_TENSOR_KEY_LENGTH = 300;
export const MAX_INSTANCES = 16;
/** The source image and the masks are at the learning resolution; thumbnails are smaller. */
export const MAX_MASK_SIDE = 2048;
export const MAX_THUMBNAIL_SIDE = 512;
export const SOURCE_THUMBNAIL_SIDE = 256;
export const INSTANCE_THUMBNAIL_SIDE = 128;
export const MAX_PNG_BYTES = 4 * 1024 * 1024;

export const METADATA_KEYS = {
  pack: 'mifo.pack',
  baseModel: 'mifo.base_model',
  instances: 'mifo.instances',
  source: 'mifo.source',
  training: 'mifo.training',
} as const;

/** A pack token: <name> with lowercase ASCII letters, digits, '_' and '-' (no '.', which would split the key). */
export const TOKEN_PATTERN = /^<[a-z0-9][a-z0-9_-]{0,46}>$/;

export class PackError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PackError';
  }
}

/** A pack made for one base model being imported onto another. */
export class PackBaseModelError extends PackError {
  constructor(message: string) {
    super(message);
    this.name = 'PackBaseModelError';
  }
}

export type LoraComponent = 'unet' | 'text_encoder';
export const LORA_PART_NAMES = ['lora_down.weight', 'lora_up.weight', 'alpha'] as const;
export type LoraPartName = (typeof LORA_PART_NAMES)[number];

const KOHYA_PREFIX: Record<LoraComponent, string> = { unet: 'lora_unet_', text_encoder: 'lora_te_' };

/** kohya's module name: lora_unet_ / lora_te_ + the module path with every '.' replaced by '_'. */
export function kohyaModuleName(component: LoraComponent, prefix: string): string {
  return KOHYA_PREFIX[component] + prefix.replaceAll('.', '_');
}

export function kohyaKey(module: string, part: LoraPartName): string {
  return `${module}.${part}`;
}

export const KOHYA_KEY_PATTERN = /^(lora_unet_|lora_te_)([a-z0-9_]+)\.(lora_down\.weight|lora_up\.weight|alpha)$/;

export function kohyaComponent(module: string): LoraComponent {
  return module.startsWith(KOHYA_PREFIX.unet) ? 'unet' : 'text_encoder';
}

/** A1111's bundled-embedding key for an SD1.x/2.x token (string_to_param with the single '*' term). */
export function bundleKey(token: string): string {
  return `bundle_emb.${token}.string_to_param.*`;
}

/** A token without its brackets, for file names (`<asset0>` -> `asset0`). */
export function tokenStem(token: string): string {
  return token.replace(/^<|>$/g, '');
}

const base64Png = z
  .string()
  .max(Math.ceil((MAX_PNG_BYTES * 4) / 3) + 4, `a PNG larger than ${MAX_PNG_BYTES} bytes`)
  .regex(/^[A-Za-z0-9+/]+={0,2}$/, 'PNG data must be base64');

const plainText = (max: number) =>
  z
    .string()
    .max(max)
    // eslint-disable-next-line no-control-regex
    .refine((text) => !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text), 'control characters are not allowed');

const unit = z.number().finite().min(0).max(1);
const box = z
  .tuple([unit, unit, unit, unit])
  .refine(([x0, y0, x1, y1]) => x0 < x1 && y0 < y1, 'a box is [x0, y0, x1, y1] with x0 < x1 and y0 < y1');

export const packHeaderSchema = z
  .object({
    format: z.literal(PACK_FORMAT),
    version: z.literal(PACK_VERSION, { error: `only pack version ${PACK_VERSION} is supported` }),
    name: plainText(100).pipe(z.string().trim().min(1, 'a pack needs a name')),
    note: plainText(4000),
    createdAt: z.iso.datetime(),
    generator: plainText(100),
  })
  .strict();

export const baseModelSchema = z
  .object({
    id: plainText(500).pipe(z.string().min(1)),
    weightsHash: z.string().regex(/^sha256:[0-9a-f]{64}$/, 'weightsHash is sha256:<64 hex digits>'),
    hiddenSize: z.number().int().min(1).max(16384),
    baseVocabSize: z.number().int().min(1).max(10_000_000),
  })
  .strict();

export const instanceSchema = z
  .object({
    token: z.string().regex(TOKEN_PATTERN, 'a token is <name> with lowercase letters, digits, _ and - (at most 48 characters)'),
    name: plainText(200).nullable(),
    initializer: plainText(100).nullable(),
    /** where the instance is in the source photo, normalised [x0, y0, x1, y1], origin top left */
    box: box.nullable(),
    mask: base64Png,
    attention: base64Png,
    thumbnail: base64Png.nullable(),
  })
  .strict();

export const sourceSchema = z
  .object({
    /** the learning resolution (the image and the masks have this size) */
    resolution: z.number().int().min(8).max(MAX_MASK_SIDE),
    /** the source photo as learned (resolution x resolution) */
    image: base64Png,
    /** the same, scaled down to at most SOURCE_THUMBNAIL_SIDE, for previews */
    thumbnail: base64Png,
  })
  .strict();

const jsonObject = z.record(z.string(), z.json());

export const trainingSchema = z
  .object({
    lora: z
      .object({
        rank: z.number().int().min(1).max(1024),
        alpha: z.number().finite().positive(),
        components: z.array(z.enum(['unet', 'text_encoder'])).min(1).max(2),
      })
      .strict()
      .nullable(),
    /** every learning option of the run (docs/learning.md), with local paths removed */
    options: jsonObject,
    metrics: jsonObject,
    learnedAt: z.iso.datetime(),
  })
  .strict();

export type PackHeader = z.infer<typeof packHeaderSchema>;
export type PackBaseModel = z.infer<typeof baseModelSchema>;
export type PackInstanceMetadata = z.infer<typeof instanceSchema>;
export type PackSourceMetadata = z.infer<typeof sourceSchema>;
export type PackTraining = z.infer<typeof trainingSchema>;

export interface PackInstance {
  token: string;
  name: string | null;
  initializer: string | null;
  box: [number, number, number, number] | null;
  mask: Buffer;
  attention: Buffer;
  thumbnail: Buffer | null;
}

export interface PackLoraModule {
  /** kohya module name, e.g. lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q */
  name: string;
  component: LoraComponent;
  down: { shape: [number, number]; data: Float32Array };
  up: { shape: [number, number]; data: Float32Array };
  alpha: number;
}

/** A pack whose every byte has been checked (trainer/packs/read.ts). */
export interface Pack {
  sha256: string;
  size: number;
  header: PackHeader;
  baseModel: PackBaseModel;
  instances: PackInstance[];
  source: { resolution: number; image: Buffer; thumbnail: Buffer };
  training: PackTraining;
  /** token -> [hidden] */
  embeddings: Map<string, Float32Array>;
  lora: Map<string, PackLoraModule>;
}

/** A key or value from an untrusted file, shortened and quoted for an error message. */
export function quoted(text: string, max = 80): string {
  const shown = text.length > max ? `${text.slice(0, max)}…` : text;
  return JSON.stringify(shown);
}
