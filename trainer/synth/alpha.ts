// α of MIFO's Eq. 11, the weight of the out-of-box penalty: linear from α_max to α_stage1End over the first steps,
// then a cosine decay to α_final at step N (the first mask-refinement step), constant after.

export interface AlphaParams {
  max: number;
  stage1End: number;
  final: number;
  /** T1: the linear stage ends here */
  stage1Steps: number;
  /** N: the cosine stage ends here */
  decayEnd: number;
}

export const REFERENCE_ALPHA: AlphaParams = { max: 0.4, stage1End: 0.1, final: 0.01, stage1Steps: 3, decayEnd: 15 };

/** decay: Eq. 11; constant: α_max throughout; zero: no penalty (the reference's alpha_desc=False). */
export type AlphaSchedule = 'decay' | 'constant' | 'zero';

/**
 * reference: τ = ⌊calls/10⌋, where `calls` counts loss-term evaluations (CA then SA, two per guidance iteration), as
 * the reference computes it; τ then equals the step index only when every step runs 5 iterations, and τ=0 gives
 * 0.55 > α_max because the linear branch uses τ−1.
 * step: τ = step index + 1, so the first guided step gets α_max and step N−1 reaches α_final.
 */
export type AlphaIndexing = 'reference' | 'step';

// The reference divides its call counter by this constant whatever the iteration count is.
const REFERENCE_CALLS_PER_TAU = 10;

/** Eq. 11 at τ, exactly as the reference evaluates it (including τ = 0). */
export function alphaAt(tau: number, params: AlphaParams = REFERENCE_ALPHA): number {
  const { max, stage1End, final, stage1Steps, decayEnd } = params;
  if (tau <= stage1Steps) return max + ((stage1End - max) * (tau - 1)) / (stage1Steps - 1);
  if (tau >= decayEnd) return final;
  const cosine = (1 + Math.cos((Math.PI * (tau - stage1Steps)) / (decayEnd - stage1Steps))) / 2;
  return final + (stage1End - final) * cosine;
}

export function validateAlphaParams(params: AlphaParams): void {
  const { max, stage1End, final, stage1Steps, decayEnd } = params;
  if (![max, stage1End, final].every((v) => Number.isFinite(v) && v >= 0)) throw new Error(`α values must be finite and ≥ 0, got ${JSON.stringify(params)}`);
  if (!Number.isInteger(stage1Steps) || stage1Steps < 2) throw new Error(`α stage-1 steps must be an integer ≥ 2, got ${stage1Steps}`);
  if (!Number.isInteger(decayEnd) || decayEnd <= stage1Steps) throw new Error(`α decay end (${decayEnd}) must be an integer after stage 1 (${stage1Steps})`);
}

/** Hands out α for each loss-term evaluation of a sampling run. */
export class AlphaClock {
  private calls = 0;

  constructor(
    readonly schedule: AlphaSchedule,
    readonly indexing: AlphaIndexing,
    readonly params: AlphaParams = REFERENCE_ALPHA,
  ) {
    validateAlphaParams(params);
  }

  /** α for the next loss term (CA or SA) evaluated during guidance of DDIM step `step` (0-based). */
  next(step: number): number {
    if (this.schedule === 'zero') return 0;
    if (this.schedule === 'constant') return this.params.max;
    const tau = this.indexing === 'reference' ? Math.floor(this.calls / REFERENCE_CALLS_PER_TAU) : step + 1;
    this.calls++;
    return alphaAt(tau, this.params);
  }
}
