// Typed ipset objects <-> ipset nfnetlink attributes. Decoding treats every byte as hostile: what
// does not make a valid set or entry raises NetlinkDecodeError, never anything else.
import { addressToBytes, familyFromNumber, familyOf, formatIPv4, formatIPv6, isAddressFamily, type AddressFamily } from '../../ip.js';
import { decodeAttributes, forEachAttribute, NLA_TYPE_MASK } from '../attributes.js';
import { KernelUnsupportedError, NetlinkDecodeError, NetlinkEncodeError } from '../errors.js';
import type { NetlinkMessage } from '../message.js';
import {
  formatEntry,
  ipsetSetTypes,
  type IpNet,
  type IpsetEntry,
  type IpsetListing,
  type IpsetProtocol,
  type IpsetSet,
  type IpsetSetHeader,
  type IpsetSetSpec,
  type IpsetSetType,
  type UndecodedIpset,
} from './types.js';
import {
  entryDataAttributes,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPSET_FLAG_WITH_COMMENT,
  IPSET_MAX_COMMENT_SIZE,
  IPSET_MAXNAMELEN,
  IPSET_PROTOCOL,
  IPSET_PROTOCOL_MIN,
  NFGENMSG_LENGTH,
  NFNETLINK_V0,
  NFNL_SUBSYS_IPSET,
  NFPROTO_IPV4,
  NFPROTO_IPV6,
  NFPROTO_UNSPEC,
  setCommandAttributes,
  type WireAddress,
  type WireCreateData,
  type WireEntryData,
  type WireSetCommand,
} from './wire.js';

/** struct nfgenmsg as the ipset tool sends it (lib/mnl.c): AF_INET, NFNETLINK_V0, res_id 0. */
export function nfgenHeader(): Uint8Array {
  return Uint8Array.of(NFPROTO_IPV4, NFNETLINK_V0, 0, 0);
}

export interface IpsetMessage {
  readonly command: number;
  readonly attributes: Buffer;
}

export function decodeIpsetMessage(message: NetlinkMessage): IpsetMessage {
  if (message.type >> 8 !== NFNL_SUBSYS_IPSET) {
    throw new NetlinkDecodeError(`message type 0x${message.type.toString(16)} is not of the ipset subsystem`);
  }
  if (message.payload.length < NFGENMSG_LENGTH) throw new NetlinkDecodeError(`ipset message of ${message.payload.length} bytes has no nfgenmsg`);
  return { command: message.type & 0xff, attributes: message.payload.subarray(NFGENMSG_LENGTH) };
}

/**
 * The protocol to speak, from the kernel's answer to IPSET_CMD_PROTOCOL: the kernel's newest, at
 * most ours. Kernels before protocol 7 send no IPSET_ATTR_PROTOCOL_MIN (lib/session.c,
 * callback_version()).
 */
export function negotiateProtocol(reply: WireSetCommand, offered = IPSET_PROTOCOL): number {
  const newest = reply.protocol;
  if (newest === undefined) throw new NetlinkDecodeError('IPSET_CMD_PROTOCOL answer without IPSET_ATTR_PROTOCOL');
  const oldest = reply.protocolMin ?? newest;
  if (oldest > offered || newest < IPSET_PROTOCOL_MIN) {
    throw new KernelUnsupportedError(`the kernel speaks ipset protocol ${oldest}-${newest}, kipvs speaks ${IPSET_PROTOCOL_MIN}-${offered}`);
  }
  return Math.min(newest, offered);
}

// Keyed by any string: an entry's protocol is looked up as given, and one outside IpsetProtocol is an encode error.
const protocolNumbers: Readonly<Record<string, number>> = { tcp: IPPROTO_TCP, udp: IPPROTO_UDP, sctp: IPPROTO_SCTP } satisfies Record<IpsetProtocol, number>;
const protocolNames = new Map(Object.entries(protocolNumbers).map(([name, number]) => [number, name as IpsetProtocol]));

export const nfprotoOf = (family: AddressFamily): number => (family === 'inet' ? NFPROTO_IPV4 : NFPROTO_IPV6);
const fullPrefix = (family: AddressFamily): number => (family === 'inet' ? 32 : 128);

export function checkSetName(name: string): void {
  if (typeof name !== 'string' || name === '' || name.includes('\0') || Buffer.byteLength(name) >= IPSET_MAXNAMELEN) {
    throw new NetlinkEncodeError(`set name ${JSON.stringify(name)} must be 1 to ${IPSET_MAXNAMELEN - 1} bytes without NUL`);
  }
}

function requireFamily(address: string, what: string): AddressFamily {
  const family = typeof address === 'string' ? familyOf(address) : undefined;
  if (!family) throw new NetlinkEncodeError(`${what}: ${JSON.stringify(address)} is not an IP address`);
  return family;
}

