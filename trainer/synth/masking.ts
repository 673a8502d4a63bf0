// Bounded attention's additive logit masks (reference `_hide_other_subjects_from_tokens`,
// `_hide_other_subjects_from_subjects`): 0 keeps a logit, MASKED removes it. Built per sample on one query grid,
// from that grid's subject regions R_s and background Ω.
//
// Cross-attention (applied to the conditional half of a CFG batch only):
// - every subject-token column and every function-word column is removed for all pixels;
// - subject s's tokens are re-opened for the pixels of R_s, and in guidance mode also for Ω;
// - in denoising mode (with maskEos) the EOS column is removed for the pixels of Ω.
// Start token, padding and ordinary words are untouched.
// Self-attention (both CFG halves): a query in R_s sees keys in R_s and Ω (and in other regions that contain the query),
// never pixels of other subjects only; a query in Ω sees everything.
import type { RegionSet } from './regions.ts';

/** float32's lowest value, the reference's torch.finfo(dtype).min. */
export const MASKED = -3.4028234663852886e38;

export type AttentionMode = 'guidance' | 'denoising';

export interface MaskTokens {
  /** token positions of each subject */
  subjects: readonly (readonly number[])[];
  /** function-word positions */
  filter: readonly number[];
  eos: number;
}

/** [Q, K] row-major. */
export function crossAttentionMask(regions: RegionSet, tokens: MaskTokens, keys: number, mode: AttentionMode, options: { maskEos: boolean }): Float32Array {
  const queries = regions.height * regions.width;
  if (tokens.subjects.length !== regions.subjects.length) throw new Error(`${tokens.subjects.length} token groups for ${regions.subjects.length} regions`);
  const mask = new Float32Array(queries * keys);
  const hidden = [...tokens.subjects.flat(), ...tokens.filter];
  for (const k of [...hidden, tokens.eos]) if (k < 0 || k >= keys) throw new Error(`token position ${k} is outside the ${keys} keys`);
  for (let q = 0; q < queries; q++) for (const k of hidden) mask[q * keys + k] = MASKED;
  const openBackground = mode === 'guidance';
  tokens.subjects.forEach((positions, s) => {
    const region = regions.subjects[s]!;
    for (let q = 0; q < queries; q++) {
      if (!region[q] && !(openBackground && regions.background[q])) continue;
      for (const k of positions) mask[q * keys + k] = 0;
    }
  });
  if (mode === 'denoising' && options.maskEos) {
    for (let q = 0; q < queries; q++) if (regions.background[q]) mask[q * keys + tokens.eos] = MASKED;
  }
  return mask;
}

/** [Q, Q] row-major. */
export function selfAttentionMask(regions: RegionSet): Float32Array {
  const queries = regions.height * regions.width;
  const mask = new Float32Array(queries * queries);
  const allowed = new Uint8Array(queries);
  for (let q = 0; q < queries; q++) {
    if (regions.background[q]) continue;
    allowed.set(regions.background);
    for (const region of regions.subjects) {
      if (!region[q]) continue;
      for (let k = 0; k < queries; k++) if (region[k]) allowed[k] = 1;
    }
    const row = q * queries;
    for (let k = 0; k < queries; k++) if (!allowed[k]) mask[row + k] = MASKED;
  }
  return mask;
}
