import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  failureErrno,
  lastChangeTriggerTime,
  NETWORK_PROGRAMMING_BUCKETS,
  operationKind,
  ProxyMetrics,
  startMetricsServer,
} from '../../../src/agent/metrics.js';
import type { HttpEndpoint } from '../../../src/agent/http.js';
import type { EndpointSlice } from '../../../src/model/kubernetes.js';
import { NetlinkRequestError, PermissionError } from '../../../src/netlink/errors.js';
import type { KernelOperation } from '../../../src/reconcile/state.js';
import { translate } from '../../../src/translate/translate.js';
import { DEFAULT_SETTINGS } from '../../../src/model/settings.js';
import { defined } from '../../support/defined.js';
import { parseExposition, type Family } from '../../support/prometheus.js';

const KUBE_PROXY_FAMILIES: Record<string, [type: string, help: string]> = {
  kubeproxy_sync_proxy_rules_duration_seconds: ['histogram', 'SyncProxyRules latency in seconds'],
  kubeproxy_sync_full_proxy_rules_duration_seconds: ['histogram', 'SyncProxyRules latency in seconds for full resyncs'],
  kubeproxy_sync_partial_proxy_rules_duration_seconds: ['histogram', 'SyncProxyRules latency in seconds for partial resyncs'],
  kubeproxy_sync_proxy_rules_last_timestamp_seconds: ['gauge', 'The last time proxy rules were successfully synced'],
  kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds: ['gauge', 'The last time a sync of proxy rules was queued'],
  kubeproxy_network_programming_duration_seconds: ['histogram', 'In Cluster Network Programming Latency in seconds'],
  kubeproxy_sync_proxy_rules_endpoint_changes_pending: ['gauge', 'Pending proxy rules Endpoint changes'],
  kubeproxy_sync_proxy_rules_endpoint_changes_total: ['counter', 'Cumulative proxy rules Endpoint changes'],
  kubeproxy_sync_proxy_rules_service_changes_pending: ['gauge', 'Pending proxy rules Service changes'],
  kubeproxy_sync_proxy_rules_service_changes_total: ['counter', 'Cumulative proxy rules Service changes'],
  kubeproxy_proxy_healthz_total: ['counter', 'Cumulative proxy healthz HTTP status'],
  kubeproxy_proxy_livez_total: ['counter', 'Cumulative proxy livez HTTP status'],
};

const KIPVS_FAMILIES: Record<string, string> = {
  kipvs_virtual_servers: 'gauge',
  kipvs_real_servers: 'gauge',
  kipvs_draining_real_servers: 'gauge',
  kipvs_ipset_entries: 'gauge',
  kipvs_bound_addresses: 'gauge',
  kipvs_translation_problems: 'gauge',
  kipvs_kernel_operations_total: 'counter',
  kipvs_kernel_operation_failures_total: 'counter',
};

const T0 = Date.UTC(2025, 4, 1, 12, 0, 0, 0);
const value = (families: Map<string, Family>, sample: string, labels: Record<string, string> = {}): number | undefined =>
  [...families.values()]
    .flatMap((family) => family.samples)
    .find(
      (s) =>
        s.name === sample && Object.entries(labels).every(([key, v]) => s.labels[key] === v) && Object.keys(s.labels).length === Object.keys(labels).length,
    )?.value;

const bucketBounds = (families: Map<string, Family>, name: string, labels: Record<string, string>): string[] =>
  defined(families.get(name), `family ${name}`)
    .samples.filter((s) => s.name === `${name}_bucket` && Object.entries(labels).every(([key, v]) => s.labels[key] === v))
    .map((s) => defined(s.labels.le, `le on a ${s.name} sample`));

async function exposition(metrics: ProxyMetrics): Promise<Map<string, Family>> {
  return parseExposition(await metrics.registry.metrics());
}

