// The knobs of box-controlled synthesis, their reference values (MIFO's semantic_synthesis.py and
// bounded_attention.py), the presets (MIFO, Bounded Attention, no control) and the ablation switches of spec §5.
import { isLayerOrderList } from '../models/attention_layers.ts';
import { REFERENCE_ALPHA, validateAlphaParams, type AlphaIndexing, type AlphaParams, type AlphaSchedule } from './alpha.ts';
import { isNonNegativeInteger } from '../util/numbers.ts';

export interface SynthesisControl {
  /** false: plain DDIM + CFG, no masking, no guidance (the "no control" baseline) */
  boxControl: boolean;
  /** latent guidance runs on DDIM steps 0 .. guidanceSteps−1 */
  guidanceSteps: number;
  /** at most this many gradient-descent iterations per guided step */
  iterationsPerStep: number;
  /** step size η_i, linear from start (i = 0) towards end (i = guidanceSteps) */
  stepSizeStart: number;
  stepSizeEnd: number;
  /** skip the remaining iterations of a step once the normalised loss is below this */
  lossStop: number;
  /** λ_CA: weight of the cross-attention loss (0 disables it) */
  crossWeight: number;
  /** λ_SA: weight of the self-attention loss (0 disables it) */
  selfWeight: number;
  /** the in-box reward (1 − F/(F+S·G))² */
  inBox: boolean;
  /** the out-of-box penalty α·ln(1+G) */
  outOfBox: boolean;
  /** Bounded Attention's S·G (S = number of boxes) in the reward instead of MIFO's G */
  boxCountFactor: boolean;
  alphaSchedule: AlphaSchedule;
  alphaIndexing: AlphaIndexing;
  alpha: AlphaParams;
  /** bound cross-attention (subject tokens to their regions, function words hidden, EOS off the background) */
  crossMask: boolean;
  /** bound self-attention (subjects do not see each other) */
  selfMask: boolean;
  /** in denoising passes, hide the EOS token from the background */
  maskEos: boolean;
  /** replace the boxes by clustered masks from refineStart on */
  refine: boolean;
  refineStart: number;
  refineEvery: number;
  clustersPerSubject: number;
  selfMaskThreshold: number;
  crossMaskThreshold: number;
  kmeansInits: number;
  kmeansMaxIterations: number;
  kmeansTolerance: number;
  kmeansSeed: number;
  /** explicit ℓ indices of the loss layers (default: chosen by role, see layers.ts) */
  lossLayers: number[] | null;
  /** explicit ℓ indices of the mask-map layers (default: chosen by role) */
  mapLayers: number[] | null;
  /** ℓ indices of the layers whose attention is bounded (default: every layer, as the reference) */
  boundedLayers: number[] | null;
}

export const MIFO_CONTROL: SynthesisControl = {
  boxControl: true,
  guidanceSteps: 15,
  iterationsPerStep: 5,
  stepSizeStart: 8,
  stepSizeEnd: 2,
  lossStop: 0.2,
  crossWeight: 1.5,
  selfWeight: 0.5,
  inBox: true,
  outOfBox: true,
  boxCountFactor: false,
  alphaSchedule: 'decay',
  alphaIndexing: 'reference',
  alpha: REFERENCE_ALPHA,
  crossMask: true,
  selfMask: true,
  maskEos: true,
  refine: true,
  refineStart: 15,
  refineEvery: 5,
  clustersPerSubject: 3,
  selfMaskThreshold: 0.2,
  crossMaskThreshold: 0.2,
  kmeansInits: 100,
  kmeansMaxIterations: 100,
  kmeansTolerance: 1e-4,
  kmeansSeed: 123,
  lossLayers: null,
  mapLayers: null,
  boundedLayers: null,
};

export type PresetName = 'mifo' | 'ba' | 'off';

export const PRESETS: Record<PresetName, SynthesisControl> = {
  mifo: MIFO_CONTROL,
  // Bounded Attention (run_sd.py): in-box reward with S·G, no out-of-box penalty, otherwise the same knobs.
  ba: { ...MIFO_CONTROL, outOfBox: false, boxCountFactor: true, alphaSchedule: 'zero' },
  off: { ...MIFO_CONTROL, boxControl: false },
};

export type AblationName = 'ca-only' | 'sa-only' | 'in-box-only' | 'out-of-box-only' | 'no-decay' | 'no-refine';

/** The synthesis ablations of the MIFO paper (§4.4), applied on top of a preset. */
export const ABLATIONS: Record<AblationName, Partial<SynthesisControl>> = {
  'ca-only': { selfWeight: 0 },
  'sa-only': { crossWeight: 0 },
  'in-box-only': { outOfBox: false },
  'out-of-box-only': { inBox: false },
  'no-decay': { alphaSchedule: 'constant' },
  'no-refine': { refine: false },
};

