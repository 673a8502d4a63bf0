// Reads the JSON that SAM's automatic mask generator writes (scripts/amg.py with --convert-to-rle, or
// SamAutomaticMaskGenerator(output_mode='coco_rle' | 'uncompressed_rle') dumped with json): a list of records with a
// `segmentation` {size, counts}, and optionally `area`, `bbox`, `predicted_iou`, `stability_score`. A COCO file
// ({annotations: [...]}) is accepted too.
import { decodeRle, RleError, type CocoRle } from './rle.ts';

export interface MaskCandidate {
  /** position in the file */
  index: number;
  height: number;
  width: number;
  /** row-major 0/1 */
  mask: Uint8Array;
  area: number;
  /** [x, y, width, height] of the decoded mask in its own pixels, or null when empty */
  bbox: [number, number, number, number] | null;
  predictedIou: number | null;
  stabilityScore: number | null;
}

export const MAX_AMG_RECORDS = 256;

export class AmgFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AmgFormatError';
  }
}

function records(json: unknown): unknown[] {
  if (Array.isArray(json)) return json;
  if (json && typeof json === 'object' && Array.isArray((json as { annotations?: unknown }).annotations)) return (json as { annotations: unknown[] }).annotations;
  if (json && typeof json === 'object' && 'segmentation' in json) return [json];
  throw new AmgFormatError('expected a list of masks with a "segmentation" field each (SAM automatic mask generator output), or a COCO file with "annotations"');
}

function optionalNumber(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function boundingBox(mask: Uint8Array, height: number, width: number): [number, number, number, number] | null {
  let x0 = width;
  let y0 = height;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (!mask[y * width + x]) continue;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
    }
  }
  return x1 < 0 ? null : [x0, y0, x1 - x0 + 1, y1 - y0 + 1];
}

/** Decodes every record; any malformed one fails the whole file with a message naming it. */
export function parseAmgJson(text: string): MaskCandidate[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new AmgFormatError(`the file is not JSON: ${(error as Error).message}`);
  }
  const list = records(json);
  if (list.length === 0) throw new AmgFormatError('the file holds no masks');
  if (list.length > MAX_AMG_RECORDS) throw new AmgFormatError(`the file holds ${list.length} masks; at most ${MAX_AMG_RECORDS} can be imported at once`);
  return list.map((record, index) => {
    const segmentation = (record as { segmentation?: unknown } | null)?.segmentation;
    if (!segmentation || typeof segmentation !== 'object' || Array.isArray(segmentation)) {
      const hint = Array.isArray(segmentation) ? ' (polygons and binary arrays are not supported; export with output_mode "coco_rle")' : '';
      throw new AmgFormatError(`mask ${index}: "segmentation" must be an RLE object {size, counts}${hint}`);
    }
    let decoded: ReturnType<typeof decodeRle>;
    try {
      decoded = decodeRle(segmentation as CocoRle);
    } catch (error) {
      if (error instanceof RleError) throw new AmgFormatError(`mask ${index}: ${error.message}`);
      throw error;
    }
    let area = 0;
    for (const value of decoded.mask) area += value;
    const fields = record as { predicted_iou?: unknown; stability_score?: unknown };
    return {
      index,
      height: decoded.height,
      width: decoded.width,
      mask: decoded.mask,
      area,
      bbox: boundingBox(decoded.mask, decoded.height, decoded.width),
      predictedIou: optionalNumber(fields.predicted_iou),
      stabilityScore: optionalNumber(fields.stability_score),
    };
  });
}
