// What the kernel has, as read back (observed), and the operations that change it (a plan).
// Plain data: --dry-run prints a plan, tests compare plans, the fake kernel applies them.
import type { DestinationKey, IpvsDestination, IpvsOperation, IpvsService, ServiceKeyByAddress } from '../netlink/ipvs/types.js';
import type { IpsetEntry, IpsetSetSpec } from '../netlink/ipset/types.js';

export interface ObservedVirtualServer {
  readonly service: IpvsService;
  /** Keyed by realServerKey(). */
  readonly realServers: ReadonlyMap<string, IpvsDestination>;
}

export interface ObservedIpset {
  readonly spec: IpsetSetSpec;
  /** Keyed by ipsetEntryKey(). */
  readonly entries: ReadonlyMap<string, IpsetEntry>;
}

export interface ObservedState {
  readonly dummyInterfaceExists: boolean;
  /** Every virtual server in the namespace, ours or not; keyed by virtualServerKey(). */
  readonly virtualServers: ReadonlyMap<string, ObservedVirtualServer>;
  /** Addresses on the dummy interface (IPv6 link-local left out). */
  readonly boundAddresses: ReadonlySet<string>;
  /** The kube-proxy ipsets that exist, by name. */
  readonly ipsets: ReadonlyMap<string, ObservedIpset>;
  /**
   * kube-proxy-named sets that exist but that kipvs cannot read (a type it does not decode, such
   * as hash:mac): name → the type the kernel reports. Left out of `ipsets`.
   */
  readonly undecodedIpsets?: ReadonlyMap<string, string>;
}

/**
 * Keys into each part of an observed state: the dummy interface, virtual servers, addresses, whole
 * ipsets, and entries by set. What a full read found drifted (reconcile/drift.ts) and what the
 * kernel mirror takes from a read (KernelMirror.patch).
 */
export interface ObservedStateKeys<Keys extends Iterable<string> = Iterable<string>> {
  readonly dummyInterface: boolean;
  readonly virtualServers: Keys;
  readonly addresses: Keys;
  /** Whole sets: their type, entries, or whether kipvs can decode them. */
  readonly ipsets: Keys;
  readonly ipsetEntries: ReadonlyMap<string, Keys>;
}

/** An observed state just read: its maps belong to whoever asked (the agent's cache takes them over). */
export interface FreshObservedState extends ObservedState {
  readonly virtualServers: Map<string, { service: IpvsService; readonly realServers: Map<string, IpvsDestination> }>;
  readonly boundAddresses: Set<string>;
  readonly ipsets: Map<string, { readonly spec: IpsetSetSpec; readonly entries: Map<string, IpsetEntry> }>;
  readonly undecodedIpsets?: Map<string, string>;
}

export type KernelOperation =
  | { readonly kind: 'ensureDummyInterface'; readonly name: string }
  /**
   * With `replacing`, a set of that name exists with a type (or family, range, options) kipvs
   * cannot use: it is replaced by an empty set of `spec`, through a temporary set.
   */
  | { readonly kind: 'createIpset'; readonly name: string; readonly spec: IpsetSetSpec; readonly replacing?: string }
  | { readonly kind: 'bindAddress'; readonly address: string }
  | { readonly kind: 'unbindAddress'; readonly address: string }
  | { readonly kind: 'addIpsetEntry'; readonly set: string; readonly entry: IpsetEntry }
  | { readonly kind: 'deleteIpsetEntry'; readonly set: string; readonly entry: IpsetEntry }
  | { readonly kind: 'ipvs'; readonly operation: IpvsOperation }
  /**
   * Delete the conntrack entries of UDP flows through `virtualServer` to `endpoint`, once the real
   * server is gone (kube-proxy's pkg/proxy/conntrack/cleanup.go does the same).
   */
  | { readonly kind: 'deleteUdpFlows'; readonly virtualServer: ServiceKeyByAddress; readonly endpoint: DestinationKey };

/** A real server taken out of service: weight 0 now, deleted once drained or after the timeout. */
export interface DrainingRealServer {
  readonly virtualServer: string;
  readonly realServer: string;
  /** Milliseconds (the reconciler's clock) when draining began. */
  readonly since: number;
}

export interface Plan {
  /** In the order they must run: creations first, deletions last. */
  readonly operations: readonly KernelOperation[];
  /** Real servers draining after this plan runs, keyed by `${virtualServer} -> ${realServer}`. */
  readonly draining: ReadonlyMap<string, DrainingRealServer>;
}

export const drainKey = (virtualServer: string, realServer: string): string => `${virtualServer} -> ${realServer}`;
