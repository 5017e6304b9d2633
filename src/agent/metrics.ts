// Prometheus metrics: kube-proxy's names, help texts, labels and buckets wherever the meaning is
// the same (pkg/proxy/metrics/metrics.go, Kubernetes 1.34: the sync metrics carry `ip_family`),
// so that existing dashboards and alerts keep working; kipvs_* for what only kipvs knows. A
// registry of our own, never prom-client's global one, so tests and embedders get a clean slate.
import { createServer } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AddressFamily } from '../ip.js';
import type { KernelOperation } from '../reconcile/state.js';
import type { IpvsOperation } from '../netlink/ipvs/types.js';
import type { DesiredState } from '../model/desired.js';
import type { EndpointSlice } from '../model/kubernetes.js';
import type { OperationFailure } from '../kernel/netlink-kernel.js';
import { KipvsError } from '../errors.js';
import { NetlinkRequestError, NetlinkTransportError, errnoName } from '../netlink/errors.js';
import { ipFamilyName, parseBindAddress, type IpFamilyName } from './health-server.js';
import { listen, notFound, pathOf, type HttpEndpoint } from './http.js';

/** kube-proxy: metrics.ExponentialBuckets(0.001, 2, 15), 1ms to 16.384s. */
export const SYNC_DURATION_BUCKETS: readonly number[] = Array.from({ length: 15 }, (_, i) => 0.001 * 2 ** i);

const linear = (start: number, width: number, count: number): number[] => Array.from({ length: count }, (_, i) => start + width * i);

/**
 * kube-proxy: metrics.MergeBuckets(LinearBuckets(0.25, 0.25, 2), LinearBuckets(1, 1, 59),
 * LinearBuckets(60, 5, 12), LinearBuckets(120, 30, 7)). MergeBuckets starts from a slice of one
 * zero, so the first bucket is le="0".
 */
export const NETWORK_PROGRAMMING_BUCKETS: readonly number[] = [0, ...linear(0.25, 0.25, 2), ...linear(1, 1, 59), ...linear(60, 5, 12), ...linear(120, 30, 7)];

/** core/v1 EndpointsLastChangeTriggerTime, set by the EndpointSlice controller. */
export const LAST_CHANGE_TRIGGER_TIME = 'endpoints.kubernetes.io/last-change-trigger-time';

export interface SyncRecord {
  /** The kernel was read afresh (kipvs's full sync) rather than diffed against the cache. */
  readonly full: boolean;
  readonly durationSeconds: number;
  /** False when the sync threw: the duration is still observed, the timestamp is not (as kube-proxy). */
  readonly succeeded: boolean;
  /** Epoch milliseconds the sync finished; default now. */
  readonly at?: number;
}

export interface ProxyMetricsOptions {
  /** The families kipvs programs: each sync is observed once per family, as each kube-proxy proxier does. */
  readonly families?: readonly AddressFamily[];
  /** prom-client's process_* and nodejs_* metrics (RSS, heap, event loop lag). Default true. */
  readonly defaultMetrics?: boolean;
  readonly clock?: () => number;
}

/**
 * A kernel operation's `kind` label: the IPVS ones in the words of the logs and of ipvsadm
 * (virtual server, real server), the others by their own kind.
 */
const IPVS_OPERATION_KINDS: Readonly<Record<IpvsOperation['op'], string>> = {
  addService: 'addVirtualServer',
  editService: 'editVirtualServer',
  deleteService: 'deleteVirtualServer',
  addDestination: 'addRealServer',
  editDestination: 'editRealServer',
  deleteDestination: 'deleteRealServer',
};

export function operationKind(operation: KernelOperation): string {
  if (operation.kind === 'createIpset' && operation.replacing !== undefined) return 'replaceIpset';
  return operation.kind === 'ipvs' ? IPVS_OPERATION_KINDS[operation.operation.op] : operation.kind;
}

/** The errno label of a failure: the kernel's errno name, else the KipvsError code, else `unknown`. */
export function failureErrno(error: Error): string {
  // ipset's own errnos by their uapi names (IPSET_ERR_BUSY), not E4105.
  if (error instanceof NetlinkRequestError) return error.errnoName;
  if (error instanceof NetlinkTransportError && error.errno !== undefined) return errnoName(error.errno);
  if (error instanceof KipvsError) return error.code;
  const code = (error as NodeJS.ErrnoException).code;
  return typeof code === 'string' ? code : 'unknown';
}

