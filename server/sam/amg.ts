// Reads the JSON that SAM's automatic mask generator writes (scripts/amg.py with --convert-to-rle, or
// SamAutomaticMaskGenerator(output_mode='coco_rle' | 'uncompressed_rle') dumped with json): a list of records with a
// `segmentation` {size, counts}, and optionally `area`, `bbox`, `predicted_iou`, `stability_score`. A COCO file
// ({annotations: [...]}) is accepted too.
import { parseRle, rasterizeRle, rleArea, rleBoundingBox, RleError, type CocoRle, type RleRuns } from './rle.ts';

export interface MaskCandidate {
  /** position in the file */
  index: number;
  height: number;
  width: number;
  /** the row-major 0/1 mask, rasterised on demand (a file may hold hundreds of photo-sized masks) */
  decode(): Uint8Array;
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

/**
 * Checks every record (its runs, and a size of at most `maxPixels`); any malformed one fails the whole file with a
 * message naming it.
 */
export function parseAmgJson(text: string, maxPixels: number): MaskCandidate[] {
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
    let runs: RleRuns;
    try {
      runs = parseRle(segmentation as CocoRle);
    } catch (error) {
      if (error instanceof RleError) throw new AmgFormatError(`mask ${index}: ${error.message}`);
      throw error;
    }
    if (runs.height * runs.width > maxPixels) {
      throw new AmgFormatError(`mask ${index} is ${runs.width}×${runs.height} pixels; at most ${maxPixels} are accepted`);
    }
    const fields = record as { predicted_iou?: unknown; stability_score?: unknown };
    return {
      index,
      height: runs.height,
      width: runs.width,
      decode: () => rasterizeRle(runs),
      area: rleArea(runs),
      bbox: rleBoundingBox(runs),
      predictedIou: optionalNumber(fields.predicted_iou),
      stabilityScore: optionalNumber(fields.stability_score),
    };
  });
}
