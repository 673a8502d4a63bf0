// The learning-stage losses (spec §1.3-1.4, §5) as small pure functions, plus the rule that decides which attention
// term applies at a step.
import { tf } from '../runtime/backend.ts';

/**
 * L_rec (P Eq.4): mean over every element of (m⊙pred − m⊙target)², with mask [B, h, w, 1] broadcast over channels.
 * The mean runs over the whole tensor; it is not normalised by the mask area (as the reference).
 */
export function maskedReconstructionLoss(pred: tf.Tensor4D, target: tf.Tensor4D, mask: tf.Tensor4D): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.square(tf.sub(tf.mul(pred, mask), tf.mul(target, mask)))) as tf.Scalar);
}

export function mseLoss(a: tf.Tensor, b: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.square(tf.sub(a, b))) as tf.Scalar);
}

/** Reward (P Eq.1) without its weight: mean over the map of (α·M − A)². */
export function attentionRewardLoss(map: tf.Tensor, mask: tf.Tensor, alpha: number): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.square(tf.sub(tf.mul(mask, alpha), map))) as tf.Scalar);
}

/** Penalty (P Eq.2) without its weight: mean over the map of ((1 − M)⊙A)², an MSE against a zero map. */
export function attentionPenaltyLoss(map: tf.Tensor, mask: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.square(tf.mul(tf.sub(1, mask), map))) as tf.Scalar);
}

/** Break-a-Scene's term without its weight: mean of (M − A/max A)², the map normalised by its maximum. */
export function basAttentionLoss(map: tf.Tensor, mask: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.square(tf.sub(mask, tf.div(map, tf.max(map))))) as tf.Scalar);
}

export type AttentionMode = 'none' | 'reward' | 'penalty' | 'reward-penalty' | 'bas';

export const ATTENTION_MODES: readonly AttentionMode[] = ['none', 'reward', 'penalty', 'reward-penalty', 'bas'];

export interface AttentionSchedule {
  mode: AttentionMode;
  /** n_c: steps (of the phase) that use the reward before the penalty takes over (mode reward-penalty) */
  rewardSteps: number;
  /** t_s: the term applies only when the training timestep is below this (every timestep in mode bas) */
  timestepThreshold: number;
  /** λ_r, also Break-a-Scene's λ */
  rewardWeight: number;
  /** λ_p */
  penaltyWeight: number;
  /** α: the reward's target is α·M */
  rewardAlpha: number;
}

export type AttentionTerm = { kind: 'reward' | 'penalty' | 'bas'; weight: number } | null;

/**
 * The attention term at a phase step and training timestep, or null when none applies. As in the reference code,
 * λ_p = 0 switches the whole MIFO term off, the reward included (the "no control" ablation of the code); a pure
 * reward run therefore uses mode 'reward' with a non-zero λ_p.
 */
export function attentionTermAt(schedule: AttentionSchedule, step: number, timestep: number): AttentionTerm {
  const { mode } = schedule;
  if (mode === 'none') return null;
  if (mode === 'bas') return { kind: 'bas', weight: schedule.rewardWeight };
  if (schedule.penaltyWeight === 0) return null;
  if (!(timestep < schedule.timestepThreshold)) return null;
  const reward = mode === 'reward' || (mode === 'reward-penalty' && step < schedule.rewardSteps);
  return reward ? { kind: 'reward', weight: schedule.rewardWeight } : { kind: 'penalty', weight: schedule.penaltyWeight };
}

/** One term's unweighted value for a head-averaged map A and the instance mask M at the map's resolution. */
export function attentionTermLoss(kind: NonNullable<AttentionTerm>['kind'], map: tf.Tensor, mask: tf.Tensor, rewardAlpha: number): tf.Scalar {
  if (kind === 'reward') return attentionRewardLoss(map, mask, rewardAlpha);
  if (kind === 'penalty') return attentionPenaltyLoss(map, mask);
  return basAttentionLoss(map, mask);
}
