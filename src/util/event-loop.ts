// Long work in slices: a sync of an endpoint change must not wait behind a full sync's half
// second of reading and comparing.

/**
 * The longest a full read's work (decoding a dump, reading /proc, comparing) holds the event loop
 * before a sync that is due may run: an endpoint change then waits a slice, not the read.
 */
export const SLICE_MS = 2;

/** Work waiting for its next slice, in the order it yielded. */
const waiting: Array<() => void> = [];
let resuming = false;

/** Resumes one waiting piece of work per turn of the event loop (setImmediate's check phase). */
function resumeOne(): void {
  waiting.shift()?.();
  resuming = waiting.length > 0;
  if (resuming) setImmediate(resumeOne);
}

/**
 * Lets the event loop run what is due (a timer, a socket's data) before long work goes on. Work
 * that yields here resumes one piece per turn: a full read runs several paced loops at once (the
 * /proc read, the decoding of dumps, the comparison), and resumed together their slices added up
 * to a turn of 8-13 ms under UML, which a change's sync waited for.
 */
export const nextTurn = (): Promise<void> =>
  new Promise((resolve) => {
    waiting.push(resolve);
    if (!resuming) {
      resuming = true;
      setImmediate(resumeOne);
    }
  });

/**
 * A pace for a loop of small steps, called after each: once `sliceMs` have passed since the
 * last yield it returns a promise to await, which lets the event loop run, so nothing due waits
 * much longer than a slice; otherwise undefined. The clock is read only every `stepsPerCheck`
 * steps: under User-Mode Linux reading it is a system call, and reading it at each of 100,000
 * steps cost seconds.
 */
export function pacer(sliceMs: number, stepsPerCheck = 256): () => Promise<void> | undefined {
  let sliceStart = performance.now();
  let steps = 0;
  return () => {
    if (++steps < stepsPerCheck) return undefined;
    steps = 0;
    if (performance.now() - sliceStart < sliceMs) return undefined;
    return nextTurn().then(() => {
      sliceStart = performance.now();
    });
  };
}

/** Runs `step` on each item, yielding to the event loop as `pace` says. */
export async function forEachPaced<T>(items: Iterable<T>, pace: () => Promise<void> | undefined, step: (item: T) => void): Promise<void> {
  for (const item of items) {
    step(item);
    const turn = pace();
    if (turn) await turn;
  }
}
