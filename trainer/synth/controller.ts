// The UNet attention controller of box-controlled synthesis: it bounds every attention layer with the logit masks
// of masking.ts, collects the loss layers' in-box/out-of-box masses during guidance passes, accumulates the mask-map
// layers' attention during denoising passes, and rebuilds the subject masks from them (refine.ts).
import { tf } from '../runtime/backend.ts';
import type { AttentionCall, AttentionController, AttentionLayerInfo } from '../models/attention_processor.ts';
import type { UNet2DConditionModel } from '../models/unet_2d_condition.ts';
import { attentionMass, crossKeySelector, regionSelector, termLoss, totalLoss, type AttentionMass } from './losses.ts';
import { crossAttentionMask, selfAttentionMask, type AttentionMode, type MaskTokens } from './masking.ts';
import type { SynthesisControl } from './options.ts';
import { refineMasks } from './refine.ts';
import { boxMask, boxRegions, resizeRegions, type Box, type RegionSet } from './regions.ts';

/** How the samples of one UNet call are laid out: [uncond × samples, cond × samples] with CFG, else cond only. */
export interface BatchLayout {
  samples: number;
  cfg: boolean;
}

export interface ControllerSettings {
  boxes: readonly Box[];
  tokens: MaskTokens;
  /** each subject's leading token position */
  leading: readonly number[];
  control: SynthesisControl;
  lossLayers: readonly AttentionLayerInfo[];
  mapLayers: readonly AttentionLayerInfo[];
  /** the layers whose attention is bounded; absent or null: every layer */
  boundedLayers?: readonly AttentionLayerInfo[] | null;
  /** the query grid of the mask-map layers, where refined masks live */
  mapGrid: readonly [number, number];
}

export interface GuidanceEvaluation {
  loss: number;
  /** loss / (samples · subjects), the early-stopping criterion */
  normalizedLoss: number;
  /** L^CA per [sample][subject], or null when λ_CA = 0 */
  cross: number[][] | null;
  /** L^SA per [sample][subject], or null when λ_SA = 0 */
  self: number[][] | null;
  /** ∂loss/∂latents */
  grad: tf.Tensor4D;
}

/** The query grid side after `level` stride-2 downsamplings (padding 1, kernel 3: ⌈x/2⌉ each). */
export function gridAtLevel(side: number, level: number): number {
  let value = side;
  for (let i = 0; i < level; i++) value = Math.ceil(value / 2);
  return value;
}

function toRows(values: Float32Array | Int32Array | Uint8Array, rows: number, cols: number): number[][] {
  return Array.from({ length: rows }, (_, r) => Array.from(values.subarray(r * cols, (r + 1) * cols)));
}

export class BoundedAttentionController implements AttentionController {
  private mode: AttentionMode = 'denoising';
  private layout: BatchLayout = { samples: 1, cfg: true };
  private readonly lossOrders: Set<number>;
  private readonly mapOrders: Set<number>;
  private readonly boundedOrders: Set<number> | null;
  /** refined masks per sample and subject on the map grid; null while the boxes are in use */
  private refined: Uint8Array[][] | null = null;
  private refinedVersion = 0;
  private readonly centers: (Float32Array | undefined)[] = [];
  private readonly maskCache = new Map<string, tf.Tensor>();
  private readonly regionCache = new Map<string, RegionSet[] | RegionSet>();
  private crossMasses: AttentionMass[] = [];
  private selfMasses: AttentionMass[] = [];
  private crossKeys: tf.Tensor2D | null = null;
  private selfMapSum: tf.Tensor3D | null = null;
  private crossMapSum: tf.Tensor3D | null = null;
  private selfMapCount = 0;
  private crossMapCount = 0;

  constructor(readonly settings: ControllerSettings) {
    const { boxes, tokens, leading } = settings;
    if (boxes.length !== tokens.subjects.length || boxes.length !== leading.length) {
      throw new Error(`${boxes.length} boxes, ${tokens.subjects.length} token groups and ${leading.length} leading tokens must agree`);
    }
    this.lossOrders = new Set(settings.lossLayers.map((l) => l.order));
    this.mapOrders = new Set(settings.mapLayers.map((l) => l.order));
    this.boundedOrders = settings.boundedLayers ? new Set(settings.boundedLayers.map((l) => l.order)) : null;
  }