function encodeAddress(address: string, family: AddressFamily): WireAddress {
  const bytes = addressToBytes(address);
  return family === 'inet' ? { ipv4: bytes.readUInt32BE(0) } : { ipv6: bytes };
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new NetlinkEncodeError(`port ${String(port)} is out of range`);
}

function encodeNet(net: IpNet, what: string): { family: AddressFamily; address: WireAddress; prefix: number } {
  const family = requireFamily(net.address, what);
  if (!Number.isInteger(net.prefix) || net.prefix < 0 || net.prefix > fullPrefix(family)) {
    throw new NetlinkEncodeError(`${what}: prefix /${String(net.prefix)} is out of range`);
  }
  // The kernel clears host bits; an entry that carries them would never read back as written.
  const bytes = addressToBytes(net.address);
  for (let bit = net.prefix; bit < bytes.length * 8; bit++) {
    if (bytes.readUInt8(bit >> 3) & (0x80 >> (bit & 7))) {
      throw new NetlinkEncodeError(`${what}: ${net.address}/${net.prefix} has host bits set`);
    }
  }
  return { family, address: encodeAddress(net.address, family), prefix: net.prefix };
}

function checkComment(comment: string): void {
  // The ipset tool cannot read back a comment with a double quote (lib/parse.c), nor a longer one.
  if (typeof comment !== 'string' || comment.includes('"') || comment.includes('\0') || Buffer.byteLength(comment) > IPSET_MAX_COMMENT_SIZE) {
    throw new NetlinkEncodeError(`comment ${JSON.stringify(comment)}: at most ${IPSET_MAX_COMMENT_SIZE} bytes, without " or NUL`);
  }
}

/** One entry as IPSET_ATTR_DATA of ADD, DEL or TEST. */
export function encodeEntry(entry: IpsetEntry): WireEntryData {
  const what = `entry ${formatEntry(entry)}`;
  const wire: WireEntryData = {};
  if ('ip' in entry) {
    const family = requireFamily(entry.ip, what);
    wire.ip = encodeAddress(entry.ip, family);
    if ('port' in entry) {
      checkPort(entry.port);
      const proto = protocolNumbers[entry.protocol];
      if (proto === undefined) throw new NetlinkEncodeError(`${what}: unknown protocol ${JSON.stringify(entry.protocol)}`);
      wire.port = entry.port;
      wire.proto = proto;
    }
    if ('ip2' in entry) {
      if (requireFamily(entry.ip2, what) !== family) throw new NetlinkEncodeError(`${what}: addresses of two families`);
      wire.ip2 = encodeAddress(entry.ip2, family);
    }
    if ('net' in entry) {
      const net = encodeNet(entry.net, what);
      if (net.family !== family) throw new NetlinkEncodeError(`${what}: addresses of two families`);
      wire.ip2 = net.address;
      wire.cidr2 = net.prefix;
    }
  } else if ('net' in entry) {
    const net = encodeNet(entry.net, what);
    wire.ip = net.address;
    wire.cidr = net.prefix;
  } else {
    checkPort(entry.port);
    wire.port = entry.port;
  }
  if (entry.comment !== undefined && entry.comment !== '') {
    checkComment(entry.comment);
    wire.comment = entry.comment;
  }
  return wire;
}

function decodeAddress(wire: WireAddress | undefined, what: string): { address: string; family: AddressFamily } {
  if (wire?.ipv4 !== undefined) {
    const bytes = Buffer.alloc(4);
    bytes.writeUInt32BE(wire.ipv4);
    return { address: formatIPv4(bytes), family: 'inet' };
  }
  if (wire?.ipv6 !== undefined) return { address: formatIPv6(wire.ipv6), family: 'inet6' };
  throw new NetlinkDecodeError(`${what}: no address`);
}

function decodePrefix(prefix: number | undefined, family: AddressFamily, what: string): number {
  if (prefix === undefined) return fullPrefix(family);
  if (prefix > fullPrefix(family)) throw new NetlinkDecodeError(`${what}: prefix /${prefix} is out of range`);
  return prefix;
}

function required<T>(value: T | undefined, what: string, orig: string): T {
  if (value === undefined) throw new NetlinkDecodeError(`${what} without ${orig}`);
  return value;
}

