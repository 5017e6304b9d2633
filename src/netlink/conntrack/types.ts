// Public conntrack types, named after the kernel's concepts: an entry (struct nf_conn) with the
// tuple of each direction. For a flow that IPVS masquerades with net.ipv4.vs.conntrack=1, the
// original tuple is client -> virtual address and the reply tuple real server -> client:
// ip_vs_update_conntrack() rewrites the reply with nf_conntrack_alter_reply() and sets no
// IPS_DST_NAT bit, so the flows to a real server are told by their reply source, not their status.
import { canonicalAddress, formatHostPort, type AddressFamily } from '../../ip.js';
import type { RawAttribute } from '../attributes.js';
import type { NetlinkRequestError } from '../errors.js';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE } from './wire.js';

/** The ICMP key of a tuple (ICMP or ICMPv6 by the tuple's protocol). */
export interface IcmpKey {
  readonly id: number;
  readonly type: number;
  readonly code: number;
}

/** One direction of a flow. Ports for TCP, UDP, SCTP and the like; `icmp` for ICMP and ICMPv6. */
export interface ConntrackTuple {
  readonly source: string;
  readonly destination: string;
  /** The IPPROTO_* number (IPPROTO_UDP = 17). */
  readonly protocol: number;
  readonly sourcePort?: number;
  readonly destinationPort?: number;
  readonly icmp?: IcmpKey;
  /** CTA_TUPLE_ZONE, for a zone of one direction only. */
  readonly zone?: number;
}

export interface ConntrackEntry {
  readonly family: AddressFamily;
  readonly original: ConntrackTuple;
  readonly reply: ConntrackTuple;
  /** The kernel's id of the entry: a delete that carries it removes this entry and no later one. */
  readonly id?: number;
  /** IPS_* bits. */
  readonly status?: number;
  /** Seconds left. */
  readonly timeout?: number;
  readonly mark?: number;
  readonly use?: number;
  /** CTA_ZONE: the entry's conntrack zone, when not the default 0. */
  readonly zone?: number;
  /** Attributes kipvs does not read (counters, protocol state, timestamps, labels), byte for byte. */
  readonly unknown?: readonly RawAttribute[];
}

/** Conditions on one tuple; every field given must match. */
export interface TupleMatch {
  readonly source?: string;
  readonly destination?: string;
  readonly sourcePort?: number;
  readonly destinationPort?: number;
}

/** What `list` returns: entries of one family (or all), of one protocol, matching both tuples. */
export interface ConntrackFilter {
  readonly family?: AddressFamily;
  readonly protocol?: number;
  readonly original?: TupleMatch;
  readonly reply?: TupleMatch;
}

/**
 * The UDP flows through one virtual server to one of its real servers, as kube-proxy clears them
 * (pkg/proxy/conntrack/cleanup.go: original destination = service IP:port, reply source =
 * endpoint IP); kipvs also matches the endpoint's port, as `--reply-port-src` does.
 */
export interface UdpFlowTarget {
  readonly family: AddressFamily;
  readonly virtualAddress: string;
  readonly virtualPort: number;
  readonly endpointAddress: string;
  readonly endpointPort: number;
}

/** The outcome of deleting one entry: an entry that was already gone counts as done. */
export type ConntrackDeleteOutcome = { readonly ok: true; readonly deleted: boolean } | { readonly ok: false; readonly error: NetlinkRequestError };

/** The outcome of deleting the flows of one target: how many entries the kernel deleted. */
export type UdpFlowOutcome = { readonly ok: true; readonly deleted: number } | { readonly ok: false; readonly error: NetlinkRequestError };

const protocolNames = new Map<number, string>([
  [IPPROTO_ICMP, 'icmp'],
  [IPPROTO_TCP, 'tcp'],
  [IPPROTO_UDP, 'udp'],
  [IPPROTO_ICMPV6, 'icmpv6'],
  [IPPROTO_SCTP, 'sctp'],
  [IPPROTO_UDPLITE, 'udplite'],
]);

/** `udp`, `tcp`, or the number for a protocol kipvs does not name, as conntrack -L prints it. */
export const formatProtocol = (protocol: number): string => protocolNames.get(protocol) ?? String(protocol);

function formatEndpoint(address: string, port: number | undefined): string {
  return port === undefined ? address : formatHostPort(address, port);
}

/** `udp 10.200.0.2:40001 -> 10.96.0.10:53`, `icmp 10.0.0.1 -> 10.0.0.2 type 8 code 0 id 7`. */
export function formatTuple(tuple: ConntrackTuple): string {
  const text = `${formatProtocol(tuple.protocol)} ${formatEndpoint(tuple.source, tuple.sourcePort)} -> ${formatEndpoint(tuple.destination, tuple.destinationPort)}`;
  return tuple.icmp ? `${text} type ${tuple.icmp.type} code ${tuple.icmp.code} id ${tuple.icmp.id}` : text;
}

/** `delete conntrack entry udp 10.200.0.2:40001 -> 10.96.0.10:53 (reply from 10.201.0.2:5353)`. */
export function describeEntryDeletion(entry: ConntrackEntry): string {
  return `delete conntrack entry ${formatTuple(entry.original)} (reply from ${formatEndpoint(entry.reply.source, entry.reply.sourcePort)})`;
}

/** `delete UDP flows to 10.244.1.2:53 of UDP 10.96.0.10:53`: one formatting for plans, logs and errors. */
export function describeUdpFlowDeletion(target: UdpFlowTarget): string {
  return `delete UDP flows to ${formatHostPort(target.endpointAddress, target.endpointPort)} of UDP ${formatHostPort(target.virtualAddress, target.virtualPort)}`;
}

const sameAddress = (wanted: string | undefined, actual: string): boolean => wanted === undefined || (canonicalAddress(wanted) ?? wanted) === actual;

function tupleMatches(tuple: ConntrackTuple, match: TupleMatch | undefined): boolean {
  if (!match) return true;
  return (
    sameAddress(match.source, tuple.source) &&
    sameAddress(match.destination, tuple.destination) &&
    (match.sourcePort === undefined || match.sourcePort === tuple.sourcePort) &&
    (match.destinationPort === undefined || match.destinationPort === tuple.destinationPort)
  );
}

/** Whether an entry passes a filter; addresses compare in canonical form, whatever their spelling. */
export function matchesFilter(entry: ConntrackEntry, filter: ConntrackFilter): boolean {
  return (
    (filter.family === undefined || filter.family === entry.family) &&
    (filter.protocol === undefined || filter.protocol === entry.original.protocol) &&
    tupleMatches(entry.original, filter.original) &&
    tupleMatches(entry.reply, filter.reply)
  );
}

/** The filter that selects a target's flows: UDP, to the virtual address:port, answered by the endpoint. */
export function udpFlowFilter(target: UdpFlowTarget): ConntrackFilter {
  return {
    family: target.family,
    protocol: IPPROTO_UDP,
    original: { destination: target.virtualAddress, destinationPort: target.virtualPort },
    reply: { source: target.endpointAddress, sourcePort: target.endpointPort },
  };
}
