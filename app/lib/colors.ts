// Overlay colours of instances, in the order new instances take them (scripts/make-samples.ts uses the same list).
export const INSTANCE_COLORS = ['#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#42d4f4', '#f032e6', '#9a6324', '#469990', '#808000'] as const;

/** The first palette colour no instance uses yet (cycling once all are taken). */
export function nextInstanceColor(used: readonly (string | null)[]): string {
  const free = INSTANCE_COLORS.find((color) => !used.includes(color));
  return free ?? INSTANCE_COLORS[used.length % INSTANCE_COLORS.length]!;
}

export function hexToRgb(hex: string): [number, number, number] {
  const value = Number.parseInt(hex.replace('#', ''), 16);
  return [(value >> 16) & 255, (value >> 8) & 255, value & 255];
}

/** Tokens without an instance colour (imported from packs) get free palette colours, so chips and boxes differ. */
export function withTokenColors<T extends { color: string | null }>(tokens: readonly T[]): T[] {
  const used = tokens.map((token) => token.color).filter((color): color is string => color !== null);
  return tokens.map((token) => {
    if (token.color) return token;
    const color = nextInstanceColor(used);
    used.push(color);
    return { ...token, color };
  });
}