describe('ProxyMetrics', () => {
  it("exposes kube-proxy's metric names, types and help texts, kipvs's own, and process metrics", async () => {
    const families = await exposition(new ProxyMetrics());
    for (const [name, [type, help]] of Object.entries(KUBE_PROXY_FAMILIES))
      expect([families.get(name)?.type, families.get(name)?.help], name).toEqual([type, help]);
    for (const [name, type] of Object.entries(KIPVS_FAMILIES)) expect(families.get(name)?.type, name).toBe(type);
    for (const name of ['process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'process_cpu_seconds_total']) {
      expect(families.get(name)?.samples.length, name).toBeGreaterThan(0);
    }
    expect(value(families, 'process_resident_memory_bytes')).toBeGreaterThan(1_000_000);
  });

  it("keeps its metrics apart from prom-client's global registry and from other instances", async () => {
    const one = new ProxyMetrics({ defaultMetrics: false });
    const two = new ProxyMetrics({ defaultMetrics: false });
    one.countHealthz(200);
    expect(value(await exposition(one), 'kubeproxy_proxy_healthz_total', { code: '200' })).toBe(1);
    expect(value(await exposition(two), 'kubeproxy_proxy_healthz_total', { code: '200' })).toBeUndefined();
    const { register } = await import('prom-client');
    expect(register.getSingleMetric('kubeproxy_proxy_healthz_total')).toBeUndefined();
  });

  it("observes each sync per family, full or partial, with kube-proxy's buckets, and stamps only successes", async () => {
    const metrics = new ProxyMetrics({ families: ['inet', 'inet6'], defaultMetrics: false, clock: () => T0 });
    metrics.recordQueued(T0 - 2000);
    metrics.recordSync({ full: true, durationSeconds: 0.003, succeeded: true, at: T0 - 1000 });
    metrics.recordSync({ full: false, durationSeconds: 0.2, succeeded: false });
    const families = await exposition(metrics);
    for (const ip_family of ['IPv4', 'IPv6']) {
      expect(value(families, 'kubeproxy_sync_proxy_rules_duration_seconds_count', { ip_family })).toBe(2);
      expect(value(families, 'kubeproxy_sync_proxy_rules_duration_seconds_bucket', { ip_family, le: '0.004' })).toBe(1);
      expect(value(families, 'kubeproxy_sync_proxy_rules_duration_seconds_bucket', { ip_family, le: '0.256' })).toBe(2);
      expect(value(families, 'kubeproxy_sync_full_proxy_rules_duration_seconds_count', { ip_family })).toBe(1);
      expect(value(families, 'kubeproxy_sync_partial_proxy_rules_duration_seconds_sum', { ip_family })).toBeCloseTo(0.2);
      expect(value(families, 'kubeproxy_sync_proxy_rules_last_timestamp_seconds', { ip_family })).toBe((T0 - 1000) / 1000);
      expect(value(families, 'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds', { ip_family })).toBe((T0 - 2000) / 1000);
    }
    const bounds = bucketBounds(families, 'kubeproxy_sync_proxy_rules_duration_seconds', { ip_family: 'IPv4' });
    expect(bounds).toEqual([
      '0.001',
      '0.002',
      '0.004',
      '0.008',
      '0.016',
      '0.032',
      '0.064',
      '0.128',
      '0.256',
      '0.512',
      '1.024',
      '2.048',
      '4.096',
      '8.192',
      '16.384',
      '+Inf',
    ]);
  });

  it('uses kube-proxy\'s network programming buckets, starting at le="0"', async () => {
    expect(NETWORK_PROGRAMMING_BUCKETS).toHaveLength(81);
    const metrics = new ProxyMetrics({ defaultMetrics: false });
    metrics.observeProgrammingLatency(0.3);
    metrics.observeProgrammingLatency(61, 'inet6');
    const families = await exposition(metrics);
    const bounds = bucketBounds(families, 'kubeproxy_network_programming_duration_seconds', { ip_family: 'IPv4' });
    expect(bounds.slice(0, 5)).toEqual(['0', '0.25', '0.5', '1', '2']);
    expect(bounds.slice(-9)).toEqual(['115', '120', '150', '180', '210', '240', '270', '300', '+Inf']);
    expect(value(families, 'kubeproxy_network_programming_duration_seconds_bucket', { ip_family: 'IPv4', le: '0.25' })).toBe(0);
    expect(value(families, 'kubeproxy_network_programming_duration_seconds_bucket', { ip_family: 'IPv4', le: '0.5' })).toBe(1);
    expect(value(families, 'kubeproxy_network_programming_duration_seconds_bucket', { ip_family: 'IPv6', le: '60' })).toBe(0);
    expect(value(families, 'kubeproxy_network_programming_duration_seconds_bucket', { ip_family: 'IPv6', le: '65' })).toBe(1);
  });

  it("measures programming latency from the slice's trigger time, ignoring triggers from before the agent started", async () => {
    let now = T0;
    const metrics = new ProxyMetrics({ defaultMetrics: false, clock: () => now });
    const slice = (name: string, trigger: string | undefined, addressType = 'IPv4'): EndpointSlice => ({
      metadata: { name, namespace: 'shop', ...(trigger ? { annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': trigger } } : {}) },
      addressType,
      endpoints: [],
    });
    now = T0 + 10_000;
    metrics.observeProgrammedSlices([
      slice('before-start', '2025-05-01T11:59:59Z'),
      slice('no-annotation', undefined),
      slice('garbage', 'yesterday'),
      slice('fresh', '2025-05-01T12:00:08.5Z'),
      slice('fresh-v6', '2025-05-01T14:00:07+02:00', 'IPv6'),
      slice('fqdn', '2025-05-01T12:00:08Z', 'FQDN'),
    ]);
    const families = await exposition(metrics);
    expect(value(families, 'kubeproxy_network_programming_duration_seconds_count', { ip_family: 'IPv4' })).toBe(1);
    expect(value(families, 'kubeproxy_network_programming_duration_seconds_sum', { ip_family: 'IPv4' })).toBeCloseTo(1.5);
    expect(value(families, 'kubeproxy_network_programming_duration_seconds_sum', { ip_family: 'IPv6' })).toBeCloseTo(3);
  });

  it('counts changes into totals and pending until a sync checks them out', async () => {
    const metrics = new ProxyMetrics({ defaultMetrics: false });
    metrics.countChanges({ services: 2, endpointSlices: 3 });
    metrics.countChanges({ endpointSlices: 1 });
    let families = await exposition(metrics);
    expect(value(families, 'kubeproxy_sync_proxy_rules_service_changes_total')).toBe(2);
    expect(value(families, 'kubeproxy_sync_proxy_rules_endpoint_changes_total')).toBe(4);
    expect(value(families, 'kubeproxy_sync_proxy_rules_endpoint_changes_pending')).toBe(4);
    metrics.checkoutChanges();
    families = await exposition(metrics);
    expect(value(families, 'kubeproxy_sync_proxy_rules_endpoint_changes_pending')).toBe(0);
    expect(value(families, 'kubeproxy_sync_proxy_rules_service_changes_pending')).toBe(0);
    expect(value(families, 'kubeproxy_sync_proxy_rules_endpoint_changes_total')).toBe(4);
  });

  it('counts kernel operations by kind and refusals by kind and errno', async () => {
    const metrics = new ProxyMetrics({ defaultMetrics: false });
    const key = { family: 'inet' as const, protocol: 'TCP' as const, address: '10.96.0.10', port: 80 };
    const addService = { kind: 'ipvs', operation: { op: 'deleteService', key } } as KernelOperation;
    const addDestination = {
      kind: 'ipvs',
      operation: { op: 'addDestination', service: key, destination: { address: '10.244.1.2', port: 8080 } },
    } as KernelOperation;
    const bind: KernelOperation = { kind: 'bindAddress', address: '10.96.0.10' };
    metrics.recordApply(
      [addService, addDestination, addDestination, bind],
      [
        { operation: addDestination, error: new NetlinkRequestError('add real server 10.244.1.2:8080 to TCP 10.96.0.10:80', 17) },
        { operation: bind, error: new PermissionError('no CAP_NET_ADMIN') },
      ],
    );
    const families = await exposition(metrics);
    expect(value(families, 'kipvs_kernel_operations_total', { kind: 'deleteVirtualServer' })).toBe(1);
    expect(value(families, 'kipvs_kernel_operations_total', { kind: 'addRealServer' })).toBe(2);
    expect(value(families, 'kipvs_kernel_operations_total', { kind: 'bindAddress' })).toBe(1);
    expect(value(families, 'kipvs_kernel_operation_failures_total', { kind: 'addRealServer', errno: 'EEXIST' })).toBe(1);
    expect(value(families, 'kipvs_kernel_operation_failures_total', { kind: 'bindAddress', errno: 'KIPVS_PERMISSION' })).toBe(1);
    expect(operationKind(addService)).toBe('deleteVirtualServer');
    expect(failureErrno(Object.assign(new Error('x'), { code: 'ENOENT' }))).toBe('ENOENT');
    expect(failureErrno(new Error('x'))).toBe('unknown');
  });

  it("publishes the desired state's sizes after a sync", async () => {
    const desired = translate(
      {
        services: [
          { metadata: { name: 'web', namespace: 'shop' }, spec: { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80 }] } },
          { metadata: { name: 'broken', namespace: 'shop' }, spec: { clusterIP: 'not-an-ip', ports: [{ port: 80 }] } },
        ],
        endpointSlices: [
          {
            metadata: { name: 'web-1', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
            addressType: 'IPv4',
            ports: [{ name: 'http', port: 8080 }],
            endpoints: [{ addresses: ['10.244.1.2'] }, { addresses: ['10.244.1.3'] }],
          },
        ],
      },
      { name: 'node-a', addresses: ['192.0.2.1'], families: ['inet'] },
      DEFAULT_SETTINGS,
    );
    const metrics = new ProxyMetrics({ defaultMetrics: false });
    metrics.recordState(desired, 3);
    const families = await exposition(metrics);
    expect(value(families, 'kipvs_virtual_servers')).toBe(desired.virtualServers.size);
    expect(value(families, 'kipvs_virtual_servers')).toBe(1);
    expect(value(families, 'kipvs_real_servers')).toBe(2);
    expect(value(families, 'kipvs_draining_real_servers')).toBe(3);
    expect(value(families, 'kipvs_bound_addresses')).toBe(1);
    expect(value(families, 'kipvs_translation_problems')).toBe(desired.problems.length);
    expect(value(families, 'kipvs_translation_problems')).toBeGreaterThan(0);
    expect(value(families, 'kipvs_ipset_entries', { set: 'KUBE-CLUSTER-IP' })).toBe(1);
    expect(families.get('kipvs_ipset_entries')?.samples.length).toBe(desired.ipsets.size);
  });
});

describe('lastChangeTriggerTime', () => {
  const at = (text: string): number | undefined =>
    lastChangeTriggerTime({ metadata: { name: 's', annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': text } }, addressType: 'IPv4' });

  it("reads RFC 3339 with nanoseconds and offsets, as Go's time.RFC3339Nano", () => {
    expect(at('2025-05-01T12:00:00Z')).toBe(T0);
    expect(at('2025-05-01T12:00:00.123456789Z')).toBeCloseTo(T0 + 123.456789, 6);
    expect(at('2025-05-01T14:00:00+02:00')).toBe(T0);
    expect(at('2025-05-01T11:30:00-00:30')).toBe(T0);
  });

  it('ignores what does not parse', () => {
    for (const text of ['', '2025-05-01', '2025-05-01 12:00:00Z', '2025-05-01T12:00:00', 'now']) expect(at(text), text).toBeUndefined();
  });
});

describe('startMetricsServer', () => {
  const opened: HttpEndpoint[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((endpoint) => endpoint.close()));
  });

  async function start(metrics: ProxyMetrics): Promise<string> {
    const endpoint = await startMetricsServer('127.0.0.1:0', metrics);
    opened.push(endpoint);
    return `http://${endpoint.address}`;
  }

  it('serves the Prometheus text format on /metrics', async () => {
    const metrics = new ProxyMetrics();
    metrics.recordSync({ full: true, durationSeconds: 0.01, succeeded: true });
    const response = await fetch(`${await start(metrics)}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const families = parseExposition(await response.text());
    expect(value(families, 'kubeproxy_sync_full_proxy_rules_duration_seconds_count', { ip_family: 'IPv4' })).toBe(1);
    expect(families.has('process_resident_memory_bytes')).toBe(true);
  });

  it('serves /proxyMode and the apiserver-style /healthz ping as kube-proxy does, and no /livez', async () => {
    const base = await start(new ProxyMetrics({ defaultMetrics: false }));
    const mode = await fetch(`${base}/proxyMode`);
    expect([mode.status, mode.headers.get('content-type'), mode.headers.get('x-content-type-options'), await mode.text()]).toEqual([
      200,
      'text/plain; charset=utf-8',
      'nosniff',
      'ipvs',
    ]);
    const healthz = await fetch(`${base}/healthz`);
    expect([healthz.status, await healthz.text()]).toEqual([200, 'ok']);
    expect(await (await fetch(`${base}/healthz?verbose`)).text()).toBe('[+]ping ok\nhealthz check passed\n');
    expect(await (await fetch(`${base}/healthz/ping`)).text()).toBe('ok');
    const livez = await fetch(`${base}/livez`);
    expect([livez.status, await livez.text()]).toEqual([404, '404 page not found\n']);
  });

  it('reports a port in use naming the metrics address', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      await expect(startMetricsServer(`127.0.0.1:${port}`, new ProxyMetrics({ defaultMetrics: false }))).rejects.toMatchObject({
        code: 'KIPVS_LISTEN',
        message: `listen on 127.0.0.1:${port} for metrics: EADDRINUSE`,
      });
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});
