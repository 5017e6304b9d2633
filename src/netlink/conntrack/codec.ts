// Typed conntrack entries <-> ctnetlink attributes. Decoding treats every byte as hostile: what
// does not make a valid entry raises NetlinkDecodeError, never anything else.
import { afNumber, familyFromNumber, familyOf, formatIPv4, formatIPv6, addressToBytes, isAddressFamily, type AddressFamily } from '../../ip.js';
import { decodeAttributes, encodeAttributes } from '../attributes.js';
import { NetlinkDecodeError, NetlinkEncodeError } from '../errors.js';
import type { NetlinkMessage } from '../message.js';
import type { ConntrackEntry, ConntrackTuple, IcmpKey } from './types.js';
import {
  conntrackAttributes,
  ConntrackMessage,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  NFGENMSG_LENGTH,
  NFNETLINK_V0,
  NFNL_SUBSYS_CTNETLINK,
  type WireConntrack,
  type WireIp,
  type WireProto,
  type WireTuple,
} from './wire.js';

/** struct nfgenmsg: the family the request is about (NFPROTO_IPV4 = AF_INET), NFNETLINK_V0, res_id 0. */
export function nfgenHeader(nfproto: number): Uint8Array {
  return Uint8Array.of(nfproto, NFNETLINK_V0, 0, 0);
}

export interface ConntrackMessageBody {
  readonly command: number;
  /** nfgen_family: the entry's layer-3 family in a dump answer. */
  readonly family: number;
  readonly attributes: Buffer;
}

export function decodeConntrackMessage(message: NetlinkMessage): ConntrackMessageBody {
  if (message.type >> 8 !== NFNL_SUBSYS_CTNETLINK) {
    throw new NetlinkDecodeError(`message type 0x${message.type.toString(16)} is not of the ctnetlink subsystem`);
  }
  if (message.payload.length < NFGENMSG_LENGTH) {
    throw new NetlinkDecodeError(`ctnetlink message of ${message.payload.length} bytes has no nfgenmsg`);
  }
  return { command: message.type & 0xff, family: message.payload.readUInt8(0), attributes: message.payload.subarray(NFGENMSG_LENGTH) };
}

function checkUint(value: unknown, max: number, what: string): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new NetlinkEncodeError(`${what}: ${String(value)} is not an integer from 0 to ${max}`);
  }
}

function encodeAddresses(tuple: ConntrackTuple, family: AddressFamily, what: string): WireIp {
  for (const address of [tuple.source, tuple.destination]) {
    if (typeof address !== 'string' || familyOf(address) !== family) {
      throw new NetlinkEncodeError(`${what}: ${JSON.stringify(address)} is not an ${family === 'inet' ? 'IPv4' : 'IPv6'} address`);
    }
  }
  const source = addressToBytes(tuple.source);
  const destination = addressToBytes(tuple.destination);
  return family === 'inet'
    ? { v4Source: source.readUInt32BE(0), v4Destination: destination.readUInt32BE(0) }
    : { v6Source: source, v6Destination: destination };
}

function encodeProto(tuple: ConntrackTuple, what: string): WireProto {
  checkUint(tuple.protocol, 0xff, `${what} protocol`);
  const proto: WireProto = { number: tuple.protocol };
  if (tuple.sourcePort !== undefined) {
    checkUint(tuple.sourcePort, 0xffff, `${what} source port`);
    proto.sourcePort = tuple.sourcePort;
  }
  if (tuple.destinationPort !== undefined) {
    checkUint(tuple.destinationPort, 0xffff, `${what} destination port`);
    proto.destinationPort = tuple.destinationPort;
  }
  if (tuple.icmp) {
    checkUint(tuple.icmp.id, 0xffff, `${what} ICMP id`);
    checkUint(tuple.icmp.type, 0xff, `${what} ICMP type`);
    checkUint(tuple.icmp.code, 0xff, `${what} ICMP code`);
    if (tuple.protocol === IPPROTO_ICMP) Object.assign(proto, { icmpId: tuple.icmp.id, icmpType: tuple.icmp.type, icmpCode: tuple.icmp.code });
    else if (tuple.protocol === IPPROTO_ICMPV6) Object.assign(proto, { icmpv6Id: tuple.icmp.id, icmpv6Type: tuple.icmp.type, icmpv6Code: tuple.icmp.code });
    else throw new NetlinkEncodeError(`${what}: an ICMP key on protocol ${tuple.protocol}`);
  }
  return proto;
}

export function encodeTuple(tuple: ConntrackTuple, family: AddressFamily, what = 'tuple'): WireTuple {
  const wire: WireTuple = { ip: encodeAddresses(tuple, family, what), proto: encodeProto(tuple, what) };
  if (tuple.zone !== undefined) {
    checkUint(tuple.zone, 0xffff, `${what} zone`);
    wire.zone = tuple.zone;
  }
  return wire;
}

function checkFamily(family: AddressFamily): void {
  if (!isAddressFamily(family)) throw new NetlinkEncodeError(`unknown family ${JSON.stringify(family)}`);
}

