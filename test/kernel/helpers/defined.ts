// Narrowing for kernel tests: where a test goes on to use a value it expects to be there (a map
// entry, an array element, a regular expression's group, a line of a tool's output), this checks it
// is, instead of a `!` that only tells the compiler so and fails later, if at all, far from the cause.

/** The value, if it is neither undefined nor null; otherwise throws "expected <what>, got undefined". */
export function defined<T>(value: T | null | undefined, what: string): T {
  if (value === undefined || value === null) throw new Error(`expected ${what}, got ${String(value)}`);
  return value;
}
