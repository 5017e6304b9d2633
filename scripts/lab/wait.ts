// Waiting on conditions, never on fixed sleeps: on a busy machine (two cores shared with other
// work, a UML kernel on top) everything takes longer, and a wait that polls its condition up to a
// generous deadline costs nothing on a quiet one.

/** Tens of seconds: long enough for a starved machine, short enough that a real fault still ends the run. */
export const GENEROUS_MS = 120_000;

export class WaitTimeout extends Error {
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
  ) {
    super(`${what}: not within ${String(Math.round(timeoutMs / 1000))} s`);
    this.name = 'WaitTimeout';
  }
}

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => {
    setTimeout(resolve, ms);
  });

/** Polls `condition` until it holds; returns how long that took (ms). Throws WaitTimeout at the deadline. */
export async function waitUntil(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = GENEROUS_MS, intervalMs = 100): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await condition()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new WaitTimeout(what, timeoutMs);
    await sleep(intervalMs);
  }
}
