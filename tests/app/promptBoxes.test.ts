import assert from 'node:assert/strict';
import { test } from 'node:test';
import { carryBoxes, promptTokens, type Box } from '../../app/lib/promptBoxes.ts';

const left: Box = [0.05, 0.3, 0.45, 0.9];
const right: Box = [0.55, 0.3, 0.95, 0.9];
const fallback = (count: number): Box[] => Array.from({ length: count }, (_, i) => [i / 10, 0, i / 10 + 0.1, 0.1]);

test('boxes follow their tokens when the prompt is edited', () => {
  const before = promptTokens('a photo of <circle> and <heart> on snow');
  assert.deepEqual(before, ['<circle>', '<heart>']);
  // <circle> deleted: <heart> keeps its own box, not the circle's
  assert.deepEqual(carryBoxes(before, [left, right], promptTokens('a photo of <heart> on snow'), fallback(1)), [right]);
  // a token inserted in front takes a fresh box; the others keep theirs
  assert.deepEqual(carryBoxes(before, [left, right], promptTokens('<star>, <circle> and <heart>'), fallback(3)), [fallback(3)[0], left, right]);
  // swapped: each box goes with its token
  assert.deepEqual(carryBoxes(before, [left, right], promptTokens('<heart> beside <circle>'), fallback(2)), [right, left]);
  // repeats are told apart by occurrence
  const twice = promptTokens('<circle> and <circle>');
  assert.deepEqual(carryBoxes(twice, [left, right], promptTokens('<circle>, <heart> and <circle>'), fallback(3)), [left, fallback(3)[1], right]);
});
