// Traffic per Service port, from the counters IPVS keeps for each virtual server and real server
// (what `ipvsadm -Ln --stats` shows), read when Prometheus scrapes. kube-proxy has no such metrics
// (kubernetes#55838 and others asked for them). One read of the table serves every metric of a
// scrape, and scrapes closer together than MIN_READ_INTERVAL_MS share one read and its rendered
// text: a scrape storm costs the kernel one dump and the agent one rendering per interval,
// whatever its size (60,000 series at 10,000 Services).
import type { Logger } from 'pino';
import { Counter, Gauge, Registry } from 'prom-client';
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

/** The per-Service metrics, in a registry of their own; each interval reads the table and renders it once. */
export function serviceTrafficExposition(options: ServiceTrafficOptions): ServiceTrafficExposition {
  const { minIntervalMs = MIN_READ_INTERVAL_MS, clock = () => performance.now() } = options;
  const registry = new Registry();
  let cached: { readonly at: number; readonly sample: Promise<TrafficSample> } | undefined;
  const readDuration = new Gauge({
    name: 'kipvs_service_traffic_read_seconds',
    help: 'How long the last read of the IPVS counters for the per-Service metrics took',
    registers: [registry],
  });
  const sample = (): Promise<TrafficSample> => {
    const now = clock();
    if (cached && now - cached.at < minIntervalMs) return cached.sample;
    const started = performance.now();
    const read = options.read().then(
      (table) => {
        readDuration.set((performance.now() - started) / 1000);
        return foldByServicePort(table, options.ownerOf);
      },
      (error: unknown) => {
        options.onError?.(error instanceof Error ? error : new Error(String(error)));
        return EMPTY;
      },
    );
    cached = { at: now, sample: read };
    return read;
  };
  const labelNames: ServiceLabel[] = ['namespace', 'service', 'port', 'protocol'];
  const counter = (name: string, help: string, value: (port: PortTraffic) => number): void => {
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      async collect() {
        const { ports } = await sample();
        this.reset();
        for (const port of ports) this.inc(port.labels, value(port));
      },
    });
  };
  counter('kipvs_service_connections_total', 'Connections IPVS scheduled for the Service port (sum over its virtual servers)', (p) => p.conns);
  counter('kipvs_service_in_packets_total', 'Packets from clients to the Service port', (p) => p.inPackets);
  counter('kipvs_service_out_packets_total', 'Packets from the Service port back to clients', (p) => p.outPackets);
  counter('kipvs_service_in_bytes_total', 'Bytes from clients to the Service port', (p) => p.inBytes);
  counter('kipvs_service_out_bytes_total', 'Bytes from the Service port back to clients', (p) => p.outBytes);
  const gauge = (name: string, help: string, value: (endpoint: EndpointConnections) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: [...labelNames, 'endpoint'],
      registers: [registry],
      async collect() {
        const { endpoints } = await sample();
        this.reset();
        for (const endpoint of endpoints) this.set(endpoint.labels, value(endpoint));
      },
    });
  };
  if (options.perEndpoint === true) {
    gauge('kipvs_service_endpoint_active_connections', 'Established connections IPVS holds to the endpoint for the Service port', (e) => e.active);
    gauge('kipvs_service_endpoint_inactive_connections', 'Other connections (closing, UDP) IPVS holds to the endpoint for the Service port', (e) => e.inactive);
  }
  // The text of the sample it was rendered from: every collect() above awaits sample(), which
  // within the interval is the same read, so the same text.
  let rendered: { readonly sample: Promise<TrafficSample>; readonly text: Promise<string> } | undefined;
  return () => {
    const current = sample();
    if (rendered?.sample !== current) rendered = { sample: current, text: registry.metrics() };
    return rendered.text;
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