export type ControlOverrides = Partial<Omit<SynthesisControl, 'alpha'>> & { alpha?: Partial<AlphaParams> };

function check(condition: boolean, message: string): void {
  if (!condition) throw new Error(`synthesis option: ${message}`);
}

/** Ten times the reference's values: beyond them a run takes hours on a CPU and is almost surely a typo. */
const MAX_ITERATIONS_PER_STEP = 50;
const MAX_KMEANS_INITS = 1000;

export function validateControl(c: SynthesisControl): void {
  const flags = ['boxControl', 'inBox', 'outOfBox', 'boxCountFactor', 'crossMask', 'selfMask', 'maskEos', 'refine'] as const;
  for (const flag of flags) check(typeof c[flag] === 'boolean', `${flag} must be true or false, got ${JSON.stringify(c[flag])}`);
  check(isNonNegativeInteger(c.guidanceSteps), `guidanceSteps must be an integer ≥ 0, got ${c.guidanceSteps}`);
  check(Number.isInteger(c.iterationsPerStep) && c.iterationsPerStep >= 1 && c.iterationsPerStep <= MAX_ITERATIONS_PER_STEP, `iterationsPerStep must be an integer from 1 to ${MAX_ITERATIONS_PER_STEP}, got ${c.iterationsPerStep}`);
  check(Number.isFinite(c.stepSizeStart) && Number.isFinite(c.stepSizeEnd), 'step sizes must be finite');
  check(Number.isFinite(c.lossStop), `lossStop must be finite, got ${c.lossStop}`);
  check(c.crossWeight >= 0 && c.selfWeight >= 0, `loss weights must be ≥ 0, got λ_CA=${c.crossWeight}, λ_SA=${c.selfWeight}`);
  check(c.inBox || c.outOfBox, 'the in-box and out-of-box terms cannot both be off');
  check(['decay', 'constant', 'zero'].includes(c.alphaSchedule), `alphaSchedule must be decay, constant or zero, got ${c.alphaSchedule}`);
  check(['reference', 'step'].includes(c.alphaIndexing), `alphaIndexing must be reference or step, got ${c.alphaIndexing}`);
  validateAlphaParams(c.alpha);
  check(isNonNegativeInteger(c.refineStart), `refineStart must be an integer ≥ 0, got ${c.refineStart}`);
  check(Number.isInteger(c.refineEvery) && c.refineEvery >= 1, `refineEvery must be an integer ≥ 1, got ${c.refineEvery}`);
  check(Number.isInteger(c.clustersPerSubject) && c.clustersPerSubject >= 1, `clustersPerSubject must be an integer ≥ 1, got ${c.clustersPerSubject}`);
  check(Number.isInteger(c.kmeansInits) && c.kmeansInits >= 1 && c.kmeansInits <= MAX_KMEANS_INITS, `kmeansInits must be an integer from 1 to ${MAX_KMEANS_INITS}, got ${c.kmeansInits}`);
  check(Number.isInteger(c.kmeansMaxIterations) && c.kmeansMaxIterations >= 1, `kmeansMaxIterations must be an integer ≥ 1`);
  check(c.kmeansTolerance >= 0, `kmeansTolerance must be ≥ 0`);
  check(Number.isInteger(c.kmeansSeed), `kmeansSeed must be an integer`);
  for (const [name, list] of [['lossLayers', c.lossLayers], ['mapLayers', c.mapLayers], ['boundedLayers', c.boundedLayers]] as const) {
    check(list === null || isLayerOrderList(list), `${name} must be a non-empty list of layer indices`);
  }
}

/** A preset, then the named ablations, then explicit overrides; validated. */
export function resolveControl(preset: PresetName = 'mifo', ablations: readonly AblationName[] = [], overrides: ControlOverrides = {}): SynthesisControl {
  const base = PRESETS[preset];
  if (!base) throw new Error(`unknown synthesis preset '${preset}' (use ${Object.keys(PRESETS).join(', ')})`);
  let control: SynthesisControl = { ...base, alpha: { ...base.alpha } };
  for (const name of ablations) {
    const ablation = ABLATIONS[name];
    if (!ablation) throw new Error(`unknown ablation '${name}' (use ${Object.keys(ABLATIONS).join(', ')})`);
    control = { ...control, ...ablation };
  }
  const { alpha, ...rest } = overrides;
  const unknown = [
    ...Object.keys(rest).filter((key) => !(key in control)),
    ...Object.keys(alpha ?? {}).filter((key) => !(key in control.alpha)).map((key) => `alpha.${key}`),
  ];
  if (unknown.length > 0) throw new Error(`unknown synthesis control option(s) ${unknown.join(', ')} (known: ${Object.keys(control).join(', ')})`);
  const defined = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) as Partial<SynthesisControl>;
  control = { ...control, ...defined, alpha: { ...control.alpha, ...(alpha ?? {}) } };
  validateControl(control);
  return control;
}
