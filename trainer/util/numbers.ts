// Predicates shared by every validator of options, recipes and command lines (values may come from JSON).

export const isPositiveInteger = (n: unknown): n is number => Number.isInteger(n) && (n as number) > 0;
export const isNonNegativeInteger = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 0;
