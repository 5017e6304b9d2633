// The agent as a long-running process: a change in the cluster asks for a sync; the runner
// batches bursts (--ipvs-min-sync-period) and forces a sync at least every --ipvs-sync-period,
// which also reads the whole kernel back and rewrites the iptables rules, repairing drift.
// Health, metrics and health-check node ports watch the syncs through SyncObserver.
import type { Logger } from 'pino';
import type { Proxier, SyncResult } from './proxier.js';
import { SyncRunner } from './runner.js';
import type { RetryBackoff } from './retry.js';
import type { ClusterStore } from '../sources/cluster-store.js';
import type { DesiredState } from '../model/desired.js';

/** Told about the agent's work; every method is optional and must not throw. */
export interface SyncObserver {
  /** A change arrived and a sync is due. */
  changeQueued?(at: number): void;
  synced?(result: SyncResult, cluster: ClusterStore): void;
  syncFailed?(error: unknown, sync: { readonly full: boolean; readonly durationMs: number }): void;
  /** Operations the kernel refused are tried again in `delayMs` (retry.ts). */
  retryScheduled?(operations: number, delayMs: number): void;
}

export interface DaemonOptions {
  readonly proxier: Proxier;
  readonly cluster: ClusterStore;
  readonly log: Logger;
  readonly syncPeriodMs: number;
  readonly minSyncPeriodMs: number;
  /** Writes the (constant) iptables rules; run after the first sync, which creates their ipsets. */
  /** Writes the iptables rules; with onlyIfChanged, only when the Services changed them (KUBE-IPVS-OUT-FILTER). */
  readonly applyRules: (desired: DesiredState, options?: { readonly onlyIfChanged?: boolean }) => Promise<void>;
  readonly observers?: readonly SyncObserver[];
  /** When to sync again after the kernel refused an operation; without it, at the next sync. */
  readonly retry?: RetryBackoff;
  /** Looks at the source again before each full sync, so a lost change event costs one period at most. */
  readonly checkSource?: () => void;
  /** The node's facts (labels, addresses): a change asks for a sync, which translates every Service again. */
  readonly nodeFacts?: { onChange(listener: () => void): void };
}

export interface Daemon {
  /** Stops scheduling; resolves once a sync under way has finished. */
  stop(): Promise<void>;
}

export function startDaemon(options: DaemonOptions): Daemon {
  const { proxier, cluster, log, syncPeriodMs, applyRules, observers = [], retry, checkSource } = options;
  let retryTimer: NodeJS.Timeout | undefined;
  let rulesDue = true;
  const notify = (call: (observer: SyncObserver) => void): void => {
    for (const observer of observers) {
      try {
        call(observer);
      } catch (error) {
        log.error({ err: (error as Error).message }, 'observer failed');
      }
    }
  };
  const runner = new SyncRunner({
    minIntervalMs: options.minSyncPeriodMs,
    maxIntervalMs: syncPeriodMs,
    // The full sync's read of the kernel runs beside the syncs of changes (proxier.ts).
    prepareFull: () => proxier.prepareFullSync(),
    sync: async ({ full }) => {
      // Synchronous: what it finds is in the store, and so in this very sync.
      if (full) checkSource?.();
      const started = performance.now();
      let result: SyncResult;
      try {
        result = await proxier.sync({ full });
      } catch (error) {
        notify((observer) => observer.syncFailed?.(error, { full, durationMs: performance.now() - started }));
        throw error;
      }
      notify((observer) => observer.synced?.(result, cluster));
      clearTimeout(retryTimer);
      const { delayMs, retrying } = retry?.record(result.failures) ?? { delayMs: undefined, retrying: new Map() };
      if (delayMs !== undefined) {
        retryTimer = setTimeout(() => {
          runner.request();
        }, delayMs);
        notify((observer) => observer.retryScheduled?.(retrying.size, delayMs));
      }
      // Written at every full sync, to repair drift (after one that failed, at every sync until
      // written); in between only when the Services changed KUBE-IPVS-OUT-FILTER (the one chain
      // that depends on them).
      rulesDue ||= full;
      if (rulesDue) {
        await applyRules(result.desired);
        rulesDue = false;
      } else {
        await applyRules(result.desired, { onlyIfChanged: true });
      }
    },
    onError: (error) => log.error({ err: error instanceof Error ? error.message : String(error) }, 'sync failed'),
  });
  const changed = (): void => {
    notify((observer) => observer.changeQueued?.(Date.now()));
    runner.request();
  };
  cluster.onChange(changed);
  options.nodeFacts?.onChange(changed);
  runner.start();
  return {
    stop: () => {
      clearTimeout(retryTimer);
      return runner.stop();
    },
  };
}
