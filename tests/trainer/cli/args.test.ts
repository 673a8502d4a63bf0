import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { batchPngPath, CliError, parseChoiceList, parseIntegerList, requirePngOut } from '../../../trainer/cli/args.ts';

describe('command-line lists of choices', () => {
  const choices = ['off', 'role', 'model'] as const;

  test('an absent option is undefined; a list keeps its order and loses the spaces around items', () => {
    assert.equal(parseChoiceList(undefined, 'variants', choices), undefined);
    assert.deepEqual(parseChoiceList('model, off', 'variants', choices), ['model', 'off']);
    assert.deepEqual(parseChoiceList('role', 'variants', choices), ['role']);
  });

  test('unknown, empty and repeated items are errors that name the option and the choices', () => {
    assert.throws(() => parseChoiceList('off,rol', 'variants', choices), (e: unknown) => e instanceof CliError && e.message === "--variants takes some of off, role, model, got 'rol'");
    assert.throws(() => parseChoiceList('', 'variants', choices), /--variants takes some of off, role, model, got ''/);
    assert.throws(() => parseChoiceList('off,,role', 'variants', choices), /got ''/);
    assert.throws(() => parseChoiceList('role,off,role', 'variants', choices), /--variants names 'role' more than once/);
  });
});

describe('command-line lists of integers', () => {
  test('numbers and inclusive ranges, in the given order', () => {
    assert.deepEqual(parseIntegerList('1,4,5', 'seeds'), [1, 4, 5]);
    assert.deepEqual(parseIntegerList('0-3', 'seeds'), [0, 1, 2, 3]);
    assert.deepEqual(parseIntegerList('10, 2-4 ,7-7', 'seeds'), [10, 2, 3, 4, 7]);
  });

  test('negative, fractional, empty, reversed and repeated items are errors that name the option', () => {
    assert.throws(() => parseIntegerList('1,-2', 'seeds'), (e: unknown) => e instanceof CliError && e.message === "--seeds takes integers ≥ 0 and ranges like 0-9, comma-separated, got '-2'");
    assert.throws(() => parseIntegerList('1.5', 'seeds'), /got '1.5'/);
    assert.throws(() => parseIntegerList('1,,2', 'seeds'), /got ''/);
    assert.throws(() => parseIntegerList('x', 'seeds'), /got 'x'/);
    assert.throws(() => parseIntegerList('5-2', 'seeds'), /--seeds: the range '5-2' ends before it starts/);
    assert.throws(() => parseIntegerList('0-4,3,9,9', 'seeds'), /--seeds names 3, 9 more than once/);
  });
});

describe('image outputs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mifo-cli-args-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('--out must be a .png in a folder that exists', () => {
    assert.equal(requirePngOut(join(dir, 'scene.PNG')), join(dir, 'scene.PNG'));
    assert.throws(() => requirePngOut(undefined), /--out is required/);
    assert.throws(() => requirePngOut(join(dir, 'scene.jpg')), (e: unknown) => e instanceof CliError && e.message === `--out must name a .png file, got ${join(dir, 'scene.jpg')}`);
    assert.throws(() => requirePngOut(join(dir, 'missing', 'scene.png')), /the folder of --out does not exist: .*missing$/);
  });

  test('one image keeps the name; a batch numbers its images; a suffix goes before the number', () => {
    assert.equal(batchPngPath('/o/scene.png', 1, 0), '/o/scene.png');
    assert.deepEqual([0, 1, 2].map((i) => batchPngPath('/o/scene.png', 3, i)), ['/o/scene-0.png', '/o/scene-1.png', '/o/scene-2.png']);
    assert.equal(batchPngPath('/o/scene.PNG', 1, 0, '-step010'), '/o/scene-step010.png');
    assert.equal(batchPngPath('/o/scene.png', 2, 1, '-step010'), '/o/scene-step010-1.png');
  });
});
