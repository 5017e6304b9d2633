// When to sync: soon after a change, but not more often than the minimum period (a burst of
// changes becomes one sync), and at least every sync period (repairing drift). kube-proxy's
// BoundedFrequencyRunner, without the burst tokens. The periodic sync keeps its own rhythm: syncs
// for changes in between do not push it back (else a steady stream of changes would delay it
// to nearly two periods).
export interface SyncRunnerOptions {
  readonly minIntervalMs: number;
  readonly maxIntervalMs: number;
  /** `periodic`: this is the sync due every maxIntervalMs (the first one too). */
  readonly sync: (run: { readonly periodic: boolean }) => Promise<unknown>;
  readonly onError: (error: unknown) => void;
}

export class SyncRunner {
  private timer: NodeJS.Timeout | undefined;
  /** When the scheduled timer fires (performance.now() time). */
  private dueAt = Infinity;
  private running = false;
  private pending = false;
  private lastStart = -Infinity;
  /** When the next periodic sync is due (performance.now() time). */
  private periodicDueAt = -Infinity;
  private stopped = false;
  private inFlight: Promise<void> = Promise.resolve();

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
    this.schedule(at - performance.now());
  }

  start(): void {
    this.schedule(0);
  }

  /** Stops scheduling; resolves once a sync that is running has finished. */
  stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    return this.inFlight;
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.dueAt = performance.now() + delayMs;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.inFlight = this.run();
    }, delayMs);
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    this.running = true;
    this.pending = false;
    this.lastStart = performance.now();
    const periodic = this.lastStart >= this.periodicDueAt;
    if (periodic) this.periodicDueAt = this.lastStart + this.options.maxIntervalMs;
    try {
      await this.options.sync({ periodic });
    } catch (error) {
      this.options.onError(error);
    } finally {
      this.running = false;
    }
    if (this.stopped) return;
    if (this.pending) this.request();
    else this.schedule(Math.max(0, this.periodicDueAt - performance.now()));
  }
}