  get subjectCount(): number {
    return this.settings.boxes.length;
  }

  /** Sets what the following UNet calls are: guidance passes (loss collection) or denoising passes (map collection). */
  setPass(mode: AttentionMode, layout: BatchLayout): void {
    this.mode = mode;
    this.layout = layout;
  }

  /** True once masks have been refined; before, the boxes are the regions. */
  get hasRefinedMasks(): boolean {
    return this.refined !== null;
  }

  /** The current subject masks on the map grid, per sample (boxes before the first refinement). */
  currentMasks(samples: number): Uint8Array[][] {
    if (this.refined) return this.refined.map((masks) => masks.map((m) => m.slice()));
    const boxes = this.boxMasksOnMapGrid();
    return Array.from({ length: samples }, () => boxes.map((m) => m.slice()));
  }

  private boxMasksOnMapGrid(): Uint8Array[] {
    const [h, w] = this.settings.mapGrid;
    return this.settings.boxes.map((box) => boxMask(box, h, w));
  }

  /** Subject regions on an h×w grid: one set for all samples (boxes), or one per sample (refined masks). */
  private regions(height: number, width: number): RegionSet | RegionSet[] {
    const key = `${height}x${width}@${this.refinedVersion}`;
    let regions = this.regionCache.get(key);
    if (!regions) {
      const [mh, mw] = this.settings.mapGrid;
      regions = this.refined ? this.refined.map((masks) => resizeRegions(masks, mh, mw, height, width)) : boxRegions(this.settings.boxes, height, width);
      this.regionCache.set(key, regions);
    }
    return regions;
  }

  private boxRegionsOn(height: number, width: number): RegionSet {
    const key = `boxes:${height}x${width}`;
    let regions = this.regionCache.get(key);
    if (!regions) {
      regions = boxRegions(this.settings.boxes, height, width);
      this.regionCache.set(key, regions);
    }
    return regions as RegionSet;
  }

  private cached(key: string, build: () => tf.Tensor): tf.Tensor {
    let mask = this.maskCache.get(key);
    if (!mask) {
      mask = tf.keep(build());
      this.maskCache.set(key, mask);
    }
    return mask;
  }

  private checkBatch(call: AttentionCall): void {
    const expected = this.layout.samples * (this.layout.cfg ? 2 : 1);
    if (call.batch !== expected) throw new Error(`bounded attention expected a batch of ${expected} at ${call.layer.id}, got ${call.batch}`);
  }

  logitMask(call: AttentionCall): tf.Tensor | null {
    const { control } = this.settings;
    const cross = call.layer.kind === 'cross';
    if (cross ? !control.crossMask : !control.selfMask) return null;
    if (this.boundedOrders && !this.boundedOrders.has(call.layer.order)) return null;
    this.checkBatch(call);
    const { height, width, keys } = call;
    const { samples, cfg } = this.layout;
    const queries = height * width;
    const regions = this.regions(height, width);
    const perSample = (b: number) => (Array.isArray(regions) ? regions[b]! : regions);
    const layoutKey = `${samples}${cfg ? 'cfg' : ''}@${this.refinedVersion}`;
    if (cross) {
      return this.cached(`cross:${height}x${width}:${keys}:${this.mode}:${layoutKey}`, () => {
        const size = queries * keys;
        const data = new Float32Array((cfg ? 2 : 1) * samples * size);
        const offset = cfg ? samples * size : 0;
        const options = { maskEos: control.maskEos };
        const shared = Array.isArray(regions) ? null : crossAttentionMask(regions, this.settings.tokens, keys, this.mode, options);
        for (let b = 0; b < samples; b++) {
          data.set(shared ?? crossAttentionMask(perSample(b), this.settings.tokens, keys, this.mode, options), offset + b * size);
        }
        return tf.tensor4d(data, [call.batch, 1, queries, keys]);
      });
    }
    return this.cached(`self:${height}x${width}:${layoutKey}`, () => {
      if (!Array.isArray(regions)) return tf.tensor4d(selfAttentionMask(regions), [1, 1, queries, queries]);
      const size = queries * queries;
      const data = new Float32Array(call.batch * size);
      for (let b = 0; b < samples; b++) {
        const mask = selfAttentionMask(regions[b]!);
        data.set(mask, b * size);
        if (cfg) data.set(mask, (samples + b) * size);
      }
      return tf.tensor4d(data, [call.batch, 1, queries, queries]);
    });
  }

