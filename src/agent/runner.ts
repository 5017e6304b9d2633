// When to sync: soon after a change, but not more often than the minimum period (a burst of
// changes becomes one sync), and a full sync (the kernel read back, repairing drift) every sync
// period, counted from the start of the last full sync. kube-proxy's BoundedFrequencyRunner,
// without the burst tokens. A full sync's read of the kernel (prepareFull) runs beside the other
// syncs: a change that arrives meanwhile is synced as soon as it would be otherwise, and the full
// sync itself runs once the read is done.
export interface SyncRunnerOptions {
  readonly minIntervalMs: number;
  readonly maxIntervalMs: number;
  /** `full`: the periodic sync, due maxIntervalMs after the last full one started. */
  readonly sync: (run: { readonly full: boolean }) => Promise<unknown>;
  /** The slow part of a full sync, run before it and beside other syncs; it must not reject. */
  readonly prepareFull?: () => Promise<void>;
  readonly onError: (error: unknown) => void;
}

export class SyncRunner {
  private timer: NodeJS.Timeout | undefined;
  /** When the scheduled timer fires (performance.now() time). */
  private dueAt = Infinity;
  /** The scheduled timer is the periodic one. */
  private periodicTimer = false;
  private running = false;
  private pending = false;
  private lastStart = -Infinity;
  private lastFullStart = -Infinity;
  private stopped = false;
  private inFlight: Promise<void> = Promise.resolve();
  /** A full sync's read is under way (prepareFull), or done: then the full sync is due. */
  private preparation: { readonly done: Promise<void>; finished: boolean } | undefined;

  constructor(private readonly options: SyncRunnerOptions) {}

  /** Asks for a sync; it runs after the minimum interval since the last one. */
  request(): void {
    if (this.stopped) return;
    if (this.running) {
      this.pending = true;
      return;
    }
    const at = Math.max(performance.now(), this.lastStart + this.options.minIntervalMs);
    // Already due by then: a stream of changes must not keep postponing the sync.
    if (this.timer !== undefined && this.dueAt <= at) return;
    this.schedule(at - performance.now(), false);
  }

  start(): void {
    this.schedule(0, true);
  }

  /** Stops scheduling; resolves once a sync that is running has finished. */
  stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    return Promise.all([this.inFlight, this.preparation?.done]).then(() => undefined);
  }

  private schedule(delayMs: number, periodic: boolean): void {
    clearTimeout(this.timer);
    this.dueAt = performance.now() + delayMs;
    this.periodicTimer = periodic;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.inFlight = this.run(this.periodicTimer);
    }, delayMs);
  }

  /**
   * The periodic sync, a sync period after the last full one started (not after the last sync
   * ended: a fault made just after a full sync read the kernel is then repaired within one period
   * plus one sync), and never sooner than the minimum interval.
   */
  private schedulePeriodic(): void {
    const at = Math.max(this.lastFullStart + this.options.maxIntervalMs, this.lastStart + this.options.minIntervalMs);
    this.schedule(Math.max(0, at - performance.now()), true);
  }

  private async run(periodic: boolean): Promise<void> {
    if (this.stopped) return;
    const now = performance.now();
    // Told by the timer that fired, not by comparing clocks: libuv's timers run on the loop's
    // cached time, which lags performance.now(), so "a period since the last full sync" measured
    // here could come out a millisecond short and turn the periodic sync into a partial one,
    // leaving drift for one more period (issue 11, failure 6).
    let full = periodic || now - this.lastFullStart >= this.options.maxIntervalMs;
    if (full && this.options.prepareFull && !this.preparation?.finished) {
      // The period counts from the start of the read, as it did from the start of the full sync.
      if (!this.preparation) this.prepare(this.options.prepareFull, now);
      // The periodic timer only starts the read; a requested sync runs now, as a partial one.
      if (periodic) return;
      full = false;
    }
    this.running = true;
    this.pending = false;
    this.lastStart = now;
    if (full) {
      if (this.preparation) this.preparation = undefined;
      else this.lastFullStart = now;
    }
    try {
      await this.options.sync({ full });
    } catch (error) {
      this.options.onError(error);
    } finally {
      this.running = false;
    }
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- stop() may have set it during the await
    if (this.stopped) return;
    if (this.preparation?.finished) this.scheduleFull();
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- request() may have set it during the await
    else if (this.pending) this.request();
    else this.schedulePeriodic();
  }

  private prepare(prepareFull: () => Promise<void>, now: number): void {
    this.lastFullStart = now;
    const preparation = {
      finished: false,
      done: prepareFull()
        .catch((error: unknown) => {
          this.options.onError(error);
        })
        .then(() => {
          preparation.finished = true;
          // A sync under way schedules the full one when it ends.
          if (!this.stopped && !this.running) this.scheduleFull();
        }),
    };
    this.preparation = preparation;
  }

  /** The full sync whose read is done: as soon as the minimum interval allows; it takes in pending changes too. */
  private scheduleFull(): void {
    const delayMs = this.lastStart + this.options.minIntervalMs - performance.now();
    if (delayMs > 0) {
      this.schedule(delayMs, true);
      return;
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    this.inFlight = this.run(true);
  }
}
