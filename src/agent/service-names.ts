// Which Service port each virtual server serves, and which pod each real server is: recorded by
// the agent beside its state in /run/kipvs (one file per network namespace, replaced whole by a
// rename), so that `kipvs inspect` can name them with the agent stopped. Bounded: at most
// MAX_RECORDED entries of each kind, and written only when a sync changed something.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { canonicalAddress } from '../ip.js';
import { formatServicePortRef, type DesiredState } from '../model/desired.js';
import type { EndpointSlice, Service } from '../model/kubernetes.js';
import { netnsPath } from '../netlink/netns.js';
import type { SyncObserver } from './daemon.js';

/** 10,000 Services with a NodePort on a few addresses and ten endpoints each fit. */
export const MAX_RECORDED = 200_000;

/** Names by virtual server key (`TCP 10.96.0.1:80`) and by real server address. */
export interface ServiceNames {
  /** `namespace/name:port` by virtualServerKey(). */
  readonly virtualServers: ReadonlyMap<string, string>;
  /** By `TCP 30080`: NodePorts, when the node's addresses are not known (names from the API server). */
  readonly nodePorts: ReadonlyMap<string, string>;
  /** `namespace/pod` by canonical address. */
  readonly pods: ReadonlyMap<string, string>;
  /** Where the names came from, for the reader. */
  readonly source: string;
  /** More than MAX_RECORDED: some are missing. */
  readonly truncated: boolean;
}

interface RecordFile {
  readonly version: 1;
  readonly writtenAt: string;
  readonly truncated: boolean;
  readonly virtualServers: Record<string, string>;
  readonly pods: Record<string, string>;
}

/** Beside the ownership state, with the same per-namespace suffix (by the namespace's path). */
export function serviceNamesPath(netns: string | undefined, directory = '/run/kipvs'): string {
  const suffix = netns ? `-${createHash('sha256').update(netnsPath(netns)).digest('hex').slice(0, 12)}` : '';
  return join(directory, `service-names${suffix}.json`);
}

/** Each endpoint address whose targetRef is a Pod, with the pod's namespace and name. */
function eachPod(slices: readonly EndpointSlice[], visit: (address: string, namespace: string, pod: string) => void): void {
  for (const slice of slices) {
    for (const endpoint of slice.endpoints ?? []) {
      const ref = endpoint.targetRef;
      if (ref?.kind !== 'Pod' || !ref.name) continue;
      const namespace = ref.namespace ?? slice.metadata.namespace ?? 'default';
      for (const address of endpoint.addresses) {
        const canonical = canonicalAddress(address) ?? address;
        // The store's own string when it is canonical already, rather than an equal copy.
        visit(canonical === address ? address : canonical, namespace, ref.name);
      }
    }
  }
}

/** `namespace/pod` of each endpoint address whose targetRef is a Pod. */
export function podsOfSlices(slices: readonly EndpointSlice[]): [address: string, pod: string][] {
  const pods: [string, string][] = [];
  eachPod(slices, (address, namespace, pod) => pods.push([address, `${namespace}/${pod}`]));
  return pods;
}

/**
 * The record of one network namespace; `record` after each sync, `write` when it changed. Between
 * writes it keeps each Service's pods as flat (address, namespace, name) triples of the store's own
 * strings, and a digest of what it last wrote: a pair and a `namespace/pod` string per endpoint
 * and the last text written were 25 MB at 10,000 Services.
 */
export class ServiceNamesRecorder {
  private readonly podsByService = new Map<string, readonly string[]>();
  private lastWritten = '';

  constructor(private readonly path: string) {}

