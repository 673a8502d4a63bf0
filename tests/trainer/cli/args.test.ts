import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CliError, parseChoiceList } from '../../../trainer/cli/args.ts';

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
