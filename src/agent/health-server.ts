// kube-proxy's proxy health: /healthz and /livez on --healthz-bind-address (default 0.0.0.0:10256),
// as pkg/proxy/healthcheck/proxy_health.go serves them since Kubernetes 1.33 (kubernetes#129271,
// the JSON body with a status per IP family). The state is pure and takes its clock from the
// caller, so a test can age it without waiting; the HTTP side only reads it.
import { createServer } from 'node:http';
import type { AddressFamily } from '../ip.js';
import { KipvsError } from '../errors.js';
import { parseHostPort } from '../util/host-port.js';
import type { NodeInfo } from '../sources/kube-objects.js';
import { listen, notFound, pathOf, type BindAddress, type HttpEndpoint } from './http.js';

/** pkg/proxy/healthcheck: the Cluster Autoscaler's taint on a node it is about to delete. */
export const TO_BE_DELETED_TAINT = 'ToBeDeletedByClusterAutoscaler';

/** v1.IPFamily, the values of kube-proxy's `ip_family` label and health status keys. */
export type IpFamilyName = 'IPv4' | 'IPv6';

export const ipFamilyName = (family: AddressFamily): IpFamilyName => (family === 'inet' ? 'IPv4' : 'IPv6');

/** The parts of a core/v1 Node that decide whether it is eligible for load balancer traffic. */
export type NodeEligibilityInput = Pick<NodeInfo, 'deleting' | 'taints'>;

export interface ProxierHealth {
  /** Epoch milliseconds of the last successful sync; undefined before the first. */
  readonly lastUpdated: number | undefined;
  readonly healthy: boolean;
}

export interface ProxyHealthStatus {
  /** The proxy's own health, without the node's eligibility (what /livez and service health checks use). */
  readonly healthy: boolean;
  readonly nodeEligible: boolean;
  readonly lastUpdated: number | undefined;
  readonly currentTime: number;
  readonly families: ReadonlyMap<IpFamilyName, ProxierHealth>;
  /** Source inputs that cannot be read now (the last good objects are kept): in /healthz's body only. */
  readonly sourceProblems?: readonly string[];
}

export interface ProxyHealthOptions {
  /** kube-proxy uses twice the sync period. */
  readonly healthTimeoutMs: number;
  /** The families kipvs programs; one status entry each. Default IPv4. */
  readonly families?: readonly AddressFamily[];
  readonly clock?: () => number;
}

/**
 * kube-proxy's ProxyHealthServer state. kipvs syncs every family in one pass, so queued() and
 * updated() move all families together. One difference, on purpose: kube-proxy ≥1.33 checks a
 * pending update only for families that have synced once (its Runner marks them updated at
 * start); here a queued update that never completes makes the proxy unhealthy even before the
 * first sync, as kube-proxy ≤1.32 did, so a first sync that hangs is not reported healthy.
 */
export class ProxyHealth {
  private lastUpdated: number | undefined;
  private oldestPendingQueued: number | undefined;
  private eligible = true;
  private sourceProblems: readonly string[] = [];
  private readonly clock: () => number;
  private readonly families: readonly IpFamilyName[];

  constructor(private readonly options: ProxyHealthOptions) {
    this.clock = options.clock ?? Date.now;
    this.families = [...new Set((options.families ?? ['inet']).map(ipFamilyName))].sort();
  }

  /** A change arrived that a sync has to program (kube-proxy's QueuedUpdate): the oldest one counts. */
  queued(now: number = this.clock()): void {
    this.oldestPendingQueued ??= now;
  }

  /** A sync completed (kube-proxy's Updated). */
  updated(now: number = this.clock()): void {
    this.oldestPendingQueued = undefined;
    this.lastUpdated = now;
  }

  /**
   * The node as last seen: not eligible while it is being deleted or carries the autoscaler's
   * to-be-deleted taint. undefined (no Node known, e.g. a file source) counts as eligible, as
   * kube-proxy treats a node it has not yet seen.
   */
  setNode(node: NodeEligibilityInput | undefined): void {
    if (!node) {
      this.eligible = true;
      return;
    }
    this.eligible = !node.deleting && !node.taints.some((taint) => taint.key === TO_BE_DELETED_TAINT);
  }

