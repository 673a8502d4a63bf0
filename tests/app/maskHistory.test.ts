import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MaskHistory, type MaskState } from '../../app/components/masks/history.ts';

const width = 13;
const height = 7;

function stateWith(pixels: number[], source: MaskState['source'] = 'brush', points: MaskState['points'] = []): MaskState {
  const data = new Uint8Array(width * height);
  for (const p of pixels) data[p] = 1;
  return { bits: { width, height, data }, points, box: null, source };
}

const lit = (state: MaskState) => [...state.bits.data.keys()].filter((i) => state.bits.data[i]);

test('undo walks back through the edits of an instance and redo forward again, bit for bit', () => {
  const history = new MaskHistory();
  const empty = stateWith([]);
  const click = stateWith([0, 7, 8, 90], 'sam', [{ x: 3, y: 2, positive: true }]);
  const painted = stateWith([0, 7, 8, 9, 10, 90], 'brush');
  history.record('a', empty);
  history.record('a', click);
  assert.ok(history.canUndo('a'));
  assert.ok(!history.canRedo('a'));

  const backToClick = history.undo('a', painted)!;
  assert.deepEqual(lit(backToClick), [0, 7, 8, 90]);
  assert.equal(backToClick.source, 'sam');
  assert.deepEqual(backToClick.points, [{ x: 3, y: 2, positive: true }]);
  const backToEmpty = history.undo('a', backToClick)!;
  assert.deepEqual(lit(backToEmpty), []);
  assert.equal(history.undo('a', backToEmpty), null, 'nothing before the first edit');

  assert.deepEqual(lit(history.redo('a', backToEmpty)!), [0, 7, 8, 90]);
  assert.deepEqual(lit(history.redo('a', backToClick)!), [0, 7, 8, 9, 10, 90]);
  assert.equal(history.redo('a', painted), null);
});

test('a new edit after an undo ends what could be redone; instances keep separate histories', () => {
  const history = new MaskHistory();
  history.record('a', stateWith([1]));
  history.record('b', stateWith([2]));
  const undone = history.undo('a', stateWith([1, 3]))!;
  assert.ok(history.canRedo('a'));
  history.record('a', undone);
  assert.ok(!history.canRedo('a'));
  assert.deepEqual(lit(history.undo('b', stateWith([2, 4]))!), [2]);
  assert.ok(!history.canUndo('c'));
});

test('recorded states are copies: later changes to the edited mask do not reach them', () => {
  const history = new MaskHistory();
  const state = stateWith([5], 'sam', [{ x: 1, y: 1, positive: true }]);
  history.record('a', state);
  state.bits.data[6] = 1;
  state.points[0]!.x = 9;
  const back = history.undo('a', state)!;
  assert.deepEqual(lit(back), [5]);
  assert.equal(back.points[0]!.x, 1);
});

test('over the byte budget the oldest steps go first, across instances, and the newest of each stays', () => {
  const bytesPerState = Math.ceil((width * height) / 8);
  const history = new MaskHistory(bytesPerState * 3);
  history.record('a', stateWith([1]));
  history.record('b', stateWith([2]));
  history.record('a', stateWith([3]));
  history.record('a', stateWith([4]));
  // four states over a budget of three: the oldest, a's first, was dropped
  const current = stateWith([5]);
  assert.deepEqual(lit(history.undo('a', current)!), [4]);
  assert.deepEqual(lit(history.undo('a', current)!), [3]);
  assert.equal(history.undo('a', current), null);
  assert.deepEqual(lit(history.undo('b', current)!), [2]);
});
