// Summaries of the benchmarks' timings.

/** The value below which a fraction `p` of `values` lies (nearest rank). */
export function percentile(values: readonly number[], p: number): number {
  const value = [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))];
  if (value === undefined) throw new Error('a percentile of no values');
  return value;
}

export const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);
