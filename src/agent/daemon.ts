// The agent as a long-running process: a change in the cluster asks for a sync; the runner
// batches bursts (--ipvs-min-sync-period) and forces a sync at least every --ipvs-sync-period,
// which also reads the whole kernel back and rewrites the iptables rules, repairing drift.
// Health, metrics and health-check node ports watch the syncs through SyncObserver.
import type { Logger } from 'pino';
import type { Proxier, SyncResult } from './proxier.js';
import { SyncRunner } from './runner.js';
import type { ClusterStore } from '../sources/cluster-store.js';
import type { DesiredState } from '../model/desired.js';

/** Told about the agent's work; every method is optional and must not throw. */
export interface SyncObserver {
  /** A change arrived and a sync is due. */
  changeQueued?(at: number): void;
  synced?(result: SyncResult, cluster: ClusterStore): void;
  syncFailed?(error: unknown, sync: { readonly full: boolean; readonly durationMs: number }): void;
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
}

export interface Daemon {
  /** Stops scheduling; resolves once a sync under way has finished. */
  stop(): Promise<void>;
}

export function startDaemon(options: DaemonOptions): Daemon {
  const { proxier, cluster, log, syncPeriodMs, applyRules, observers = [] } = options;
  let rulesAppliedAt = -Infinity;
  let fullSyncAt = -Infinity;
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
    sync: async () => {
      const full = performance.now() - fullSyncAt >= syncPeriodMs;
      const started = performance.now();
      let result: SyncResult;
      try {
        result = await proxier.sync({ full });
      } catch (error) {
        notify((observer) => observer.syncFailed?.(error, { full, durationMs: performance.now() - started }));
        throw error;
      }
      if (full) fullSyncAt = performance.now();
      notify((observer) => observer.synced?.(result, cluster));
      // Written at start and once a sync period, to repair drift; in between only when the
      // Services changed KUBE-IPVS-OUT-FILTER (the one chain that depends on them).
      if (performance.now() - rulesAppliedAt >= syncPeriodMs) {
        await applyRules(result.desired);
        rulesAppliedAt = performance.now();
      } else {
        await applyRules(result.desired, { onlyIfChanged: true });
      }
    },
    onError: (error) => log.error({ err: error instanceof Error ? error.message : String(error) }, 'sync failed'),
  });
  cluster.onChange(() => {
    notify((observer) => observer.changeQueued?.(Date.now()));
    runner.request();
  });
  runner.start();
  return { stop: () => runner.stop() };
}
