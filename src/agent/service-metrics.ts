// Traffic per Service port, from the counters IPVS keeps for each virtual server and real server
// (what `ipvsadm -Ln --stats` shows), read when Prometheus scrapes. kube-proxy has no such metrics
// (kubernetes#55838 and others asked for them). One read of the table serves every metric of a
// scrape, and scrapes closer together than MIN_READ_INTERVAL_MS share one read and its rendered
// text: a scrape storm costs the kernel one dump and the agent one rendering per interval,
// whatever its size (60,000 series at 10,000 Services).
import { asError } from '../errors.js';
import type { Logger } from 'pino';
import type { DesiredState, ServicePortRef } from '../model/desired.js';
import { virtualServerKey } from '../model/desired.js';
import { formatHostPort } from '../ip.js';
import { IpvsClient, type IpvsServiceWithDestinations } from '../netlink/ipvs/client.js';
import { isFwmarkKey } from '../netlink/ipvs/types.js';
import type { SyncObserver } from './daemon.js';
import type { ProxyMetrics } from './metrics.js';

export const MIN_READ_INTERVAL_MS = 5000;

type ServiceLabel = 'namespace' | 'service' | 'port' | 'protocol';
type Labels = Record<ServiceLabel, string>;

interface PortTraffic {
  readonly labels: Labels;
  conns: number;
  inPackets: number;
  outPackets: number;
  inBytes: number;
  outBytes: number;
}

interface EndpointConnections {
  readonly labels: Labels & { endpoint: string };
  active: number;
  inactive: number;
}

/** The table folded by Service port: counters summed over its virtual servers (ClusterIP, NodePorts, external and load balancer IPs). */
export interface TrafficSample {
  readonly ports: readonly PortTraffic[];
  readonly endpoints: readonly EndpointConnections[];
}

export function foldByServicePort(
  table: readonly IpvsServiceWithDestinations[],
  ownerOf: (virtualServerKey: string) => ServicePortRef | undefined,
): TrafficSample {
  const ports = new Map<string, PortTraffic>();
  const endpoints = new Map<string, EndpointConnections>();
  for (const { service, destinations } of table) {
    const owner = ownerOf(virtualServerKey(service.key));
    if (!owner) continue; // not a Service's: someone else's virtual server
    const labels: Labels = {
      namespace: owner.namespace,
      service: owner.name,
      port: owner.port,
      protocol: isFwmarkKey(service.key) ? 'fwmark' : service.key.protocol,
    };
    const id = `${labels.namespace}/${labels.service}:${labels.port}/${labels.protocol}`;
    let port = ports.get(id);
    if (!port) ports.set(id, (port = { labels, conns: 0, inPackets: 0, outPackets: 0, inBytes: 0, outBytes: 0 }));
    const stats = service.stats;
    if (stats) {
      port.conns += stats.conns;
      port.inPackets += stats.inPackets;
      port.outPackets += stats.outPackets;
      port.inBytes += stats.inBytes;
      port.outBytes += stats.outBytes;
    }
    for (const destination of destinations) {
      const endpoint = formatHostPort(destination.address, destination.port);
      let entry = endpoints.get(`${id} ${endpoint}`);
      if (!entry) endpoints.set(`${id} ${endpoint}`, (entry = { labels: { ...labels, endpoint }, active: 0, inactive: 0 }));
      entry.active += destination.activeConns ?? 0;
      entry.inactive += destination.inactiveConns ?? 0;
    }
  }
  return { ports: [...ports.values()], endpoints: [...endpoints.values()] };
}

export interface ServiceTrafficOptions {
  /** The IPVS table with counters. */
  readonly read: () => Promise<readonly IpvsServiceWithDestinations[]>;
  readonly ownerOf: (virtualServerKey: string) => ServicePortRef | undefined;
  readonly minIntervalMs?: number;
  readonly clock?: () => number;
  readonly onError?: (error: Error) => void;
  /**
   * Also the connections per endpoint (--metrics-per-endpoint): a series per real server,
   * 200,000 at 10,000 Services × 10 endpoints, too many to render on every scrape by default.
   */
  readonly perEndpoint?: boolean;
}

const EMPTY: TrafficSample = { ports: [], endpoints: [] };

/** The per-Service metrics' part of a scrape: Prometheus text, appended to the agent's own. */
export type ServiceTrafficExposition = () => Promise<string>;

interface Metric<T> {
  readonly name: string;
  readonly help: string;
  readonly value: (entry: T) => number;
}

const PORT_COUNTERS: ReadonlyArray<Metric<PortTraffic>> = [
  { name: 'kipvs_service_connections_total', help: 'Connections IPVS scheduled for the Service port (sum over its virtual servers)', value: (p) => p.conns },
  { name: 'kipvs_service_in_packets_total', help: 'Packets from clients to the Service port', value: (p) => p.inPackets },
  { name: 'kipvs_service_out_packets_total', help: 'Packets from the Service port back to clients', value: (p) => p.outPackets },
  { name: 'kipvs_service_in_bytes_total', help: 'Bytes from clients to the Service port', value: (p) => p.inBytes },
  { name: 'kipvs_service_out_bytes_total', help: 'Bytes from the Service port back to clients', value: (p) => p.outBytes },
];

