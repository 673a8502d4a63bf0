import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { instancePrompt, sampleExample } from '../../../trainer/learn/sampling.ts';
import { placeholderTokens } from '../../../trainer/learn/tokens.ts';
import { Generator } from '../../../trainer/util/random.ts';

describe('joint sampling', () => {
  const tokens = placeholderTokens(3);
  const draws = (() => {
    const generator = new Generator(1);
    return Array.from({ length: 3000 }, () => sampleExample(generator, tokens, 'joint'));
  })();

  test('every one of the 2^N − 1 subsets occurs, in both orders', () => {
    const subsets = new Set(draws.map((d) => [...d.instances].sort().join(',')));
    assert.equal(subsets.size, 7);
    const ordered = new Set(draws.map((d) => d.instances.join(',')));
    for (const pair of ['0,1', '1,0', '0,2', '2,0', '1,2', '2,1']) assert.ok(ordered.has(pair), `order ${pair} never drawn`);
    assert.ok(draws.every((d) => new Set(d.instances).size === d.instances.length), 'an instance was drawn twice');
  });

  test('subset sizes are uniform over 1..N', () => {
    for (const size of [1, 2, 3]) {
      const share = draws.filter((d) => d.instances.length === size).length / draws.length;
      assert.ok(Math.abs(share - 1 / 3) < 0.04, `size ${size} drawn ${share}`);
    }
  });

  test('image and masks are flipped about half of the time', () => {
    const flips = draws.filter((d) => d.flip).length / draws.length;
    assert.ok(flips > 0.46 && flips < 0.54, `flip rate ${flips}`);
  });

  test('the prompt names the instances in mask order of the draw', () => {
    for (const d of draws.slice(0, 50)) {
      const named = [...d.prompt.matchAll(/<asset(\d)>/g)].map((m) => Number(m[1]));
      assert.deepEqual(named, d.instances);
      assert.ok(d.prompt.startsWith('a photo of '));
    }
    assert.equal(instancePrompt(tokens, [2, 0]), 'a photo of <asset2> and <asset0>');
  });

  test('separate sampling shows one instance; the draw is reproducible from the generator state', () => {
    const generator = new Generator(5);
    assert.ok(Array.from({ length: 200 }, () => sampleExample(generator, tokens, 'separate')).every((d) => d.instances.length === 1));
    const state = generator.getState();
    const a = sampleExample(generator, tokens, 'joint');
    generator.setState(state);
    assert.deepEqual(sampleExample(generator, tokens, 'joint'), a);
  });
});
