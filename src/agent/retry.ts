// Retrying what the kernel refused. A refused operation fails alone (the others of its batch
// apply), and the sync after it reads the kernel afresh and plans it again; this decides how soon
// that sync comes: soon after a first refusal (ENOMEM passes, a module finishes loading), then
// ever later, doubling up to a ceiling, with jitter so that the nodes of a cluster hit by the same
// refusal do not retry in step. Past the ceiling the periodic full sync keeps trying.
import { describeKernelOperation, type OperationFailure } from '../kernel/netlink-kernel.js';

export interface RetryPolicy {
  /** Delay after a first refusal. */
  readonly initialMs: number;
  /** The longest delay (the sync period: the periodic sync retries anyway). */
  readonly maxMs: number;
  /** Fraction of each delay taken off at random: 0.5 waits between half and all of it. */
  readonly jitter: number;
}

export interface RetryDecision {
  /** When to sync again; undefined when nothing failed. */
  readonly delayMs: number | undefined;
  /** The refused operations being retried, and how many times each has been refused in a row. */
  readonly retrying: ReadonlyMap<string, number>;
}

export class RetryBackoff {
  /** Refusals in a row, by the operation's description (it names the object and the action). */
  private attempts = new Map<string, number>();

  constructor(
    private readonly policy: RetryPolicy,
    private readonly dummyInterface: string,
    private readonly random: () => number = Math.random,
  ) {}

  /**
   * After a sync: its refused operations (an operation that is no longer refused, or no longer
   * planned, starts from the first delay again next time).
   */
  record(failures: readonly OperationFailure[]): RetryDecision {
    const next = new Map<string, number>();
    for (const failure of failures) {
      const key = describeKernelOperation(failure.operation, this.dummyInterface);
      next.set(key, (this.attempts.get(key) ?? 0) + 1);
    }
    this.attempts = next;
    if (next.size === 0) return { delayMs: undefined, retrying: next };
    // The operation refused fewest times sets the pace: it is the likeliest to pass.
    const fewest = Math.min(...next.values());
    return { delayMs: this.delay(fewest), retrying: next };
  }

  /** initialMs × 2^(attempt-1), at most maxMs, less up to `jitter` of it. */
  delay(attempt: number): number {
    const { initialMs, maxMs, jitter } = this.policy;
    const full = Math.min(maxMs, initialMs * 2 ** Math.min(attempt - 1, 30));
    return Math.round(full * (1 - jitter * this.random()));
  }
}
