// The desired kernel state: what translation computes from the cluster and the reconciler makes
// true. Plain data with value keys; maps keyed by the one formatting of each key.
import { formatHostPort } from '../ip.js';
import { formatServiceKey, type IpvsDestination, type IpvsService, type IpvsServiceKey } from '../netlink/ipvs/types.js';
import { formatEntry, type IpsetEntry, type IpsetSetSpec } from '../netlink/ipset/types.js';

/** The Service port a kernel object comes from: for logs, errors and inspect. */
export interface ServicePortRef {
  readonly namespace: string;
  readonly name: string;
  /** The port's name, or its number when unnamed. */
  readonly port: string;
}

export const formatServicePortRef = (ref: ServicePortRef): string => `${ref.namespace}/${ref.name}:${ref.port}`;

export interface DesiredVirtualServer {
  readonly service: IpvsService;
  /** Keyed by realServerKey(). */
  readonly realServers: ReadonlyMap<string, IpvsDestination>;
  readonly owner: ServicePortRef;
}

export interface DesiredIpset {
  readonly name: string;
  readonly spec: IpsetSetSpec;
  /** Keyed by ipsetEntryKey(). */
  readonly entries: ReadonlyMap<string, IpsetEntry>;
}

/** An object translation skipped, and why; every other Service keeps working. */
export interface TranslationProblem {
  readonly object: string;
  readonly reason: string;
}

export interface DesiredState {
  /** Keyed by virtualServerKey(). */
  readonly virtualServers: ReadonlyMap<string, DesiredVirtualServer>;
  /** Canonical addresses to bind on the dummy interface (ClusterIPs, external IPs, LB IPs). */
  readonly boundAddresses: ReadonlySet<string>;
  /** Keyed by set name: every kube-proxy set of every family the node has, even when empty. */
  readonly ipsets: ReadonlyMap<string, DesiredIpset>;
  readonly problems: readonly TranslationProblem[];
}

/** `TCP 10.96.0.1:80`, `FWM 7 IPv4`: the key of a virtual server everywhere. */
export const virtualServerKey = (key: IpvsServiceKey): string => formatServiceKey(key);

/** `10.244.1.2:8080`: the key of a real server within its virtual server. */
export const realServerKey = (destination: { readonly address: string; readonly port: number }): string =>
  formatHostPort(destination.address, destination.port);

/** What the diff compares of a real server the kernel holds with the one desired at the same key (changing any is an edit). */
export const sameRealServer = (a: IpvsDestination, b: IpvsDestination): boolean =>
  a.weight === b.weight && a.forwarding === b.forwarding && a.upperThreshold === b.upperThreshold && a.lowerThreshold === b.lowerThreshold;

/** An entry's identity (its comment is an attribute, not part of it). */
export const ipsetEntryKey = (entry: IpsetEntry): string => formatEntry({ ...entry, comment: undefined });

/** Where a change can have touched the kernel: the keys the diff must look at, or everything. */
export type DiffScope =
  | { readonly all: true }
  | {
      readonly all: false;
      readonly virtualServers: ReadonlySet<string>;
      readonly addresses: ReadonlySet<string>;
      /** Entry keys by set name. */
      readonly ipsetEntries: ReadonlyMap<string, ReadonlySet<string>>;
    };

export const EVERYTHING: DiffScope = { all: true };