/**
 * Epoch milliseconds of a slice's last-change-trigger-time annotation (RFC 3339, up to
 * nanoseconds), or undefined when it is missing or does not parse (kube-proxy ignores both).
 */
export function lastChangeTriggerTime(slice: EndpointSlice): number | undefined {
  const text = slice.metadata.annotations?.[LAST_CHANGE_TRIGGER_TIME];
  if (typeof text !== 'string') return undefined;
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|([+-])(\d{2}):(\d{2}))$/.exec(text);
  if (!match) return undefined;
  const [, year, month, day, hour, minute, second, fraction, , sign, offsetHours, offsetMinutes] = match;
  const utc = Date.UTC(Number(year), Number(month) - 1, Number(day), Number(hour), Number(minute), Number(second));
  const offset = sign === undefined ? 0 : (sign === '-' ? -1 : 1) * (Number(offsetHours) * 60 + Number(offsetMinutes)) * 60_000;
  const ms = utc - offset + (fraction ? Number(fraction) * 1000 : 0);
  return Number.isNaN(ms) ? undefined : ms;
}

interface RecordedState {
  readonly desired: DesiredState;
  readonly draining: number;
}

export class ProxyMetrics {
  readonly registry = new Registry();
  private readonly families: readonly IpFamilyName[];
  private readonly clock: () => number;
  /** kube-proxy's trackerStartTime: trigger times before the agent started are not its latency. */
  private readonly startedAt: number;

  private readonly syncDuration: Histogram<'ip_family'>;
  private readonly fullSyncDuration: Histogram<'ip_family'>;
  private readonly partialSyncDuration: Histogram<'ip_family'>;
  private readonly lastSync: Gauge<'ip_family'>;
  private readonly lastQueued: Gauge<'ip_family'>;
  private readonly programmingLatency: Histogram<'ip_family'>;
  private readonly endpointChangesPending: Gauge;
  private readonly endpointChangesTotal: Counter;
  private readonly serviceChangesPending: Gauge;
  private readonly serviceChangesTotal: Counter;
  private readonly healthzTotal: Counter<'code'>;
  private readonly livezTotal: Counter<'code'>;
  private readonly kernelOperations: Counter<'kind'>;
  private readonly kernelFailures: Counter<'kind' | 'errno'>;
  private readonly sourceFailing: Gauge;
  private readonly kernelRetries: Counter;
  private state: RecordedState | undefined;
  private readonly parts: Array<() => Promise<string>> = [];