/** One member of a set of `type`, as a LIST answer carries it. */
export function decodeEntry(type: IpsetSetType, wire: WireEntryData): IpsetEntry {
  const what = `${type} member`;
  const comment = wire.comment ? { comment: wire.comment } : {};
  if (type === 'bitmap:port') return { port: required(wire.port, what, 'IPSET_ATTR_PORT'), ...comment };
  const ip = decodeAddress(wire.ip, what);
  if (type === 'hash:net') return { net: { address: ip.address, prefix: decodePrefix(wire.cidr, ip.family, what) }, ...comment };
  if (type === 'hash:ip') return { ip: ip.address, ...comment };
  const port = required(wire.port, what, 'IPSET_ATTR_PORT');
  const protocolNumber = required(wire.proto, what, 'IPSET_ATTR_PROTO');
  const protocol = protocolNames.get(protocolNumber);
  if (!protocol) throw new NetlinkDecodeError(`${what}: protocol ${protocolNumber} is not one kipvs reads (tcp, udp, sctp)`);
  if (type === 'hash:ip,port') return { ip: ip.address, protocol, port, ...comment };
  const second = decodeAddress(wire.ip2, `${what} IPSET_ATTR_IP2`);
  if (second.family !== ip.family) throw new NetlinkDecodeError(`${what}: addresses of two families`);
  if (type === 'hash:ip,port,ip') return { ip: ip.address, protocol, port, ip2: second.address, ...comment };
  const net = { address: second.address, prefix: decodePrefix(wire.cidr2, ip.family, what) };
  return { ip: ip.address, protocol, port, net, ...comment };
}

export interface WireCreate {
  /** IPSET_ATTR_FAMILY: NFPROTO_UNSPEC for bitmap:port, as the ipset tool sends it. */
  readonly family: number;
  readonly data: WireCreateData;
}

function checkCount(value: number | undefined, what: string): void {
  if (value !== undefined && (!Number.isInteger(value) || value < 1 || value > 0xffffffff)) {
    throw new NetlinkEncodeError(`${what} ${String(value)} is out of range`);
  }
}

export function encodeCreate(spec: IpsetSetSpec): WireCreate {
  const data: WireCreateData = {};
  if (spec.comment) data.cadtFlags = IPSET_FLAG_WITH_COMMENT;
  if (spec.type === 'bitmap:port') {
    checkPort(spec.range.from);
    checkPort(spec.range.to);
    if (spec.range.from > spec.range.to) throw new NetlinkEncodeError(`port range ${spec.range.from}-${spec.range.to} is empty`);
    return { family: NFPROTO_UNSPEC, data: { port: spec.range.from, portTo: spec.range.to, ...data } };
  }
  if (!ipsetSetTypes.includes(spec.type)) throw new NetlinkEncodeError(`unknown set type ${JSON.stringify(spec.type)}`);
  if (!isAddressFamily(spec.family)) throw new NetlinkEncodeError(`unknown family ${JSON.stringify(spec.family)}`);
  checkCount(spec.hashSize, 'hashsize');
  checkCount(spec.maxElements, 'maxelem');
  if (spec.hashSize !== undefined) data.hashSize = spec.hashSize;
  if (spec.maxElements !== undefined) data.maxElements = spec.maxElements;
  return { family: nfprotoOf(spec.family), data };
}

function decodeSetType(typeName: string | undefined, what: string): IpsetSetType {
  const type = ipsetSetTypes.find((known) => known === typeName);
  if (!type) throw new NetlinkDecodeError(`${what}: set type ${JSON.stringify(typeName)} is not one kipvs reads`);
  return type;
}

/** A set's header from the first message LIST sends for it. */
export function decodeSetHeader(wire: WireSetCommand): IpsetSetHeader {
  const what = `set ${JSON.stringify(wire.setName)}`;
  const name = required(wire.setName, 'LIST answer', 'IPSET_ATTR_SETNAME');
  const type = decodeSetType(wire.typeName, what);
  const data = required(wire.data, what, 'IPSET_ATTR_DATA');
  const facts = {
    name,
    revision: required(wire.revision, what, 'IPSET_ATTR_REVISION'),
    references: data.references ?? 0,
    entryCount: data.elements ?? 0,
    memorySize: data.memorySize ?? 0,
    comment: ((data.cadtFlags ?? 0) & IPSET_FLAG_WITH_COMMENT) !== 0,
  };
  if (type === 'bitmap:port') {
    const range = { from: required(data.port, what, 'IPSET_ATTR_PORT'), to: required(data.portTo, what, 'IPSET_ATTR_PORT_TO') };
    return { ...facts, type, range };
  }
  const family = familyFromNumber(required(wire.family, what, 'IPSET_ATTR_FAMILY'));
  if (!family) throw new NetlinkDecodeError(`${what}: unknown family ${String(wire.family)}`);
  return {
    ...facts,
    type,
    family,
    hashSize: required(data.hashSize, what, 'IPSET_ATTR_HASHSIZE'),
    maxElements: required(data.maxElements, what, 'IPSET_ATTR_MAXELEM'),
    ...(data.bucketSize !== undefined ? { bucketSize: data.bucketSize } : {}),
    ...(data.initval !== undefined ? { initval: data.initval } : {}),
  };
}

