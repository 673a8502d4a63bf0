// Classifier-free guidance of one denoising step, shared by text-to-image and box-controlled synthesis, as diffusers
// combines `noise_pred_uncond` and `noise_pred_text` (with its `rescale_noise_cfg` for `guidance_rescale`).
import { tf } from '../runtime/backend.ts';

/**
 * uncond + scale·(text − uncond). With `rescale` φ > 0, the result's standard deviation (per sample) is pulled back
 * towards the text prediction's, by the fraction φ: Lin et al. 2023 (§3.4), for zero-terminal-SNR models whose
 * images over-expose at high guidance. The ratio of two standard deviations does not depend on their normalisation,
 * so this equals diffusers' unbiased torch.std.
 */
export function guidedPrediction(uncond: tf.Tensor4D, text: tf.Tensor4D, scale: number, rescale = 0): tf.Tensor4D {
  if (!(rescale >= 0 && rescale <= 1)) throw new Error(`guidance rescale must be in [0, 1], got ${rescale}`);
  return tf.tidy(() => {
    const guided = tf.add(uncond, tf.mul(tf.sub(text, uncond), scale)) as tf.Tensor4D;
    if (rescale === 0) return guided;
    const spread = (x: tf.Tensor4D) => tf.sqrt(tf.moments(x, [1, 2, 3], true).variance);
    const matched = tf.mul(guided, tf.div(spread(text), spread(guided)));
    return tf.add(tf.mul(matched, rescale), tf.mul(guided, 1 - rescale)) as tf.Tensor4D;
  });
}