  /** Inputs the source cannot read now; the proxy keeps serving its last good objects. */
  setSourceProblems(problems: readonly string[]): void {
    this.sourceProblems = problems;
  }

  get nodeEligible(): boolean {
    return this.eligible;
  }

  /** Healthy unless an update has waited healthTimeout or longer (kube-proxy: `< healthTimeout` is fine). */
  status(now: number = this.clock()): ProxyHealthStatus {
    const late = this.oldestPendingQueued !== undefined && now - this.oldestPendingQueued >= this.options.healthTimeoutMs;
    const proxier: ProxierHealth = { lastUpdated: this.lastUpdated, healthy: !late };
    return {
      healthy: !late,
      nodeEligible: this.eligible,
      lastUpdated: this.lastUpdated,
      currentTime: now,
      families: new Map(this.families.map((family) => [family, proxier])),
      ...(this.sourceProblems.length > 0 ? { sourceProblems: this.sourceProblems } : {}),
    };
  }
}

/**
 * A time as Go's time.Time marshals to JSON: RFC 3339 with the fraction's trailing zeros dropped,
 * and the zero time `0001-01-01T00:00:00Z` for "never".
 */
export function goJsonTime(epochMs: number | undefined): string {
  if (epochMs === undefined) return '0001-01-01T00:00:00Z';
  return new Date(epochMs).toISOString().replace(/\.?0*Z$/, 'Z');
}

/** The body of /healthz (withNode) or /livez, byte for byte as kube-proxy's json.Marshal(ProxyHealth). */
export function healthBody(status: ProxyHealthStatus, withNode: boolean): { code: 200 | 503; body: string } {
  const ok = status.healthy && (!withNode || status.nodeEligible);
  // kube-proxy reports lastUpdated as "now" when healthy, as older releases did.
  const lastUpdated = ok ? status.currentTime : status.lastUpdated;
  const families: Record<string, { lastUpdated: string; healthy: boolean }> = {};
  for (const [family, health] of status.families) families[family] = { lastUpdated: goJsonTime(health.lastUpdated), healthy: health.healthy };
  const body = {
    lastUpdated: goJsonTime(lastUpdated),
    currentTime: goJsonTime(status.currentTime),
    ...(withNode ? { nodeEligible: status.nodeEligible } : {}),
    healthy: status.healthy,
    ...(status.families.size > 0 ? { status: families } : {}),
    // Not in kube-proxy's body (it has no file source): present only while an input fails.
    ...(status.sourceProblems && status.sourceProblems.length > 0 ? { sourceProblems: status.sourceProblems } : {}),
  };
  return { code: ok ? 200 : 503, body: JSON.stringify(body) };
}

/** `host:port`, `[v6]:port`, `:port`, or a bare address that takes `defaultPort` (kube-proxy's AppendPortIfNeeded). */
export function parseBindAddress(text: string, defaultPort: number): BindAddress {
  const parsed = parseHostPort(text, defaultPort);
  if ('error' in parsed) throw new KipvsError('KIPVS_BIND_ADDRESS', `bind address ${JSON.stringify(text)} is not an IP address and port: ${parsed.error}`);
  const { host, port } = parsed;
  return { host: host === '' || host === '0.0.0.0' || host === '::' ? undefined : host, port };
}

/** What the health server reports each answer to (ProxyMetrics: kube-proxy's *_total counters by code). */
export interface HealthRequestCounter {
  countHealthz(code: number): void;
  countLivez(code: number): void;
}

/** Serves /healthz and /livez; `address` is `host:port` (port 0 picks one). */
export function startHealthServer(address: string, health: ProxyHealth, metrics?: HealthRequestCounter): Promise<HttpEndpoint> {
  const bind = parseBindAddress(address, 10256);
  const server = createServer((request, response) => {
    const path = pathOf(request);
    if (path !== '/healthz' && path !== '/livez') {
      notFound(response);
      return;
    }
    const withNode = path === '/healthz';
    const { code, body } = healthBody(health.status(), withNode);
    if (withNode) metrics?.countHealthz(code);
    else metrics?.countLivez(code);
    response.writeHead(code, { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff' });
    response.end(body);
  });
  return listen(server, bind, 'healthz');
}