/** Every attribute of an entry, as a dump answer carries it (for tests and round trips). */
export function encodeEntry(entry: ConntrackEntry): WireConntrack {
  checkFamily(entry.family);
  const wire: WireConntrack = {
    tupleOriginal: encodeTuple(entry.original, entry.family, 'original tuple'),
    tupleReply: encodeTuple(entry.reply, entry.family, 'reply tuple'),
  };
  for (const name of ['status', 'timeout', 'mark', 'use', 'id'] as const) {
    const value = entry[name];
    if (value === undefined) continue;
    checkUint(value, 0xffffffff, name);
    wire[name] = value;
  }
  if (entry.zone !== undefined) {
    checkUint(entry.zone, 0xffff, 'zone');
    wire.zone = entry.zone;
  }
  if (entry.unknown?.length) wire.unknown = [...entry.unknown];
  return wire;
}

/**
 * The body of IPCTNL_MSG_CT_DELETE for one entry: its original tuple, its zone, and its id, so that
 * an entry with the same tuple made after we listed (a new flow, perhaps to a new endpoint) answers
 * ENOENT instead of being deleted. Never without a tuple: a DELETE without CTA_TUPLE_ORIG or
 * CTA_TUPLE_REPLY flushes the whole table (ctnetlink_del_conntrack() -> ctnetlink_flush_conntrack()).
 */
export function encodeDeletion(entry: ConntrackEntry): Buffer {
  checkFamily(entry.family);
  const wire: WireConntrack = { tupleOriginal: encodeTuple(entry.original, entry.family, 'original tuple') };
  if (entry.zone !== undefined) {
    checkUint(entry.zone, 0xffff, 'zone');
    wire.zone = entry.zone;
  }
  if (entry.id !== undefined) {
    checkUint(entry.id, 0xffffffff, 'id');
    wire.id = entry.id;
  }
  return encodeAttributes(conntrackAttributes, wire, nfgenHeader(afNumber(entry.family)));
}

function decodeAddresses(ip: WireIp | undefined, family: AddressFamily, what: string): { source: string; destination: string } {
  if (family === 'inet') {
    if (ip?.v4Source === undefined || ip.v4Destination === undefined) throw new NetlinkDecodeError(`${what} without CTA_IP_V4_SRC and CTA_IP_V4_DST`);
    const bytes = Buffer.alloc(8);
    bytes.writeUInt32BE(ip.v4Source, 0);
    bytes.writeUInt32BE(ip.v4Destination, 4);
    return { source: formatIPv4(bytes, 0), destination: formatIPv4(bytes, 4) };
  }
  if (ip?.v6Source === undefined || ip.v6Destination === undefined) throw new NetlinkDecodeError(`${what} without CTA_IP_V6_SRC and CTA_IP_V6_DST`);
  return { source: formatIPv6(ip.v6Source), destination: formatIPv6(ip.v6Destination) };
}

function decodeIcmp(proto: WireProto, what: string): IcmpKey | undefined {
  const v4 = [proto.icmpId, proto.icmpType, proto.icmpCode];
  const v6 = [proto.icmpv6Id, proto.icmpv6Type, proto.icmpv6Code];
  const key = proto.number === IPPROTO_ICMP ? v4 : proto.number === IPPROTO_ICMPV6 ? v6 : undefined;
  if (!key || key.every((value) => value === undefined)) return undefined;
  const [id, type, code] = key;
  if (id === undefined || type === undefined || code === undefined) throw new NetlinkDecodeError(`${what}: an incomplete ICMP key`);
  return { id, type, code };
}

export function decodeTuple(wire: WireTuple | undefined, family: AddressFamily, what: string): ConntrackTuple {
  if (!wire) throw new NetlinkDecodeError(`entry without ${what}`);
  const proto = wire.proto;
  if (proto?.number === undefined) throw new NetlinkDecodeError(`${what} without CTA_PROTO_NUM`);
  const protocol = proto.number;
  const icmp = decodeIcmp(proto, what);
  return {
    ...decodeAddresses(wire.ip, family, what),
    protocol,
    ...(proto.sourcePort !== undefined ? { sourcePort: proto.sourcePort } : {}),
    ...(proto.destinationPort !== undefined ? { destinationPort: proto.destinationPort } : {}),
    ...(icmp ? { icmp } : {}),
    ...(wire.zone !== undefined ? { zone: wire.zone } : {}),
  };
}

/** An entry from its attributes and the nfgen_family of its message. */
export function decodeEntry(nfproto: number, wire: WireConntrack): ConntrackEntry {
  const family = familyFromNumber(nfproto);
  if (!family) throw new NetlinkDecodeError(`conntrack entry of unknown family ${nfproto}`);
  const original = decodeTuple(wire.tupleOriginal, family, 'CTA_TUPLE_ORIG');
  const reply = decodeTuple(wire.tupleReply, family, 'CTA_TUPLE_REPLY');
  const entry: { -readonly [K in keyof ConntrackEntry]: ConntrackEntry[K] } = { family, original, reply };
  for (const name of ['id', 'status', 'timeout', 'mark', 'use', 'zone'] as const) {
    if (wire[name] !== undefined) entry[name] = wire[name];
  }
  if (wire.unknown) entry.unknown = wire.unknown;
  return entry;
}

/** One entry of a dump answer (IPCTNL_MSG_CT_NEW). */
export function decodeEntryMessage(message: NetlinkMessage): ConntrackEntry {
  const body = decodeConntrackMessage(message);
  if (body.command !== ConntrackMessage.new) throw new NetlinkDecodeError(`ctnetlink command ${body.command} where an entry (IPCTNL_MSG_CT_NEW) was expected`);
  return decodeEntry(body.family, decodeAttributes(conntrackAttributes, body.attributes));
}
