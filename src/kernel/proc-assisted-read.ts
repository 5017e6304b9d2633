// A full read of the IPVS table at the cost of two: the services over netlink (one dump) and
// /proc/net/ip_vs (one read), instead of one GET_DEST dump per virtual server (12,000 round
// trips at 10,000 Services). Where /proc shows a virtual server's real servers as the caller
// expects them, the expected ones are taken with /proc's connection counts; the others are read
// over netlink. /proc does not show thresholds, tunnel settings or a bypass real server (it prints
// "Masq"), so those are trusted from the expectation, and each virtual server is also read over
// netlink once every FULL_READ_ROUNDS reads, its turn set by its key: a change to one of those
// made behind kipvs's back is found within that many full syncs.
import type { ProcVirtualServer } from '../netlink/ipvs/proc-table.js';
import { formatServiceKey, isFwmarkKey, sameServiceSettings, type IpvsDestination, type IpvsService } from '../netlink/ipvs/types.js';
import { realServerKey, virtualServerKey } from '../model/desired.js';
import type { ObservedState, ObservedVirtualServer } from '../reconcile/state.js';

/** Every virtual server is read over netlink at least once in this many reads (docs/benchmarks.md). */
export const FULL_READ_ROUNDS = 32;

export interface ObserveHint {
  /** What the caller believes the kernel holds (the agent's mirror), as it is when compared. */
  readonly expected: ObservedState;
  /** The read's turn in the rotation: the virtual servers of this turn are read over netlink. */
  readonly round: number;
}

/** The virtual server's turn among FULL_READ_ROUNDS (FNV-1a of its key). */
export function turnOf(key: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % FULL_READ_ROUNDS;
}

/**
 * /proc/net/ip_vs compared with the expectation as it is read (`add` is the parser's sink),
 * keeping only the outcome per virtual server. The parsed table itself (120,000 real servers at
 * 10,000 Services) lived through the whole read, and each young-generation collection meanwhile
 * copied it: pauses of 100–190 ms under UML, which an endpoint change arriving then waited for.
 * The outcomes are keyed by the expectation's own entries, not by a key string made per virtual
 * server: 12,000 strings that lived through the read and were promoted at every full read.
 */
export class ProcConfirmations {
  /** The expected virtual servers /proc confirmed, with their real servers as it confirmed them. */
  private readonly confirmed = new Map<ObservedVirtualServer, ReadonlyMap<string, IpvsDestination>>();
  /** Firewall-mark services as read: their family (part of the key) is not printed. Rare. */
  private readonly byFwmark = new Map<number, ProcVirtualServer[]>();

  constructor(private readonly expected: ObservedState) {}

  readonly add = (shown: ProcVirtualServer): void => {
    if ('fwmark' in shown.key) {
      const marked = this.byFwmark.get(shown.key.fwmark);
      if (marked) marked.push(shown);
      else this.byFwmark.set(shown.key.fwmark, [shown]);
      return;
    }
    const held = this.expected.virtualServers.get(formatServiceKey(shown.key));
    const realServers = held && confirm(shown, held);
    if (held && realServers) this.confirmed.set(held, realServers);
  };

  /**
   * The real servers of `service` as /proc confirmed the expectation, if it did. One whose
   * expectation a sync replaced since /proc was read is not confirmed: it is read over netlink.
   */
  of(service: IpvsService): ReadonlyMap<string, IpvsDestination> | undefined {
    const key = virtualServerKey(service.key);
    if (!isFwmarkKey(service.key)) {
      const held = this.expected.virtualServers.get(key);
      return held && this.confirmed.get(held);
    }
    const marked = this.byFwmark.get(service.key.fwmark);
    return marked?.length === 1 && marked[0] ? confirm(marked[0], this.expected.virtualServers.get(key)) : undefined;
  }
}

/**
 * The expectation's own object for a virtual server read over netlink that equals it in every field
 * (its key, settings, and no counters on either), else the one read. A full read keeps its
 * 12,000 services until it is compared; kept as read, they were promoted at every full read.
 */
export function heldService(expected: ObservedState, read: IpvsService): IpvsService {
  const held = expected.virtualServers.get(virtualServerKey(read.key))?.service;
  return held && held.stats === undefined && read.stats === undefined && sameServiceSettings(held, read) ? held : read;
}

/**
 * The real servers of `service` as /proc confirms the expectation, keyed by realServerKey(), or
 * undefined when they must be read over netlink: a virtual server not expected or not in the
 * table, one whose turn it is, a firewall mark the table shows twice (its family is not printed),
 * or real servers that differ in number, address, port, family, forwarding or weight.
 */
export function confirmedRealServers(service: IpvsService, shown: ProcConfirmations, hint: ObserveHint): ReadonlyMap<string, IpvsDestination> | undefined {
  if (turnOf(virtualServerKey(service.key)) === hint.round % FULL_READ_ROUNDS) return undefined;
  return shown.of(service);
}

function confirm(shown: ProcVirtualServer, expected: ObservedVirtualServer | undefined): ReadonlyMap<string, IpvsDestination> | undefined {
  if (!expected || shown.destinations.length !== expected.realServers.size) return undefined;
  let recounted = false;
  for (const destination of shown.destinations) {
    const wanted = expected.realServers.get(realServerKey(destination));
    if (!wanted || wanted.family !== destination.family || wanted.weight !== destination.weight || wanted.forwarding !== destination.forwarding)
      return undefined;
    recounted ||= (wanted.activeConns ?? 0) !== destination.activeConns || (wanted.inactiveConns ?? 0) !== destination.inactiveConns;
  }
  // The expectation's own map when the counts agree (none known counts as 0, as the diff counts
  // it): no copy of 120,000 real servers at every full read, which the reader only compares.
  if (!recounted) return expected.realServers;
  const realServers = new Map<string, IpvsDestination>();
  for (const destination of shown.destinations) {
    const realKey = realServerKey(destination);
    const wanted = expected.realServers.get(realKey);
    if (wanted) realServers.set(realKey, withCounts(wanted, destination.activeConns, destination.inactiveConns));
  }
  return realServers;
}

/**
 * The expected real server with the counts just read. /proc has no persistent-connection count:
 * the expected one is kept (0 when unknown), as nothing kipvs decides depends on it.
 */
function withCounts(expected: IpvsDestination, activeConns: number, inactiveConns: number): IpvsDestination {
  const { address, port, family, forwarding, weight, upperThreshold, lowerThreshold, tunnelType, tunnelPort, tunnelFlags } = expected;
  return {
    address,
    port,
    family,
    forwarding,
    weight,
    upperThreshold,
    lowerThreshold,
    activeConns,
    inactiveConns,
    persistConns: expected.persistConns ?? 0,
    ...(tunnelType !== undefined ? { tunnelType, tunnelPort: tunnelPort ?? 0, tunnelFlags: tunnelFlags ?? 0 } : {}),
  };
}
