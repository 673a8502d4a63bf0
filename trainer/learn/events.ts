// What a learning run reports while it runs (the async iterator of learn()).
import type { RgbImage } from '../io/image.ts';
import type { AttentionTerm } from './losses.ts';
import type { Mask } from './masks.ts';

export type Phase = 1 | 2;

export interface LossTerms {
  reconstruction: number;
  /** prior-preservation MSE (0 without prior preservation) */
  prior: number;
  /** the weighted attention term (0 when none applied) */
  attention: number;
}

/** Share of a placeholder's attention mass inside each instance mask (Σ A·M / Σ A), averaged over layers and probe timesteps. */
export interface AttentionMass {
  token: string;
  /** inside its own instance's mask */
  own: number;
  /** inside each instance's mask, in instance order (own included) */
  perMask: number[];
}

/**
 * Whether learning tied each token to its own object: its share inside its own mask grew, and ends above its share
 * inside every other instance's mask. `before` and `after` are the probe's measurements in token (= instance) order.
 */
export function groundedTokens(before: readonly AttentionMass[], after: readonly AttentionMass[]): boolean[] {
  if (before.length !== after.length) throw new Error(`before has ${before.length} tokens, after ${after.length}`);
  return after.map((mass, token) => mass.own > before[token]!.own && mass.perMask.every((share, instance) => instance === token || mass.own > share));
}

/** What one optimisation step did. */
export interface StepOutcome {
  loss: number;
  terms: LossTerms;
  attentionTerm: NonNullable<AttentionTerm>['kind'] | null;
  timestep: number;
  prompt: string;
  flip: boolean;
  lr: number;
  gradNorm: number;
}

export interface TokenAttentionMap {
  token: string;
  /** head- and layer-averaged map at the finest chosen resolution, values are probabilities */
  map: Mask;
}

export type LearnEvent =
  | { type: 'start'; tokens: string[]; phaseSteps: Record<Phase, number>; totalSteps: number; resumedFrom: { phase: Phase; step: number } | null; engine: string }
  | { type: 'prepare'; task: 'class-images'; done: number; total: number }
  | { type: 'phase'; phase: Phase; steps: number }
  | ({
      type: 'step';
      phase: Phase;
      /** steps completed in this phase (1-based after the step) */
      step: number;
      phaseSteps: number;
      globalStep: number;
      totalSteps: number;
      elapsedMs: number;
      /** estimated time to finish both phases */
      etaMs: number;
    } & StepOutcome)
  | { type: 'attention'; phase: Phase; step: number; maps: TokenAttentionMap[]; mass: AttentionMass[] }
  | { type: 'preview'; phase: Phase; step: number; prompt: string; image: RgbImage }
  | { type: 'checkpoint'; phase: Phase; step: number; dir: string }
  | { type: 'done'; conceptDir: string; metrics: LearnMetrics };

export interface LearnMetrics {
  attentionMass: { before: AttentionMass[]; after: AttentionMass[] };
  /** mean loss terms over the last tenth of each phase that ran */
  finalLosses: Partial<Record<`phase${Phase}`, LossTerms & { loss: number }>>;
  durationMs: number;
}

/** Thrown by learn() when its AbortSignal fires; a resumable checkpoint is in `checkpointDir`. */
export class LearnAbortedError extends Error {
  constructor(readonly checkpointDir: string, readonly phase: Phase, readonly step: number) {
    super(`learning stopped at phase ${phase} step ${step}; resume from ${checkpointDir}`);
    this.name = 'AbortError';
  }
}
