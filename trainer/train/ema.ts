// Exponential moving average of trained weights (diffusers' EMAModel without power warm-up): after optimizer step
// n (1-based), ema ← d·ema + (1 − d)·param with d = min(maxDecay, (1 + n) / (10 + n)), so early averages follow the
// weights closely. The exported model uses the averaged weights.
import { tf } from '../runtime/backend.ts';
import type { NamedParameter } from './checkpoint.ts';

export class ExponentialMovingAverage {
  private readonly shadows = new Map<string, tf.Tensor>();
  private count = 0;

  constructor(
    private readonly parameters: NamedParameter[],
    readonly maxDecay: number,
  ) {
    if (!(maxDecay >= 0 && maxDecay < 1)) throw new Error(`EMA decay must be in [0, 1), got ${maxDecay}`);
    for (const { name, variable } of parameters) this.shadows.set(name, tf.keep(variable.clone()));
  }

  get steps(): number {
    return this.count;
  }

  decayAt(step: number): number {
    return Math.min(this.maxDecay, (1 + step) / (10 + step));
  }

  update(): void {
    this.count++;
    const decay = this.decayAt(this.count);
    for (const { name, variable } of this.parameters) {
      const shadow = this.shadows.get(name)!;
      const next = tf.tidy(() => tf.add(tf.mul(shadow, decay), tf.mul(variable, 1 - decay)));
      shadow.dispose();
      this.shadows.set(name, tf.keep(next));
    }
  }

  entries(): [string, tf.Tensor][] {
    return [...this.shadows.entries()];
  }

  restore(steps: number, read: (name: string, like: tf.Tensor) => Float32Array): void {
    for (const [name, shadow] of this.shadows) {
      const values = read(name, shadow);
      this.shadows.set(name, tf.keep(tf.tensor(values, shadow.shape)));
      shadow.dispose();
    }
    this.count = steps;
  }

  /** Runs `fn` with the averaged weights in the parameters, then puts the trained weights back. */
  async withAveragedWeights<T>(fn: () => Promise<T> | T): Promise<T> {
    const trained = this.parameters.map(({ variable }) => tf.keep(variable.clone()));
    for (const { name, variable } of this.parameters) variable.assign(this.shadows.get(name)!);
    try {
      return await fn();
    } finally {
      this.parameters.forEach(({ variable }, i) => variable.assign(trained[i]!));
      tf.dispose(trained);
    }
  }

  dispose(): void {
    for (const shadow of this.shadows.values()) shadow.dispose();
    this.shadows.clear();
  }
}