const IPSET_ATTR_DATA = setCommandAttributes.data.id;

/**
 * Sets from the messages of a LIST dump, one message at a time (a caller that has many can let
 * the event loop run in between: kube-proxy's sets hold 27,000 members at 10,000 Services). A big
 * set comes in several messages: the first carries the header (IPSET_ATTR_DATA) and members, the
 * next ones only IPSET_ATTR_SETNAME and members.
 */
export class SetListingDecoder {
  private readonly sets = new Map<string, { header: IpsetSetHeader; entries: IpsetEntry[] }>();

  /** With `onMember`, each member goes to it as it is decoded and is not kept (the sets' entries stay empty). */
  constructor(private readonly onMember?: (entry: IpsetEntry) => void) {}

  push(wire: WireSetCommand): void {
    const name = required(wire.setName, 'LIST answer', 'IPSET_ATTR_SETNAME');
    let set = this.sets.get(name);
    if (wire.data) {
      if (set) throw new NetlinkDecodeError(`set ${JSON.stringify(name)}: a second header in one listing`);
      set = { header: decodeSetHeader(wire), entries: [] };
      this.sets.set(name, set);
    }
    if (!set) throw new NetlinkDecodeError(`set ${JSON.stringify(name)}: members before the header`);
    if (!wire.adt) return;
    const { header, entries } = set;
    forEachAttribute(wire.adt, (type, value) => {
      if ((type & NLA_TYPE_MASK) !== IPSET_ATTR_DATA) {
        throw new NetlinkDecodeError(`set ${JSON.stringify(name)}: attribute ${type & NLA_TYPE_MASK} in IPSET_ATTR_ADT`);
      }
      const entry = decodeEntry(header.type, decodeAttributes(entryDataAttributes, value));
      if (this.onMember) this.onMember(entry);
      else entries.push(entry);
    });
  }

  result(): IpsetSet[] {
    return [...this.sets.values()];
  }
}

export function decodeSetListing(messages: readonly WireSetCommand[]): IpsetSet[] {
  const decoder = new SetListingDecoder();
  for (const wire of messages) decoder.push(wire);
  return decoder.result();
}

/** What a set's first LIST message says of it, without decoding its type's attributes. */
function describeUndecoded(wire: WireSetCommand, name: string, reason: string): UndecodedIpset {
  return {
    name,
    type: wire.typeName ?? '',
    ...(wire.revision !== undefined ? { revision: wire.revision } : {}),
    references: wire.data?.references ?? 0,
    entryCount: wire.data?.elements ?? 0,
    memorySize: wire.data?.memorySize ?? 0,
    reason,
  };
}

/**
 * Like SetListingDecoder, but a set that does not decode (a type kipvs does not know, a member it
 * cannot read) costs only itself: it comes back by name and type, with the reason, and the other
 * sets of the dump are decoded as usual.
 */
export class TolerantSetListingDecoder {
  private readonly bySet = new Map<string, { decoder: SetListingDecoder; first: WireSetCommand; header?: WireSetCommand; error?: string }>();

  /** `onMember` as in SetListingDecoder: members handed over as decoded, not kept. */
  constructor(private readonly onMember?: (entry: IpsetEntry) => void) {}

  push(wire: WireSetCommand): void {
    const name = required(wire.setName, 'LIST answer', 'IPSET_ATTR_SETNAME');
    let set = this.bySet.get(name);
    if (!set) this.bySet.set(name, (set = { decoder: new SetListingDecoder(this.onMember), first: wire }));
    if (set.header === undefined && wire.data !== undefined) set.header = wire;
    if (set.error !== undefined) return;
    try {
      set.decoder.push(wire);
    } catch (error) {
      if (!(error instanceof NetlinkDecodeError)) throw error;
      set.error = error.message;
    }
  }

  result(): IpsetListing[] {
    return [...this.bySet].map(([name, set]): IpsetListing => {
      if (set.error !== undefined) return { undecoded: describeUndecoded(set.header ?? set.first, name, set.error) };
      const [decoded] = set.decoder.result();
      return decoded ? { decoded } : { undecoded: describeUndecoded(set.first, name, 'no header in the listing') };
    });
  }
}

export function decodeSetListingTolerant(messages: readonly WireSetCommand[]): IpsetListing[] {
  const decoder = new TolerantSetListingDecoder();
  for (const wire of messages) decoder.push(wire);
  return decoder.result();
}
