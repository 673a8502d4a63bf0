// Which box belongs to which token of a compose prompt. Boxes follow their tokens while the prompt is edited: the
// k-th <circle> keeps the box the k-th <circle> had, wherever it moves in the prompt.

export type Box = [number, number, number, number];

/** The learned-token words of a prompt, in order (a token may appear more than once). */
export function promptTokens(prompt: string): string[] {
  return [...prompt.matchAll(/<[^<>\s]+>/g)].map((m) => m[0]);
}

/** One box per token of `tokens`: its earlier box where the same occurrence of the same token had one, else `fallback[i]`. */
export function carryBoxes(previousTokens: readonly string[], previousBoxes: readonly Box[], tokens: readonly string[], fallback: readonly Box[]): Box[] {
  const occurrence = (list: readonly string[], index: number) => list.slice(0, index).filter((token) => token === list[index]).length;
  const earlier = new Map<string, Box>();
  previousTokens.forEach((token, i) => {
    const box = previousBoxes[i];
    if (box) earlier.set(`${token}#${occurrence(previousTokens, i)}`, box);
  });
  return tokens.map((token, i) => earlier.get(`${token}#${occurrence(tokens, i)}`) ?? fallback[i]!);
}
