// Per-Service traffic metrics: the IPVS counters folded by Service port, one read per interval.
import { describe, expect, it } from 'vitest';
import { foldByServicePort, renderTrafficSample, serviceTrafficExposition } from '../../../src/agent/service-metrics.js';
import { parseExposition } from '../../support/prometheus.js';
import { realServer } from '../../support/ipvs-objects.js';
import { ProxyMetrics } from '../../../src/agent/metrics.js';
import type { IpvsServiceWithDestinations } from '../../../src/netlink/ipvs/client.js';
import type { IpvsStats } from '../../../src/netlink/ipvs/types.js';

const stats = (conns: number, inPackets: number, outPackets: number, inBytes: number, outBytes: number): IpvsStats => ({
  conns,
  inPackets,
  outPackets,
  inBytes,
  outBytes,
  cps: 0,
  inPps: 0,
  outPps: 0,
  inBps: 0,
  outBps: 0,
});
const virtualServer = (address: string, port: number, s: IpvsStats, active: number, inactive: number): IpvsServiceWithDestinations => ({
  service: { key: { family: 'inet', protocol: 'TCP', address, port }, scheduler: 'rr', flags: 0, timeout: 0, netmask: 32, stats: s },
  destinations: [realServer('10.244.1.2', { activeConns: active, inactiveConns: inactive })],
});
const table = [
  virtualServer('10.96.0.10', 80, stats(3, 30, 20, 3000, 9000), 1, 2),
  virtualServer('192.0.2.1', 30080, stats(2, 10, 5, 1000, 500), 1, 0),
  virtualServer('10.0.0.99', 80, stats(7, 7, 7, 7, 7), 0, 0), // not a Service's
];
const owners = new Map([
  ['TCP 10.96.0.10:80', { namespace: 'shop', name: 'web', port: 'http' }],
  ['TCP 192.0.2.1:30080', { namespace: 'shop', name: 'web', port: 'http' }],
]);

