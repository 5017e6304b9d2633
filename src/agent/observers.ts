// What watches the daemon's syncs: kube-proxy's health state, its metrics, and the health-check
// node ports of LoadBalancer Services with externalTrafficPolicy Local. Each keeps its own state
// and follows the Services a sync took in, not the whole cluster.
import type { Logger } from 'pino';
import type { SyncObserver } from './daemon.js';
import type { ProxyHealth } from './health-server.js';
import type { ProxyMetrics } from './metrics.js';
import type { ServiceHealthServer } from './service-health.js';
import type { ClusterStore } from '../sources/cluster-store.js';
import type { NodeFacts } from '../model/settings.js';
import { healthCheckOf, type ServiceHealthCheck } from '../translate/health-check.js';

export function healthObserver(health: ProxyHealth): SyncObserver {
  return {
    changeQueued: (at) => health.queued(at),
    synced: () => health.updated(),
  };
}

export function metricsObserver(metrics: ProxyMetrics, cluster: ClusterStore): SyncObserver {
  let counted = { services: 0, endpointSlices: 0 };
  return {
    changeQueued: (at) => {
      metrics.recordQueued(at);
      const totals = { ...cluster.eventTotals };
      metrics.countChanges({ services: totals.services - counted.services, endpointSlices: totals.endpointSlices - counted.endpointSlices });
      counted = totals;
    },
    synced: (result) => {
      metrics.checkoutChanges();
      metrics.recordSync({ full: result.full, durationSeconds: result.durationMs / 1000, succeeded: true });
      metrics.recordApply(result.plan.operations, result.failures);
      metrics.recordState(result.desired, result.plan.draining.size);
      metrics.observeProgrammedSlices(result.changes.endpointSlices);
    },
    syncFailed: (_error, sync) => metrics.recordSync({ full: sync.full, durationSeconds: sync.durationMs / 1000, succeeded: false }),
  };
}

/**
 * Health-check node ports, recomputed only for the Services a sync took in. The listeners are
 * brought in line when a check changed, and also after a full sync or while one is missing: a
 * port that could not be bound (kube-proxy still on it during a switch) is tried again.
 */
export function serviceHealthObserver(server: ServiceHealthServer, node: NodeFacts, log: Logger): SyncObserver {
  const checks = new Map<string, ServiceHealthCheck>();
  return {
    synced: (result, cluster) => {
      let changed = false;
      for (const id of result.changes.services) {
        const service = cluster.service(id);
        const check = service ? healthCheckOf(service, cluster.slicesOf(id), node) : undefined;
        const before = checks.get(id);
        if (check) checks.set(id, check);
        else checks.delete(id);
        changed ||= !sameCheck(before, check);
      }
      const missing = (): boolean => {
        const listening = server.listening();
        return [...checks.keys()].some((id) => !listening.has(id));
      };
      if (changed || result.full || missing())
        server.sync(new Map(checks)).catch((error: unknown) => log.error({ err: (error as Error).message }, 'health check node ports'));
    },
  };
}

const sameCheck = (a: ServiceHealthCheck | undefined, b: ServiceHealthCheck | undefined): boolean =>
  a === b ||
  (a !== undefined && b !== undefined && a.port === b.port && a.localEndpoints === b.localEndpoints && a.namespace === b.namespace && a.name === b.name);

/**
 * Hands malloc's free pages back to the kernel a while after each full sync (by then V8 has
 * collected most of the sync's Buffers). The netlink binding receives every datagram, an ACK
 * included, into a 32 KiB block of its own, freed only when V8 collects its Buffer; glibc gives
 * back free memory only from its heap's top, so those blocks' pages stayed resident in holes
 * between live ones (at 10,000 Services, 20–24 MiB resident for 9 MB in use after a minute of
 * churn). A trim there takes 2–9 ms (docs/benchmarks.md, "malloc's heap after the churn").
 */
export function mallocTrimObserver(trim: () => boolean, log: Logger, delayMs = 2000): SyncObserver {
  let timer: NodeJS.Timeout | undefined;
  let failed = false;
  return {
    synced: (result) => {
      if (!result.full || timer || failed) return;
      timer = setTimeout(() => {
        timer = undefined;
        const started = performance.now();
        try {
          const released = trim();
          log.debug({ released, ms: Math.round((performance.now() - started) * 10) / 10 }, 'malloc trimmed');
        } catch (error) {
          // In a timer, not in a sync: a throw here would end the process. Memory only, so given up.
          failed = true;
          log.warn({ err: (error as Error).message }, 'malloc trim failed; not tried again');
        }
      }, delayMs);
      timer.unref();
    },
  };
}