  capture(layer: AttentionLayerInfo): boolean {
    const { control } = this.settings;
    if (this.mode === 'guidance') {
      if (!this.lossOrders.has(layer.order)) return false;
      return layer.kind === 'cross' ? control.crossWeight > 0 : control.selfWeight > 0;
    }
    return control.refine && this.mapOrders.has(layer.order);
  }

  onProbs(call: AttentionCall, probs: tf.Tensor4D): void {
    try {
      this.checkBatch(call);
      const { samples, cfg } = this.layout;
      const conditional = cfg ? tf.slice(probs, [samples, 0, 0, 0], [samples, -1, -1, -1]) : probs;
      if (this.mode === 'guidance') this.collectMass(call, conditional);
      else this.accumulateMap(call, conditional);
    } finally {
      probs.dispose();
    }
  }

  private collectMass(call: AttentionCall, probs: tf.Tensor4D): void {
    const regions = this.boxRegionsOn(call.height, call.width);
    if (call.layer.kind === 'cross') {
      if (!this.crossKeys || this.crossKeys.shape[0] !== call.keys) {
        this.crossKeys?.dispose();
        this.crossKeys = tf.keep(crossKeySelector(this.settings.tokens.subjects, this.settings.tokens.eos, call.keys));
      }
      const mass = attentionMass(probs, this.crossKeys, regions);
      this.crossMasses.push({ inBox: tf.keep(mass.inBox), outOfBox: tf.keep(mass.outOfBox) });
    } else {
      // Created inside the attention layer's scope: the selector is freed with it.
      const mass = attentionMass(probs, regionSelector(regions), regions);
      this.selfMasses.push({ inBox: tf.keep(mass.inBox), outOfBox: tf.keep(mass.outOfBox) });
    }
  }

  private accumulateMap(call: AttentionCall, probs: tf.Tensor4D): void {
    const [mh, mw] = this.settings.mapGrid;
    if (call.height !== mh || call.width !== mw) {
      throw new Error(`mask-map layer ${call.layer.id} has a ${call.height}x${call.width} grid, expected ${mh}x${mw} (map layers must share one grid)`);
    }
    const headMean = tf.mean(probs, 1) as tf.Tensor3D;
    if (call.layer.kind === 'self') {
      const next = this.selfMapSum ? tf.add(this.selfMapSum, headMean) : headMean;
      this.selfMapSum?.dispose();
      this.selfMapSum = tf.keep(next) as tf.Tensor3D;
      this.selfMapCount++;
    } else {
      const leading = tf.gather(headMean, tf.tensor1d(Int32Array.from(this.settings.leading), 'int32'), 2) as tf.Tensor3D;
      const next = this.crossMapSum ? tf.add(this.crossMapSum, leading) : leading;
      this.crossMapSum?.dispose();
      this.crossMapSum = tf.keep(next) as tf.Tensor3D;
      this.crossMapCount++;
    }
  }

