// Reading placeholder attention maps from the UNet (spec §3.1): post-softmax probabilities over all keys, averaged
// over heads, one [h, w] map per placeholder position per chosen cross-attention layer, kept on the gradient tape.
import { tf } from '../runtime/backend.ts';
import type { AttentionCall, AttentionController, AttentionLayerInfo } from '../models/attention_processor.ts';

export interface LayerMaps {
  layer: AttentionLayerInfo;
  height: number;
  width: number;
  /** one head-averaged [height, width] map per recorded position, in the order of `positions` */
  maps: tf.Tensor2D[];
}

/** Records the maps of `positions` for batch element `sampleIndex` in `layers`; dispose() frees them. */
export class AttentionRecorder implements AttentionController {
  readonly records: LayerMaps[] = [];
  private readonly ids: Set<string>;

  constructor(
    layers: readonly AttentionLayerInfo[],
    private readonly sampleIndex: number,
    private readonly positions: readonly number[],
  ) {
    this.ids = new Set(layers.map((layer) => layer.id));
  }

  capture(layer: AttentionLayerInfo): boolean {
    return this.ids.has(layer.id);
  }

  onProbs(call: AttentionCall, probs: tf.Tensor4D): void {
    const [, heads, queries, keys] = probs.shape;
    const maps = tf.tidy(() => {
      const sample = tf.slice(probs, [this.sampleIndex, 0, 0, 0], [1, heads, queries, keys]);
      const headMean = tf.reshape(tf.mean(sample, 1), [queries, keys]);
      return this.positions.map((p) => tf.reshape(tf.slice(headMean, [0, p], [queries, 1]), [call.height, call.width]) as tf.Tensor2D);
    });
    probs.dispose();
    for (const map of maps) tf.keep(map);
    this.records.push({ layer: call.layer, height: call.height, width: call.width, maps });
  }

  dispose(): void {
    for (const record of this.records) for (const map of record.maps) map.dispose();
    this.records.length = 0;
  }
}

/** Break-a-Scene's aggregate: heads of all layers of one resolution averaged jointly (a head-count weighted mean). */
export function jointHeadMean(records: readonly LayerMaps[], position: number): tf.Tensor2D {
  return tf.tidy(() => {
    const totalHeads = records.reduce((sum, r) => sum + r.layer.heads, 0);
    const weighted = records.map((r) => tf.mul(r.maps[position]!, r.layer.heads / totalHeads));
    return tf.addN(weighted) as tf.Tensor2D;
  });
}

/** Records grouped by map size, largest first. */
export function groupByResolution(records: readonly LayerMaps[]): LayerMaps[][] {
  const groups = new Map<string, LayerMaps[]>();
  for (const record of records) {
    const key = `${record.height}x${record.width}`;
    groups.set(key, [...(groups.get(key) ?? []), record]);
  }
  return [...groups.values()].sort((a, b) => b[0]!.height * b[0]!.width - a[0]!.height * a[0]!.width);
}
