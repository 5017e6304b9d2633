// Public ipset types, named after what `ipset` shows: sets of the types kube-proxy's IPVS mode uses
// (pkg/proxy/ipvs/ipset.go), their headers, and their entries as a typed union.
import { canonicalAddress, type AddressFamily } from '../../ip.js';

export type IpsetHashType = 'hash:ip' | 'hash:ip,port' | 'hash:ip,port,ip' | 'hash:ip,port,net' | 'hash:net';
export type IpsetSetType = IpsetHashType | 'bitmap:port';
export const ipsetSetTypes: readonly IpsetSetType[] = ['hash:ip', 'hash:ip,port', 'hash:ip,port,ip', 'hash:ip,port,net', 'hash:net', 'bitmap:port'];

/** The protocols a hash:ip,port* entry can carry in kipvs (ipset knows more: icmp, udplite, ...). */
export type IpsetProtocol = 'tcp' | 'udp' | 'sctp';

/** A network: its address with the host bits clear, and the prefix length. */
export interface IpNet {
  readonly address: string;
  readonly prefix: number;
}

/**
 * Every entry may carry a comment (when its set was created with comments). An empty comment is
 * no comment: the kernel stores none for it (ip_set_init_comment()).
 */
interface Commented {
  readonly comment?: string;
}

/** hash:ip */
export interface IpEntry extends Commented {
  readonly ip: string;
}
/** hash:ip,port */
export interface IpPortEntry extends Commented {
  readonly ip: string;
  readonly protocol: IpsetProtocol;
  readonly port: number;
}
/** hash:ip,port,ip */
export interface IpPortIpEntry extends IpPortEntry {
  readonly ip2: string;
}
/** hash:ip,port,net */
export interface IpPortNetEntry extends IpPortEntry {
  readonly net: IpNet;
}
/** hash:net */
export interface NetEntry extends Commented {
  readonly net: IpNet;
}
/** bitmap:port */
export interface PortEntry extends Commented {
  readonly port: number;
}

export interface IpsetEntryBySetType {
  'hash:ip': IpEntry;
  'hash:ip,port': IpPortEntry;
  'hash:ip,port,ip': IpPortIpEntry;
  'hash:ip,port,net': IpPortNetEntry;
  'hash:net': NetEntry;
  'bitmap:port': PortEntry;
}
export type IpsetEntry = IpsetEntryBySetType[IpsetSetType];

/** The set type an entry belongs to, told by which fields it has. */
export function entrySetType(entry: IpsetEntry): IpsetSetType {
  if ('ip' in entry) {
    if ('ip2' in entry) return 'hash:ip,port,ip';
    if ('net' in entry) return 'hash:ip,port,net';
    if ('port' in entry) return 'hash:ip,port';
    return 'hash:ip';
  }
  return 'net' in entry ? 'hash:net' : 'bitmap:port';
}

export interface PortRange {
  readonly from: number;
  readonly to: number;
}

/** What to create. Sizes left out get the kernel's defaults (hashsize 1024, maxelem 65536). */
export interface HashSetSpec {
  readonly type: IpsetHashType;
  readonly family: AddressFamily;
  readonly hashSize?: number;
  readonly maxElements?: number;
  /** Entries carry comments (IPSET_FLAG_WITH_COMMENT); kube-proxy names the Service in them. */
  readonly comment?: boolean;
}
export interface BitmapPortSetSpec {
  readonly type: 'bitmap:port';
  readonly range: PortRange;
  readonly comment?: boolean;
}
export type IpsetSetSpec = HashSetSpec | BitmapPortSetSpec;

/** What the kernel reports of every set, besides its spec. */
interface SetFacts {
  readonly name: string;
  readonly revision: number;
  /** iptables rules (and list:set sets) that use the set. */
  readonly references: number;
  readonly entryCount: number;
  /** Bytes, as "Size in memory" of `ipset list`. */
  readonly memorySize: number;
}
export interface HashSetHeader extends SetFacts, HashSetSpec {
  readonly comment: boolean;
  readonly hashSize: number;
  readonly maxElements: number;
  /** Reported by the revisions with bucketsize support (hash:ip 5, hash:net 7, ...). */
  readonly bucketSize?: number;
  readonly initval?: number;
}
export interface BitmapPortSetHeader extends SetFacts, BitmapPortSetSpec {
  readonly comment: boolean;
}
export type IpsetSetHeader = HashSetHeader | BitmapPortSetHeader;

export interface IpsetSet {
  readonly header: IpsetSetHeader;
  readonly entries: readonly IpsetEntry[];
}

/**
 * A set kipvs cannot decode (a type it does not know, such as hash:mac or list:set, or a member it
 * cannot read): what the header tells of it, and why the rest is not shown.
 */
export interface UndecodedIpset {
  readonly name: string;
  /** As the kernel names it (IPSET_ATTR_TYPENAME); empty when it did not say. */
  readonly type: string;
  readonly revision?: number;
  readonly references: number;
  readonly entryCount: number;
  readonly memorySize: number;
  readonly reason: string;
}

/** One set as listed: decoded, or only named and typed. */
export type IpsetListing = { readonly decoded: IpsetSet } | { readonly undecoded: UndecodedIpset };

const address = (text: string): string => canonicalAddress(text) ?? text;

/** `10.0.0.0/24`, or the bare address for a host network, as ipset prints it. */
export function formatNet(net: IpNet): string {
  const full = address(net.address).includes(':') ? 128 : 32;
  return net.prefix === full ? address(net.address) : `${address(net.address)}/${net.prefix}`;
}

/**
 * An entry exactly as `ipset list` prints a member and `ipset save` an `add` line:
 * `10.0.0.1,tcp:80,10.0.0.1`, `10.0.0.0/24`, `10.0.0.1,udp:53 comment "x"`. One formatting for
 * keys, logs, errors and comparisons with the tool.
 */
export function formatEntry(entry: IpsetEntry): string {
  let text: string;
  if ('ip' in entry) {
    text = address(entry.ip);
    if ('port' in entry) text += `,${entry.protocol}:${entry.port}`;
    if ('ip2' in entry) text += `,${address(entry.ip2)}`;
    if ('net' in entry) text += `,${formatNet(entry.net)}`;
  } else {
    text = 'net' in entry ? formatNet(entry.net) : String(entry.port);
  }
  return entry.comment ? `${text} comment "${entry.comment}"` : text;
}

export type IpsetEntryOperation = 'add' | 'del' | 'test';

/** `add 10.0.0.1,tcp:80 to set KUBE-CLUSTER-IP`: what an error names. */
export function describeEntryOperation(operation: IpsetEntryOperation, setName: string, entry: IpsetEntry): string {
  const preposition = operation === 'add' ? 'to' : operation === 'del' ? 'from' : 'in';
  return `${operation} ${formatEntry(entry)} ${preposition} set ${setName}`;
}
