// `kipvs agent` without --once: health and metrics served, then syncs until SIGTERM or SIGINT.
// Its own module so that --once loads none of it (prom-client, the HTTP servers, the observers).
import type { Logger } from 'pino';
import { nodeAddressReader, type LiveNodeFacts, type NodeFactsOptions } from '../agent/node-facts.js';
import { startDaemon, type SyncObserver } from '../agent/daemon.js';
import { RetryBackoff } from '../agent/retry.js';
import type { RulesWriter } from '../agent/node-setup.js';
import { healthObserver, mallocTrimObserver, metricsObserver, serviceHealthObserver } from '../agent/observers.js';
import { nativeShims } from '../native.js';
import { serviceNamesObserver, type ServiceNamesRecorder } from '../agent/service-names.js';
import { serviceTrafficObserver } from '../agent/service-metrics.js';
import { startHealthServer, type ProxyHealth } from '../agent/health-server.js';
import type { HttpEndpoint } from '../agent/http.js';
import { ProxyMetrics, startMetricsServer } from '../agent/metrics.js';
import { ServiceHealthServer } from '../agent/service-health.js';
import type { Proxier } from '../agent/proxier.js';
import type { ClusterStore } from '../sources/cluster-store.js';
import type { ClusterSource } from '../sources/start.js';
import type { NodeFacts } from '../model/settings.js';
import type { AgentOptions } from './agent-options.js';

/** The daemon's metrics, with Node.js's own (process and heap) beside kube-proxy's. */
export const daemonMetrics = (node: NodeFacts): ProxyMetrics => new ProxyMetrics({ families: node.families, defaultMetrics: true });

/**
 * /healthz and /metrics, each on its address (empty: not at all); served before the first list, as
 * kube-proxy does: a pod restarting while the API server is away must not be killed by its
 * liveness probe.
 */
export function serveHealthAndMetrics(options: AgentOptions, health: ProxyHealth, metrics: ProxyMetrics, log: Logger): Array<{ close(): Promise<void> }> {
  return [
    keepServing(options.healthzBindAddress, 'healthz', () => startHealthServer(options.healthzBindAddress, health, metrics), log),
    keepServing(options.metricsBindAddress, 'metrics', () => startMetricsServer(options.metricsBindAddress, metrics), log),
  ];
}

interface DaemonContext {
  readonly options: AgentOptions;
  /** The dummy interface's name (the settings'), for the retries' log lines. */
  readonly dummyInterface: string;
  readonly node: NodeFacts;
  readonly liveNode: LiveNodeFacts;
  readonly nodeOptions: NodeFactsOptions;
  readonly cluster: ClusterStore;
  readonly proxier: Proxier;
  readonly writeRules: RulesWriter;
  readonly health: ProxyHealth;
  readonly metrics: ProxyMetrics;
  readonly names: ServiceNamesRecorder;
  readonly log: Logger;
  readonly stopping: AbortSignal;
  readonly source: ClusterSource;
}

/** Until `stopping` (SIGTERM or SIGINT): syncs, and the observers that feed health, metrics and health-check node ports. */
export async function runDaemon({
  options,
  dummyInterface,
  node,
  liveNode,
  nodeOptions,
  cluster,
  proxier,
  writeRules,
  health,
  metrics,
  names,
  log,
  stopping,
  source,
}: DaemonContext): Promise<void> {
  const serviceHealth = new ServiceHealthServer({ addresses: options.nodeportAddresses.length > 0 ? node.addresses : [], health, log });
  const observers: SyncObserver[] = [
    healthObserver(health),
    metricsObserver(metrics, cluster),
    serviceHealthObserver(serviceHealth, node, log),
    serviceNamesObserver(names),
  ];
  observers.push(serviceTrafficObserver(metrics, options.netns, log, options.metricsPerEndpoint));
  const trim = mallocTrimOf(log);
  if (trim) observers.push(mallocTrimObserver(trim, log));
  observers.push({
    retryScheduled: (operations, delayMs) => {
      metrics.recordRetries(operations);
      log.info({ operations, inMs: delayMs }, 'retrying refused operations');
    },
  });
  // Refused operations: tried again after 1 s, doubling up to the sync period, jittered by half.
  const retry = new RetryBackoff({ initialMs: 1000, maxMs: Math.max(1000, options.ipvsSyncPeriod), jitter: 0.5 }, dummyInterface);
  // As kube-proxy's runner: the proxy counts as updated when its loop starts.
  health.updated();
  metrics.recordQueued();
  const nodeAddresses = nodeAddressReader(liveNode, nodeOptions, log);
  const daemon = startDaemon({
    proxier,
    cluster,
    log,
    syncPeriodMs: options.ipvsSyncPeriod,
    minSyncPeriodMs: options.ipvsMinSyncPeriod,
    applyRules: writeRules,
    observers,
    retry,
    checkSource: () => {
      source.check();
      nodeAddresses.check();
    },
    nodeFacts: liveNode,
  });
  await new Promise<void>((resolve) => stopping.addEventListener('abort', () => resolve(), { once: true }));
  // A sync under way finishes first: closing its sockets mid-apply could leave a virtual server
  // without its real servers.
  await daemon.stop();
  await serviceHealth.close();
}

/**
 * Serves on `address` (empty: not at all). A port that is taken is logged and tried again every
 * 5 s, as kube-proxy does: the proxy itself matters more than its health endpoint.
 */
function keepServing(address: string, what: string, start: () => Promise<HttpEndpoint>, log: Logger): { close(): Promise<void> } {
  let endpoint: HttpEndpoint | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const attempt = (): void => {
    start().then(
      (opened) => {
        if (closed) return void opened.close();
        endpoint = opened;
        log.info({ address: opened.address }, `serving ${what}`); // host:port already
      },
      (error: unknown) => {
        log.error({ err: (error as Error).message }, `cannot serve ${what}; trying again in 5 s`);
        if (!closed) timer = setTimeout(attempt, 5000);
      },
    );
  };
  if (address !== '') attempt();
  return {
    close: async () => {
      closed = true;
      clearTimeout(timer);
      await endpoint?.close();
    },
  };
}

/**
 * The native shims' malloc_trim, if they are built and have it: a daemon runs without (only its
 * memory is larger) where they are missing or were built before it (`npm run build` is tsc only).
 */
function mallocTrimOf(log: Logger): (() => boolean) | undefined {
  try {
    const shims = nativeShims();
    if (typeof shims.mallocTrim === 'function') return () => shims.mallocTrim();
    log.warn('the native shims have no mallocTrim (built before it): run npm run install; malloc is not trimmed');
  } catch (error) {
    log.warn({ err: (error as Error).message }, 'malloc is not trimmed');
  }
  return undefined;
}