  constructor(options: ProxyMetricsOptions = {}) {
    this.families = [...new Set((options.families ?? ['inet']).map(ipFamilyName))];
    this.clock = options.clock ?? Date.now;
    this.startedAt = this.clock();
    const registers = [this.registry];
    const histogram = (name: string, help: string, buckets: readonly number[]): Histogram<'ip_family'> =>
      new Histogram({ name, help, labelNames: ['ip_family'], buckets: [...buckets], registers });
    const familyGauge = (name: string, help: string): Gauge<'ip_family'> => new Gauge({ name, help, labelNames: ['ip_family'], registers });

    this.syncDuration = histogram('kubeproxy_sync_proxy_rules_duration_seconds', 'SyncProxyRules latency in seconds', SYNC_DURATION_BUCKETS);
    this.fullSyncDuration = histogram(
      'kubeproxy_sync_full_proxy_rules_duration_seconds',
      'SyncProxyRules latency in seconds for full resyncs',
      SYNC_DURATION_BUCKETS,
    );
    this.partialSyncDuration = histogram(
      'kubeproxy_sync_partial_proxy_rules_duration_seconds',
      'SyncProxyRules latency in seconds for partial resyncs',
      SYNC_DURATION_BUCKETS,
    );
    this.lastSync = familyGauge('kubeproxy_sync_proxy_rules_last_timestamp_seconds', 'The last time proxy rules were successfully synced');
    this.lastQueued = familyGauge('kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds', 'The last time a sync of proxy rules was queued');
    this.programmingLatency = histogram(
      'kubeproxy_network_programming_duration_seconds',
      'In Cluster Network Programming Latency in seconds',
      NETWORK_PROGRAMMING_BUCKETS,
    );
    this.endpointChangesPending = new Gauge({
      name: 'kubeproxy_sync_proxy_rules_endpoint_changes_pending',
      help: 'Pending proxy rules Endpoint changes',
      registers,
    });
    this.endpointChangesTotal = new Counter({
      name: 'kubeproxy_sync_proxy_rules_endpoint_changes_total',
      help: 'Cumulative proxy rules Endpoint changes',
      registers,
    });
    this.serviceChangesPending = new Gauge({
      name: 'kubeproxy_sync_proxy_rules_service_changes_pending',
      help: 'Pending proxy rules Service changes',
      registers,
    });
    this.serviceChangesTotal = new Counter({
      name: 'kubeproxy_sync_proxy_rules_service_changes_total',
      help: 'Cumulative proxy rules Service changes',
      registers,
    });
    this.healthzTotal = new Counter({ name: 'kubeproxy_proxy_healthz_total', help: 'Cumulative proxy healthz HTTP status', labelNames: ['code'], registers });
    this.livezTotal = new Counter({ name: 'kubeproxy_proxy_livez_total', help: 'Cumulative proxy livez HTTP status', labelNames: ['code'], registers });

    // Counted from the live desired state when scraped, not at every sync: a sync's cost must not
    // grow with the cluster, and a scrape every 15 s can afford a walk over 10,000 virtual servers.
    // The registry holds these gauges; nothing here needs to.
    const state = (): RecordedState | undefined => this.state;
    const stateGauge = (name: string, help: string, value: (recorded: RecordedState) => number): Gauge =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const recorded = state();
          if (recorded) this.set(value(recorded));
        },
      });
    stateGauge('kipvs_virtual_servers', 'IPVS virtual servers kipvs wants, as of the last sync', ({ desired }) => desired.virtualServers.size);
    stateGauge('kipvs_real_servers', 'IPVS real servers kipvs wants across all virtual servers, as of the last sync', ({ desired }) => {
      let count = 0;
      for (const virtualServer of desired.virtualServers.values()) count += virtualServer.realServers.size;
      return count;
    });
    stateGauge('kipvs_draining_real_servers', 'Removed real servers kept at weight 0 until their connections drain', ({ draining }) => draining);
    new Gauge({
      name: 'kipvs_ipset_entries',
      help: 'Entries kipvs wants in each kube-proxy ipset, as of the last sync',
      labelNames: ['set'],
      registers,
      collect() {
        const recorded = state();
        if (!recorded) return;
        this.reset();
        for (const [name, set] of recorded.desired.ipsets) this.set({ set: name }, set.entries.size);
      },
    });
    stateGauge('kipvs_bound_addresses', 'Service addresses kipvs wants bound to the dummy interface', ({ desired }) => desired.boundAddresses.size);
    stateGauge(
      'kipvs_translation_problems',
      'Services and EndpointSlices (or parts of them) skipped as invalid at the last sync',
      ({ desired }) => desired.problems.length,
    );
    this.kernelOperations = new Counter({
      name: 'kipvs_kernel_operations_total',
      help: 'Kernel operations kipvs attempted, by kind',
      labelNames: ['kind'],
      registers,
    });
    this.kernelRetries = new Counter({
      name: 'kipvs_kernel_operation_retries_total',
      help: 'Refused kernel operations scheduled to be tried again (with backoff)',
      registers,
    });
    this.kernelFailures = new Counter({
      name: 'kipvs_kernel_operation_failures_total',
      help: 'Kernel operations the kernel refused, by kind and errno',
      labelNames: ['kind', 'errno'],
      registers,
    });
    this.sourceFailing = new Gauge({
      name: 'kipvs_source_failing_inputs',
      help: 'Source files that cannot be read or parsed now; the objects they last had are kept',
      registers,
    });
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** How many source inputs fail now (0: all read). */
  recordSourceFailing(count: number): void {
    this.sourceFailing.set(count);
  }

  /** A sync was requested (kube-proxy sets this with QueuedUpdate). */
  recordQueued(at: number = this.clock()): void {
    for (const family of this.families) this.lastQueued.set({ ip_family: family }, at / 1000);
  }

  recordSync(sync: SyncRecord): void {
    for (const family of this.families) {
      const labels = { ip_family: family };
      this.syncDuration.observe(labels, sync.durationSeconds);
      (sync.full ? this.fullSyncDuration : this.partialSyncDuration).observe(labels, sync.durationSeconds);
      if (sync.succeeded) this.lastSync.set(labels, (sync.at ?? this.clock()) / 1000);
    }
  }

  /** Change events seen: each adds to the _total counter and to _pending until checkoutChanges(). */
  countChanges(changes: { readonly services?: number; readonly endpointSlices?: number }): void {
    if (changes.services) {
      this.serviceChangesTotal.inc(changes.services);
      this.serviceChangesPending.inc(changes.services);
    }
    if (changes.endpointSlices) {
      this.endpointChangesTotal.inc(changes.endpointSlices);
      this.endpointChangesPending.inc(changes.endpointSlices);
    }
  }

  /** A sync took the pending changes (kube-proxy sets both pending gauges to 0 there). */
  checkoutChanges(): void {
    this.serviceChangesPending.set(0);
    this.endpointChangesPending.set(0);
  }

  /** Every operation of an applied plan by kind, and the refused ones by kind and errno. */
  recordApply(operations: readonly KernelOperation[], failures: readonly OperationFailure[]): void {
    const counts = new Map<string, number>();
    for (const operation of operations) {
      const kind = operationKind(operation);
      counts.set(kind, (counts.get(kind) ?? 0) + 1);
    }
    for (const [kind, count] of counts) this.kernelOperations.inc({ kind }, count);
    for (const failure of failures) this.kernelFailures.inc({ kind: operationKind(failure.operation), errno: failureErrno(failure.error) });
  }

  /** Refused operations a retry was scheduled for. */
  recordRetries(operations: number): void {
    this.kernelRetries.inc(operations);
  }

  /** What kipvs wants in the kernel after a sync, and how many real servers are draining. */
  /** The state the kipvs_* gauges report (the desired state is live: read when scraped). */
  recordState(desired: DesiredState, drainingRealServers: number): void {
    this.state = { desired, draining: drainingRealServers };
  }

  observeProgrammingLatency(seconds: number, family: AddressFamily = 'inet'): void {
    this.programmingLatency.observe({ ip_family: ipFamilyName(family) }, seconds);
  }

  /**
   * kube-proxy's network programming latency for the slices added or updated since the last sync
   * (never removed ones: their trigger time is their last update's) once they are programmed:
   * from each slice's trigger time, when it is later than the agent's start, to `programmedAt`.
   */
  observeProgrammedSlices(slices: Iterable<EndpointSlice>, programmedAt: number = this.clock()): void {
    for (const slice of slices) {
      const triggered = lastChangeTriggerTime(slice);
      if (triggered === undefined || triggered <= this.startedAt) continue;
      const family: AddressFamily | undefined = slice.addressType === 'IPv4' ? 'inet' : slice.addressType === 'IPv6' ? 'inet6' : undefined;
      if (family) this.observeProgrammingLatency(Math.max(0, programmedAt - triggered) / 1000, family);
    }
  }

  countHealthz(code: number): void {
    this.healthzTotal.inc({ code: String(code) });
  }

  countLivez(code: number): void {
    this.livezTotal.inc({ code: String(code) });
  }

  /** Appends another part to every scrape: metrics rendered elsewhere, in the same text format. */
  addExposition(part: () => Promise<string>): void {
    this.parts.push(part);
  }

  /** The Prometheus text exposition. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    const texts = await Promise.all([this.registry.metrics(), ...this.parts.map((part) => part())]);
    return { contentType: this.registry.contentType, body: texts.join('') };
  }
}

/**
 * kube-proxy's metrics server (cmd/kube-proxy/app/server.go serveMetrics) on
 * --metrics-bind-address: /metrics, /proxyMode, and the apiserver-style /healthz that only
 * answers "ok" (healthz.InstallHandler with its default ping check, not the proxy's health:
 * that is the healthz server's job). It serves no /livez.
 */
export function startMetricsServer(address: string, metrics: ProxyMetrics): Promise<HttpEndpoint> {
  const bind = parseBindAddress(address, 10249);
  const text = { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' };
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    switch (pathOf(request)) {
      case '/metrics':
        metrics.exposition().then(
          ({ contentType, body }) => {
            response.writeHead(200, { 'Content-Type': contentType });
            response.end(body);
          },
          (error: unknown) => {
            response.writeHead(500, text);
            response.end(`An error has occurred while serving metrics:\n\n${error instanceof Error ? error.message : String(error)}`);
          },
        );
        return;
      case '/proxyMode':
        response.writeHead(200, text);
        response.end('ipvs');
        return;
      case '/healthz':
        response.writeHead(200, text);
        response.end(url.searchParams.has('verbose') ? '[+]ping ok\nhealthz check passed\n' : 'ok');
        return;
      case '/healthz/ping':
        response.writeHead(200, text);
        response.end('ok');
        return;
      default:
        notFound(response);
    }
  });
  return listen(server, bind, 'metrics');
}
