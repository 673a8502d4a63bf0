import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { groundedTokens, LearnAbortedError, type AttentionMass, type LearnEvent } from '../../../trainer/learn/events.ts';
import { learn } from '../../../trainer/learn/learn.ts';
import { combineOverrides } from '../../../trainer/learn/options.ts';
import { setupRuntime } from '../../helpers.ts';
import { fixtureModel, TINY_RUN, TWO_OBJECTS } from './support.ts';

before(setupRuntime);
const root = mkdtempSync(join(tmpdir(), 'mifo-events-'));
after(() => rmSync(root, { recursive: true, force: true }));

const request = (name: string) => ({ model: fixtureModel('tiny-sd2'), image: TWO_OBJECTS.image, masks: TWO_OBJECTS.masks, outDir: join(root, name), preset: 'fast' as const });

describe('progress events', () => {
  test('start, phases, every step with its loss terms, lr and ETA, maps every M steps, previews, done', async () => {
    const events: LearnEvent[] = [];
    const options = combineOverrides(TINY_RUN, { attentionMapEvery: 2, previewEvery: 3, previewSteps: 2, checkpointEvery: 2 });
    for await (const event of learn({ ...request('events'), options }) as AsyncIterable<LearnEvent>) events.push(event);
    const types = events.map((e) => e.type);
    assert.deepEqual(types.slice(0, 3), ['start', 'attention', 'phase']);
    assert.equal(types.at(-1), 'done');

    const steps = events.filter((e) => e.type === 'step');
    assert.deepEqual(steps.map((s) => [s.phase, s.step]), [[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [2, 3]]);
    assert.deepEqual(steps.map((s) => s.globalStep), [1, 2, 3, 4, 5, 6, 7]);
    for (const s of steps) {
      assert.ok(Number.isFinite(s.loss) && s.loss > 0 && s.terms.reconstruction > 0 && s.terms.prior === 0);
      assert.ok(s.etaMs >= 0 && s.elapsedMs >= 0 && s.totalSteps === 7 && s.prompt.startsWith('a photo of <asset'));
      // t_s = 1000 in this run, so the term applies at every step: reward for 2 steps, then penalty
      assert.equal(s.attentionTerm, s.phase === 1 ? (s.step <= 2 ? 'reward' : 'penalty') : 'penalty');
      assert.ok(s.terms.attention > 0);
    }
    // warm-up 5 steps from 0 in phase 1, constant in phase 2
    assert.deepEqual(steps.slice(0, 2).map((s) => s.lr), [0, 5e-3 / 5]);
    assert.ok(steps.slice(4).every((s) => s.lr === 1e-3));

    const maps = events.filter((e) => e.type === 'attention');
    assert.deepEqual(maps.map((m) => [m.phase, m.step]), [[1, 0], [1, 2], [2, 2], [2, 3]]);
    for (const m of maps) assert.deepEqual(m.maps.map((t) => [t.token, t.map.width, t.map.height]), [['<asset0>', 16, 16], ['<asset1>', 16, 16]]);

    const previews = events.filter((e) => e.type === 'preview');
    assert.deepEqual(previews.map((p) => [p.phase, p.step, p.image.width, p.image.height]), [[1, 3], [2, 3]].map(([phase, step]) => [phase, step, 32, 32]));
    assert.deepEqual(events.filter((e) => e.type === 'checkpoint').map((c) => [c.phase, c.step]), [[1, 2], [2, 0], [2, 2]]);
  });

  test('an aborted signal stops before the next step and leaves a checkpoint', async () => {
    const controller = new AbortController();
    controller.abort();
    const events: LearnEvent[] = [];
    const run = learn({ ...request('aborted'), options: TINY_RUN, signal: controller.signal });
    await assert.rejects(
      (async () => {
        for await (const event of run as AsyncIterable<LearnEvent>) events.push(event);
      })(),
      (error: unknown) => error instanceof LearnAbortedError && error.name === 'AbortError' && error.phase === 1 && error.step === 0,
    );
    assert.ok(!events.some((e) => e.type === 'step'));
    assert.ok(existsSync(join(root, 'aborted', 'checkpoints', 'checkpoint.json')));
  });
});

describe('grounded tokens', () => {
  const mass = (token: number, perMask: number[]): AttentionMass => ({ token: `<asset${token}>`, own: perMask[token]!, perMask });

  test('a token is grounded when its own share grew and ends above its share in every other mask', () => {
    const before = [mass(0, [0.1, 0.1, 0.1]), mass(1, [0.1, 0.1, 0.1]), mass(2, [0.1, 0.1, 0.1])];
    const after = [
      mass(0, [0.2, 0.15, 0.05]), // grew, above both others
      mass(1, [0.25, 0.2, 0.05]), // grew, but below instance 0
      mass(2, [0.05, 0.05, 0.1]), // above the others, but did not grow
    ];
    assert.deepEqual(groundedTokens(before, after), [true, false, false]);
  });

  test('ties do not count; the lists must hold the same tokens', () => {
    assert.deepEqual(groundedTokens([mass(0, [0.1, 0.1])], [mass(0, [0.2, 0.2])]), [false]);
    assert.throws(() => groundedTokens([mass(0, [0.1, 0.1])], []), /before has 1 tokens, after 0/);
  });
});
