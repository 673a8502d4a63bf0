// Typed option parsing over node:util parseArgs, with errors that say which option is wrong.
import { existsSync } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export function parseOptions<T extends OptionSpec>(argv: string[], options: T, help: string): ReturnType<typeof parseArgs<{ options: T; allowPositionals: true }>> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(help);
    process.exit(0);
  }
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new CliError(`${(error as Error).message}\n\n${help}`);
  }
}

export function requireString(value: string | undefined, name: string): string {
  if (value === undefined || value === '') throw new CliError(`--${name} is required`);
  return value;
}

/** The required --out option: an absolute .png path whose folder exists. */
export function requirePngOut(value: string | undefined): string {
  const out = resolve(requireString(value, 'out'));
  if (extname(out).toLowerCase() !== '.png') throw new CliError(`--out must name a .png file, got ${out}`);
  if (!existsSync(dirname(out))) throw new CliError(`the folder of --out does not exist: ${dirname(out)}`);
  return out;
}

/** Where image `index` of `count` goes: `out` itself for one image, else `out-0.png`, `out-1.png`, …; `suffix` comes before the index. */
export function batchPngPath(out: string, count: number, index: number, suffix = ''): string {
  return out.replace(/\.png$/i, `${suffix}${count === 1 ? '' : `-${index}`}.png`);
}

export function parseNumber(value: string | undefined, name: string, fallback: number, check: (n: number) => boolean = Number.isFinite): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || !check(n)) throw new CliError(`--${name} got '${value}', which is not a valid value`);
  return n;
}

/** A number option, or undefined when it is absent (its default is decided later, e.g. by the model). */
export function parseOptionalNumber(value: string | undefined, name: string, check: (n: number) => boolean = Number.isFinite): number | undefined {
  return value === undefined ? undefined : parseNumber(value, name, 0, check);
}

export { isNonNegativeInteger, isPositiveInteger } from '../util/numbers.ts';

/** One of `choices`, or undefined when the option is absent. */
export function parseChoice<T extends string>(value: string | undefined, name: string, choices: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!choices.includes(value as T)) throw new CliError(`--${name} must be one of ${choices.join(', ')}, got '${value}'`);
  return value as T;
}

/** Some of `choices`, comma-separated and each at most once, or undefined when the option is absent. */
export function parseChoiceList<T extends string>(value: string | undefined, name: string, choices: readonly T[]): T[] | undefined {
  if (value === undefined) return undefined;
  const chosen = value.split(',').map((item) => item.trim());
  const unknown = chosen.filter((item) => !choices.includes(item as T));
  if (unknown.length > 0) throw new CliError(`--${name} takes some of ${choices.join(', ')}, got '${unknown.join("', '")}'`);
  const repeated = repeatedItems(chosen);
  if (repeated.length > 0) throw new CliError(`--${name} names '${repeated.join("', '")}' more than once`);
  return chosen as T[];
}

/** Non-negative integers, comma-separated, each a number or an inclusive range `a-b`, none twice; in the given order. */
export function parseIntegerList(value: string, name: string): number[] {
  const integers = value.split(',').flatMap((item) => {
    const range = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(item);
    if (!range) throw new CliError(`--${name} takes integers ≥ 0 and ranges like 0-9, comma-separated, got '${item.trim()}'`);
    const first = Number(range[1]);
    const last = range[2] === undefined ? first : Number(range[2]);
    if (last < first) throw new CliError(`--${name}: the range '${item.trim()}' ends before it starts`);
    return Array.from({ length: last - first + 1 }, (_, i) => first + i);
  });
  const repeated = repeatedItems(integers);
  if (repeated.length > 0) throw new CliError(`--${name} names ${repeated.join(', ')} more than once`);
  return integers;
}

/** The items that occur more than once, each named once, in the order of their second occurrence. */
function repeatedItems<T>(items: readonly T[]): T[] {
  return [...new Set(items.filter((item, i) => items.indexOf(item) !== i))];
}