const ENDPOINT_GAUGES: ReadonlyArray<Metric<EndpointConnections>> = [
  {
    name: 'kipvs_service_endpoint_active_connections',
    help: 'Established connections IPVS holds to the endpoint for the Service port',
    value: (e) => e.active,
  },
  {
    name: 'kipvs_service_endpoint_inactive_connections',
    help: 'Other connections (closing, UDP) IPVS holds to the endpoint for the Service port',
    value: (e) => e.inactive,
  },
];

/** A label value as the text format wants it: backslash, double quote and newline escaped. */
const escapeLabelValue = (value: string): string => value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));

const labelText = (labels: Readonly<Record<string, string>>): string =>
  `{${Object.entries(labels)
    .map(([name, value]) => `${name}="${escapeLabelValue(value)}"`)
    .join(',')}}`;

function family<T extends { readonly labels: Readonly<Record<string, string>> }>(
  type: 'counter' | 'gauge',
  metric: Metric<T>,
  entries: readonly T[],
  labels: readonly string[],
): string {
  const lines = [`# HELP ${metric.name} ${metric.help}`, `# TYPE ${metric.name} ${type}`];
  entries.forEach((entry, index) => lines.push(`${metric.name}${labels[index] ?? ''} ${String(metric.value(entry))}`));
  return `${lines.join('\n')}\n`;
}

/**
 * The sample in the Prometheus text format, written here rather than through prom-client's
 * Counter and Gauge: those build a labelled object per series at every collect, and rendered the
 * 50,000 series of 10,000 Services in about 4 s of CPU in the sandbox, where this takes 0.8 s.
 * Each series' labels are formatted once per read, not once per metric.
 */
export function renderTrafficSample(sample: TrafficSample, readSeconds: number, perEndpoint: boolean): string {
  const parts = [
    family(
      'gauge',
      {
        name: 'kipvs_service_traffic_read_seconds',
        help: 'How long the last read of the IPVS counters for the per-Service metrics took',
        value: () => readSeconds,
      },
      [{ labels: {} }],
      [],
    ),
  ];
  const portLabels = sample.ports.map((port) => labelText(port.labels));
  for (const metric of PORT_COUNTERS) parts.push(family('counter', metric, sample.ports, portLabels));
  if (perEndpoint) {
    const endpointLabels = sample.endpoints.map((endpoint) => labelText(endpoint.labels));
    for (const metric of ENDPOINT_GAUGES) parts.push(family('gauge', metric, sample.endpoints, endpointLabels));
  }
  return parts.join('\n');
}

/** The per-Service metrics; each interval reads the table and renders it once, and its scrapes share that text. */
export function serviceTrafficExposition(options: ServiceTrafficOptions): ServiceTrafficExposition {
  const { minIntervalMs = MIN_READ_INTERVAL_MS, clock = () => performance.now() } = options;
  let cached: { readonly at: number; readonly text: Promise<string> } | undefined;
  return () => {
    const now = clock();
    if (cached && now - cached.at < minIntervalMs) return cached.text;
    const started = performance.now();
    const text = options.read().then(
      (table) => renderTrafficSample(foldByServicePort(table, options.ownerOf), (performance.now() - started) / 1000, options.perEndpoint === true),
      (error: unknown) => {
        options.onError?.(asError(error));
        return renderTrafficSample(EMPTY, (performance.now() - started) / 1000, options.perEndpoint === true);
      },
    );
    const entry = { at: now, text };
    cached = entry;
    // Forgotten once it can no longer be shared: kept until the next scrape, the text of 10,000
    // Services (5 MB) would stay in the heap between scrapes for nothing.
    setTimeout(() => {
      if (cached === entry) cached = undefined;
    }, minIntervalMs).unref();
    return text;
  };
}

/**
 * The table the metrics need. The per-port counters need the virtual servers alone: one dump.
 * Real servers take a dump per virtual server (12,000 at 10,000 Services), read only for the
 * per-endpoint gauges.
 */
export async function readTraffic(client: IpvsClient, perEndpoint: boolean): Promise<readonly IpvsServiceWithDestinations[]> {
  if (perEndpoint) return client.snapshot({ withStats: true });
  return (await client.listServices({ withStats: true })).map((service) => ({ service, destinations: [] }));
}

/** The agent's wiring: the metrics in `metrics`' scrapes, named by the desired state of the last sync. */
export function serviceTrafficObserver(metrics: ProxyMetrics, netns: string | undefined, log: Logger, perEndpoint = false): SyncObserver {
  let desired: DesiredState | undefined;
  const exposition = serviceTrafficExposition({
    perEndpoint,
    read: async () => {
      const client = await IpvsClient.open(netns ? { netns } : {});
      try {
        return await readTraffic(client, perEndpoint);
      } finally {
        client.close();
      }
    },
    ownerOf: (key) => desired?.virtualServers.get(key)?.owner,
    onError: (error) => {
      log.error({ err: error.message }, 'reading the IPVS counters for the per-Service metrics');
    },
  });
  metrics.addExposition(exposition);
  return {
    synced: (result) => {
      desired = result.desired;
    },
  };
}
