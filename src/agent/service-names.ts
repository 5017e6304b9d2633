// Which Service port each virtual server serves, and which pod each real server is: recorded by
// the agent beside its state in /run/kipvs (one file per network namespace, replaced whole by a
// rename), so that `kipvs inspect` can name them with the agent stopped. Bounded: at most
// MAX_RECORDED entries of each kind, and written only when a sync changed something.
import { mkdirSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { replaceFileInParts } from '../util/write-all.js';
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

/** The file, as JSON (written in this order, truncated last). */
interface RecordFile {
  readonly version: 1;
  readonly writtenAt: string;
  readonly virtualServers: Record<string, string>;
  readonly pods: Record<string, string>;
  readonly truncated: boolean;
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
      for (const address of endpoint.addresses) visit(canonicalAddress(address) ?? address, namespace, ref.name);
    }
  }
}

/** `namespace/pod` of each endpoint address whose targetRef is a Pod. */
export function podsOfSlices(slices: readonly EndpointSlice[]): [address: string, pod: string][] {
  const pods: [string, string][] = [];
  eachPod(slices, (address, namespace, pod) => pods.push([address, `${namespace}/${pod}`]));
  return pods;
}

/** Where the record's pods come from: the ClusterStore, read when the record is written. */
export interface PodSource {
  serviceIds(): Iterable<string>;
  slicesOf(serviceId: string): readonly EndpointSlice[];
}

/**
 * The record of one network namespace; `record` after each sync, `write` when it changed. It keeps
 * nothing of the cluster between writes but a digest of what it last wrote: the pods are read from
 * the store when the record is made (a copy of them, flat triples of the store's strings, was 5 MB
 * at 10,000 Services; before that a pair and a `namespace/pod` string per endpoint and the last
 * text written were 25 MB).
 */
export class ServiceNamesRecorder {
  private lastWritten = '';
  private readonly writer = new PieceWriter();

  constructor(private readonly path: string) {}

  /** After a sync: the Services it compared (every one after a full sync), the desired state, and the store. */
  record(desired: DesiredState, changedServices: Iterable<string>, pods: PodSource, clock: () => Date = () => new Date()): void {
    const changed = !isEmpty(changedServices);
    if (!changed && this.lastWritten !== '') return;
    // The text is made in pieces, twice at most: once for its digest and, when that changed, once
    // to write it, each piece written into one buffer and handed on. As one object and one string
    // it was 100,000 properties and two copies of a 5 MB text at every endpoint change, and its
    // garbage (which outlived the young generation) was most of a first sync's peak.
    const hash = createHash('sha256');
    this.body(desired, pods, (piece) => hash.update(piece));
    const digest = hash.digest('hex');
    if (digest === this.lastWritten) return;
    mkdirSync(dirname(this.path), { recursive: true });
    replaceFileInParts(this.path, (part) => {
      part(`{"version":1,"writtenAt":${JSON.stringify(clock().toISOString())},`);
      this.body(desired, pods, part);
    });
    this.lastWritten = digest;
  }

  /** The record after its header, `"virtualServers":{...},"pods":{...},"truncated":...}`, in pieces of up to PIECE_BYTES. */
  private body(desired: DesiredState, source: PodSource, take: (piece: Buffer) => void): void {
    const out = this.writer.start(take);
    out.text('"virtualServers":{');
    let count = 0;
    let truncated = false;
    for (const [key, virtualServer] of desired.virtualServers) {
      if (count++ >= MAX_RECORDED) {
        truncated = true;
        break;
      }
      out.property(key, formatServicePortRef(virtualServer.owner));
    }
    out.text('},"pods":{');
    count = 0;
    // One visitor for every Service, not a closure each.
    const visit = (address: string, namespace: string, pod: string): void => {
      if (count++ >= MAX_RECORDED) truncated = true;
      // An address twice: the later one counts, as JSON.parse keeps the last of a repeated key.
      else out.property(address, namespace, '/', pod);
    };
    for (const id of source.serviceIds()) {
      eachPod(source.slicesOf(id), visit);
      if (truncated) break;
    }
    out.text(`},"truncated":${String(truncated)}}`);
    out.flush();
  }
}

const PIECE_BYTES = 64 * 1024;
/** The most bytes UTF-8 takes for one UTF-16 code unit. */
const MAX_BYTES_PER_UNIT = 3;
/** Whether JSON.stringify would escape some of it: a quote, a backslash, a control character, a surrogate (lone ones are escaped). */
function needsEscape(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x22 || code === 0x5c || (code >= 0xd800 && code <= 0xdfff)) return true;
  }
  return false;
}

/**
 * JSON text written into one buffer, handed on whenever it fills: nothing of it outlives a piece.
 * One per recorder, its buffer allocated once. Strings are written into it as they are, quoted,
 * when JSON would not escape them (every Kubernetes name and address): a record of 100,000 pods
 * then makes no string per property (JSON.stringify of key and value and their concatenation,
 * with the canonical text of each address, were 200 MB of garbage per endpoint change at 10,000
 * Services, promoted to the old generation and committed there).
 */
class PieceWriter {
  private readonly buffer = Buffer.allocUnsafe(PIECE_BYTES);
  private length = 0;
  /** The next property is the first of its object. */
  private first = true;
  private take: (piece: Buffer) => void = () => {};

  start(take: (piece: Buffer) => void): this {
    this.take = take;
    this.length = 0;
    this.first = true;
    return this;
  }

  /** Raw text; `{` ends it before an object's first property. */
  text(text: string): void {
    this.write(text);
    this.first = text.endsWith('{');
  }

  /** `"key":"value"`, the value being `value + separator + rest`, written in its parts. */
  property(key: string, value: string, separator = '', rest = ''): void {
    if (!this.first) this.write(',');
    this.first = false;
    if (needsEscape(key) || needsEscape(value) || needsEscape(separator) || needsEscape(rest)) {
      this.write(`${JSON.stringify(key)}:${JSON.stringify(value + separator + rest)}`);
      return;
    }
    this.write('"');
    this.write(key);
    this.write('":"');
    this.write(value);
    this.write(separator);
    this.write(rest);
    this.write('"');
  }

  flush(): void {
    if (this.length > 0) this.take(this.buffer.subarray(0, this.length));
    this.length = 0;
  }

  private write(text: string): void {
    const most = text.length * MAX_BYTES_PER_UNIT;
    if (this.length + most > this.buffer.length) this.flush();
    if (most > this.buffer.length) this.take(Buffer.from(text));
    else this.length += this.buffer.write(text, this.length);
  }
}

/** Records after every sync that took changes in; a failure to write is logged by the daemon. */
export function serviceNamesObserver(recorder: ServiceNamesRecorder): SyncObserver {
  return {
    synced: (result, cluster) => {
      recorder.record(result.desired, result.changes.services, cluster);
    },
  };
}

function isEmpty(values: Iterable<unknown>): boolean {
  for (const _ of values) return false;
  return true;
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