  /**
   * Clusters the accumulated maps into new subject masks (per sample), replacing the boxes or the previous masks.
   * Returns, per sample, the subjects whose mask came out empty and fell back to their box.
   */
  refine(): number[][] {
    if (!this.selfMapSum || !this.crossMapSum) throw new Error('mask refinement needs attention maps from at least one denoising step before it');
    const { control } = this.settings;
    const [mh, mw] = this.settings.mapGrid;
    const n = mh * mw;
    const count = this.subjectCount;
    const meanOf = (sum: tf.Tensor3D, count: number) => {
      const mean = tf.div(sum, count);
      const values = mean.dataSync() as Float32Array;
      mean.dispose();
      return values;
    };
    const selfMean = meanOf(this.selfMapSum, this.selfMapCount);
    const crossMean = meanOf(this.crossMapSum, this.crossMapCount);
    const samples = this.selfMapSum.shape[0];
    const boxes = this.boxMasksOnMapGrid();
    const current = this.currentMasks(samples);
    const fellBack: number[][] = [];
    const refined = current.map((masks, b) => {
      const result = refineMasks(
        {
          selfMap: selfMean.subarray(b * n * n, (b + 1) * n * n),
          crossMap: crossMean.subarray(b * n * count, (b + 1) * n * count),
          n,
          current: masks,
          boxes,
          centers: this.centers[b],
        },
        {
          clustersPerSubject: control.clustersPerSubject,
          selfMaskThreshold: control.selfMaskThreshold,
          crossMaskThreshold: control.crossMaskThreshold,
          kmeans: { inits: control.kmeansInits, maxIterations: control.kmeansMaxIterations, tolerance: control.kmeansTolerance, seed: control.kmeansSeed },
        },
      );
      this.centers[b] = result.centers;
      fellBack.push(result.fellBack);
      return result.masks;
    });
    this.refined = refined;
    this.refinedVersion++;
    this.clearMaskCaches();
    return fellBack;
  }

  /**
   * One guidance evaluation: a masked forward of the conditional batch at `timestep`, the loss of Eq. 14 from the
   * loss layers (α for the CA and SA terms given), and its gradient with respect to the latents.
   */
  evaluateGuidance(
    unet: UNet2DConditionModel,
    latents: tf.Tensor4D,
    timestep: number,
    conditionalContext: tf.Tensor3D,
    alpha: { cross: number; self: number },
  ): GuidanceEvaluation {
    const { control } = this.settings;
    const samples = latents.shape[0];
    this.setPass('guidance', { samples, cfg: false });
    const keptTerms: { cross: tf.Tensor2D | null; self: tf.Tensor2D | null } = { cross: null, self: null };
    const masses: AttentionMass[] = [];
    try {
      const { value, grad } = tf.valueAndGrad((z: tf.Tensor) => {
        unet.forward(z as tf.Tensor4D, [timestep], conditionalContext, { controller: this });
        const crossMasses = this.crossMasses;
        const selfMasses = this.selfMasses;
        this.crossMasses = [];
        this.selfMasses = [];
        masses.push(...crossMasses, ...selfMasses);
        const options = { inBox: control.inBox, outOfBox: control.outOfBox, backgroundFactor: control.boxCountFactor ? this.subjectCount : 1 };
        const cross = control.crossWeight > 0 ? termLoss(crossMasses, { ...options, alpha: alpha.cross }) : null;
        const self = control.selfWeight > 0 ? termLoss(selfMasses, { ...options, alpha: alpha.self }) : null;
        keptTerms.cross = cross && tf.keep(cross);
        keptTerms.self = self && tf.keep(self);
        return totalLoss(cross, self, control.crossWeight, control.selfWeight);
      })(latents);
      const loss = value.dataSync()[0]!;
      value.dispose();
      const count = this.subjectCount;
      const rows = (t: tf.Tensor2D | null) => (t ? toRows(t.dataSync() as Float32Array, samples, count) : null);
      return { loss, normalizedLoss: loss / (samples * count), cross: rows(keptTerms.cross), self: rows(keptTerms.self), grad: grad as tf.Tensor4D };
    } finally {
      for (const m of masses) tf.dispose([m.inBox, m.outOfBox]);
      tf.dispose([keptTerms.cross, keptTerms.self].filter((t): t is tf.Tensor2D => t !== null));
      this.crossMasses = [];
      this.selfMasses = [];
    }
  }

  private clearMaskCaches(): void {
    for (const mask of this.maskCache.values()) mask.dispose();
    this.maskCache.clear();
    this.regionCache.clear();
  }

  dispose(): void {
    this.clearMaskCaches();
    for (const tensor of [this.crossKeys, this.selfMapSum, this.crossMapSum]) tensor?.dispose();
    this.crossKeys = null;
    this.selfMapSum = null;
    this.crossMapSum = null;
  }
}
