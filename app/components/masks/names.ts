// Instance names become tokens (<name>), so they are single words: letters, digits, '_' and '-'.
export const INSTANCE_NAME_PATTERN = /^[\p{L}\p{N}_-]+$/u;

export function instanceNameProblem(name: string, others: readonly string[]): string | null {
  const trimmed = name.trim();
  if (!trimmed) return 'An instance needs a name: it becomes its token.';
  if (trimmed.length > 64) return 'Keep the name under 64 characters.';
  if (!INSTANCE_NAME_PATTERN.test(trimmed)) return 'One word only: letters, digits, _ and - (no spaces).';
  if (others.includes(trimmed)) return `Another instance is already named '${trimmed}'.`;
  return null;
}

/** A free name from a wish (a file name, a word): invalid characters become '-', clashes get a number. */
export function freeInstanceName(wish: string, taken: readonly string[]): string {
  const base =
    wish
      .replace(/\.[^.]+$/, '')
      .replace(/[^\p{L}\p{N}_-]+/gu, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 56) || 'object';
  if (!taken.includes(base) && !/^object$/.test(base)) return base;
  for (let k = /^object$/.test(base) ? 1 : 2; ; k++) {
    const candidate = `${base}${/^object$/.test(base) ? '' : '-'}${k}`;
    if (!taken.includes(candidate)) return candidate;
  }
}
