import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AlphaClock, alphaAt, REFERENCE_ALPHA } from '../../../trainer/synth/alpha.ts';

// spec §2.4: values of Eq. 11 for τ = 0..15 with α_max 0.4, α_stage1_end 0.1, α_final 0.01, T1 = 3, N = 15
const SPEC_TABLE = [0.55, 0.4, 0.25, 0.1, 0.0985, 0.094, 0.0868, 0.0775, 0.0666, 0.055, 0.0434, 0.0325, 0.0232, 0.016, 0.0115, 0.01];

test('α(τ) reproduces the spec table (4 decimals) and stays at α_final after N', () => {
  SPEC_TABLE.forEach((value, tau) => {
    assert.ok(Math.abs(alphaAt(tau, REFERENCE_ALPHA) - value) < 5e-5, `τ=${tau}: ${alphaAt(tau)} vs ${value}`);
  });
  for (const tau of [16, 20, 49]) assert.equal(alphaAt(tau), 0.01);
});

test('reference indexing: τ = ⌊calls/10⌋ over CA then SA evaluations', () => {
  const clock = new AlphaClock('decay', 'reference');
  const seen: number[] = [];
  // three full steps of 5 iterations (two terms each), then a step that stops after 2 iterations, then one more
  for (const [step, iterations] of [[0, 5], [1, 5], [2, 5], [3, 2], [4, 5]] as const) {
    for (let i = 0; i < iterations; i++) seen.push(clock.next(step), clock.next(step));
  }
  const tauOf = (value: number) => SPEC_TABLE.findIndex((v) => Math.abs(v - value) < 5e-5);
  const taus = seen.map(tauOf);
  assert.deepEqual(taus.slice(0, 30), [...Array(10).fill(0), ...Array(10).fill(1), ...Array(10).fill(2)]);
  // after early stopping the counter drifts from the step index: step 3's 4 calls and step 4's first 6 share τ=3
  assert.deepEqual(taus.slice(30), [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4]);
});

test('step indexing: τ = step + 1, so guidance starts at α_max and reaches α_final at step N−1', () => {
  const clock = new AlphaClock('decay', 'step');
  assert.equal(clock.next(0), 0.4);
  assert.equal(clock.next(0), 0.4);
  assert.ok(Math.abs(clock.next(1) - 0.25) < 1e-12);
  assert.ok(Math.abs(clock.next(2) - 0.1) < 1e-12);
  assert.equal(clock.next(14), 0.01);
});

test('constant and zero schedules', () => {
  assert.equal(new AlphaClock('constant', 'reference').next(7), 0.4);
  assert.equal(new AlphaClock('zero', 'step').next(0), 0);
});

test('invalid α parameters are refused', () => {
  assert.throws(() => new AlphaClock('decay', 'step', { ...REFERENCE_ALPHA, stage1Steps: 1 }), /stage-1 steps/);
  assert.throws(() => new AlphaClock('decay', 'step', { ...REFERENCE_ALPHA, decayEnd: 3 }), /decay end/);
  assert.throws(() => new AlphaClock('decay', 'step', { ...REFERENCE_ALPHA, max: -1 }), /finite and ≥ 0/);
});