describe('per-Service traffic metrics', () => {
  it("sums a Service port's virtual servers (ClusterIP and NodePort) and leaves out others' virtual servers", () => {
    const sample = foldByServicePort(table, (key) => owners.get(key));
    expect(sample.ports).toEqual([
      { labels: { namespace: 'shop', service: 'web', port: 'http', protocol: 'TCP' }, conns: 5, inPackets: 40, outPackets: 25, inBytes: 4000, outBytes: 9500 },
    ]);
    expect(sample.endpoints).toEqual([
      { labels: { namespace: 'shop', service: 'web', port: 'http', protocol: 'TCP', endpoint: '10.244.1.2:8080' }, active: 2, inactive: 2 },
    ]);
  });

  it('reads the table once for a whole scrape and for every scrape within the interval', async () => {
    let reads = 0;
    let now = 0;
    const exposition = serviceTrafficExposition({
      read: () => Promise.resolve((reads++, table)),
      ownerOf: (key) => owners.get(key),
      minIntervalMs: 5000,
      clock: () => now,
      perEndpoint: true,
    });
    const scrapes = await Promise.all([exposition(), exposition(), exposition()]);
    expect(reads).toBe(1);
    expect(scrapes[0]).toContain('kipvs_service_connections_total{namespace="shop",service="web",port="http",protocol="TCP"} 5');
    expect(scrapes[0]).toContain('kipvs_service_out_bytes_total{namespace="shop",service="web",port="http",protocol="TCP"} 9500');
    expect(scrapes[0]).toContain(
      'kipvs_service_endpoint_active_connections{namespace="shop",service="web",port="http",protocol="TCP",endpoint="10.244.1.2:8080"} 2',
    );
    now = 4999;
    await exposition();
    expect(reads).toBe(1);
    now = 5000;
    await exposition();
    expect(reads).toBe(2);
  });

  it("renders once per read, and its text ends the agent's scrape", async () => {
    let now = 0;
    let conns = 5;
    const exposition = serviceTrafficExposition({
      read: () => Promise.resolve([virtualServer('10.96.0.10', 80, stats(conns++, 0, 0, 0, 0), 0, 0)]),
      ownerOf: (key) => owners.get(key),
      clock: () => now,
    });
    const metrics = new ProxyMetrics({ defaultMetrics: false });
    metrics.addExposition(exposition);
    const first = (await metrics.exposition()).body;
    expect(first).toMatch(/^# HELP kubeproxy_/);
    expect(first).toContain('\nkipvs_service_connections_total{namespace="shop",service="web",port="http",protocol="TCP"} 5\n');
    expect(first.indexOf('# HELP kipvs_service_')).toBeGreaterThan(first.lastIndexOf('# HELP kubeproxy_'));
    // The same string object: rendered once for the interval, not once per scrape.
    expect(await exposition()).toBe(await exposition());
    now = 5000;
    expect(await exposition()).toContain('kipvs_service_connections_total{namespace="shop",service="web",port="http",protocol="TCP"} 6');
  });

  it('writes the text format strictly, escaping label values, for the whole agent scrape', async () => {
    const odd = { namespace: 'a"b', service: 'back\\slash', port: 'new\nline', protocol: 'TCP' };
    const text = renderTrafficSample(
      {
        ports: [{ labels: odd, conns: 1, inPackets: 2, outPackets: 3, inBytes: 4, outBytes: 5 }],
        endpoints: [{ labels: { ...odd, endpoint: '[fd00::1]:80' }, active: 6, inactive: 7 }],
      },
      0.25,
      true,
    );
    const families = parseExposition(text);
    expect(families.get('kipvs_service_out_bytes_total')).toEqual({
      type: 'counter',
      help: 'Bytes from the Service port back to clients',
      samples: [
        { name: 'kipvs_service_out_bytes_total', labels: { namespace: 'a\\"b', service: 'back\\\\slash', port: 'new\\nline', protocol: 'TCP' }, value: 5 },
      ],
    });
    expect(families.get('kipvs_service_endpoint_inactive_connections')?.samples.map((sample) => [sample.labels.endpoint, sample.value])).toEqual([
      ['[fd00::1]:80', 7],
    ]);
    expect(families.get('kipvs_service_traffic_read_seconds')?.samples[0]?.value).toBe(0.25);

    const metrics = new ProxyMetrics();
    metrics.addExposition(
      serviceTrafficExposition({ read: () => Promise.resolve(table), ownerOf: (key) => owners.get(key), clock: () => 0, perEndpoint: true }),
    );
    const scraped = parseExposition((await metrics.exposition()).body);
    expect(scraped.get('kipvs_service_connections_total')?.samples.map((sample) => sample.value)).toEqual([5]);
    expect(scraped.get('process_cpu_seconds_total')?.type).toBe('counter');
  });

  it('exports the per-endpoint gauges only when asked (--metrics-per-endpoint)', async () => {
    const exposition = serviceTrafficExposition({ read: () => Promise.resolve(table), ownerOf: (key) => owners.get(key), clock: () => 0 });
    const text = await exposition();
    expect(text).toContain('kipvs_service_connections_total{namespace="shop",service="web",port="http",protocol="TCP"} 5');
    expect(text).not.toContain('kipvs_service_endpoint_');
  });

  it('shows no Service series when the read fails, says why, and does not retry within the interval', async () => {
    let reads = 0;
    const errors: string[] = [];
    const exposition = serviceTrafficExposition({
      read: () => (reads++, Promise.reject(new Error('IPVS is not available'))),
      ownerOf: (key) => owners.get(key),
      clock: () => 0,
      onError: (error) => {
        errors.push(error.message);
      },
    });
    const text = await exposition();
    await exposition();
    expect(text).not.toContain('kipvs_service_connections_total{');
    expect(errors).toEqual(['IPVS is not available']);
    expect(reads).toBe(1);
  });
});