  /** After a sync: the Services it compared (every one after a full sync) and the desired state. */
  record(
    desired: DesiredState,
    changedServices: Iterable<string>,
    slicesOf: (serviceId: string) => readonly EndpointSlice[],
    clock: () => Date = () => new Date(),
  ): void {
    let changed = false;
    for (const id of changedServices) {
      changed = true;
      const triples: string[] = [];
      eachPod(slicesOf(id), (address, namespace, pod) => triples.push(address, namespace, pod));
      if (triples.length > 0) this.podsByService.set(id, triples);
      else this.podsByService.delete(id);
    }
    if (!changed && this.lastWritten !== '') return;
    const virtualServers: Record<string, string> = {};
    const pods: Record<string, string> = {};
    let count = 0;
    let truncated = false;
    for (const [key, virtualServer] of desired.virtualServers) {
      if (count++ >= MAX_RECORDED) {
        truncated = true;
        break;
      }
      virtualServers[key] = formatServicePortRef(virtualServer.owner);
    }
    count = 0;
    outer: for (const triples of this.podsByService.values()) {
      for (let i = 0; i + 2 < triples.length; i += 3) {
        if (count++ >= MAX_RECORDED) {
          truncated = true;
          break outer;
        }
        pods[triples[i] ?? ''] = `${triples[i + 1] ?? ''}/${triples[i + 2] ?? ''}`;
      }
    }
    const body = JSON.stringify({ truncated, virtualServers, pods });
    const digest = createHash('sha256').update(body).digest('hex');
    if (digest === this.lastWritten) return;
    const record: RecordFile = { version: 1, writtenAt: clock().toISOString(), truncated, virtualServers, pods };
    mkdirSync(dirname(this.path), { recursive: true });
    writeFileSync(`${this.path}.tmp`, JSON.stringify(record));
    renameSync(`${this.path}.tmp`, this.path);
    this.lastWritten = digest;
  }
}

/** Records after every sync that took changes in; a failure to write is logged by the daemon. */
export function serviceNamesObserver(recorder: ServiceNamesRecorder): SyncObserver {
  return {
    synced: (result, cluster) => {
      recorder.record(result.desired, result.changes.services, (id) => cluster.slicesOf(id));
    },
  };
}

/** The agent's record, or undefined when there is none (never run in this namespace, or /run cleared). */
export function readServiceNamesRecord(path: string): ServiceNames | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const parsed = JSON.parse(text) as Partial<RecordFile>;
  const strings = (value: unknown): Map<string, string> =>
    new Map(
      Object.entries(typeof value === 'object' && value !== null ? value : {}).filter((entry): entry is [string, string] => typeof entry[1] === 'string'),
    );
  return {
    virtualServers: strings(parsed.virtualServers),
    nodePorts: new Map(),
    pods: strings(parsed.pods),
    source: `the agent's record ${path}, written ${String(parsed.writtenAt)}`,
    truncated: parsed.truncated === true,
  };
}

const familyAddress = (address: string): string => (address.includes(':') ? `[${address}]` : address);

/**
 * Names from Service and EndpointSlice objects (the API server's): the virtual servers kube-proxy
 * and kipvs make for each port, on the ClusterIPs, external IPs and load balancer IPs, and its
 * NodePort on whatever node address.
 */
export function serviceNamesFromObjects(services: readonly Service[], slices: readonly EndpointSlice[], source: string): ServiceNames {
  const virtualServers = new Map<string, string>();
  const nodePorts = new Map<string, string>();
  for (const service of services) {
    const { name, namespace = 'default' } = service.metadata;
    const spec = service.spec ?? {};
    const addresses = [
      ...(spec.clusterIPs ?? (spec.clusterIP ? [spec.clusterIP] : [])),
      ...(spec.externalIPs ?? []),
      ...(service.status?.loadBalancer?.ingress ?? []).flatMap((ingress) => (ingress.ip ? [ingress.ip] : [])),
    ].flatMap((address) => {
      const canonical = canonicalAddress(address);
      return canonical ? [canonical] : [];
    });
    for (const port of spec.ports ?? []) {
      const protocol = port.protocol ?? 'TCP';
      const ref = formatServicePortRef({ namespace, name, port: port.name || String(port.port) });
      for (const address of addresses) virtualServers.set(`${protocol} ${familyAddress(address)}:${port.port}`, ref);
      if (port.nodePort) nodePorts.set(`${protocol} ${port.nodePort}`, ref);
    }
  }
  return { virtualServers, nodePorts, pods: new Map(podsOfSlices(slices)), source, truncated: false };
}
