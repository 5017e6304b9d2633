// Typed IPVS objects <-> IPVS generic netlink attributes.
import { addressToInetAddr, afNumber, familyFromNumber, familyOf, formatAddress, type AddressFamily } from '../../ip.js';
import { NetlinkDecodeError, NetlinkEncodeError } from '../errors.js';
import {
  IP_VS_CONN_F_BYPASS,
  IP_VS_CONN_F_DROUTE,
  IP_VS_CONN_F_FWD_MASK,
  IP_VS_CONN_F_LOCALNODE,
  IP_VS_CONN_F_MASQ,
  IP_VS_CONN_F_TUNNEL,
  IP_VS_SVC_F_HASHED,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  type WireDest,
  type WireService,
  type WireStats,
  type WireStats64,
} from './wire.js';
import {
  isFwmarkKey,
  type DestinationKey,
  type ForwardingMethod,
  type IpvsDestination,
  type IpvsProtocol,
  type IpvsService,
  type IpvsServiceKey,
  type IpvsStats,
  type TunnelType,
} from './types.js';

// Keyed by any string: a protocol or forwarding method is looked up as given, and one outside its
// type is an encode error rather than garbage on the wire.
const protocolNumbers: Readonly<Record<string, number>> = { TCP: IPPROTO_TCP, UDP: IPPROTO_UDP, SCTP: IPPROTO_SCTP } satisfies Record<IpvsProtocol, number>;
const protocolNames = new Map<number, IpvsProtocol>([
  [IPPROTO_TCP, 'TCP'],
  [IPPROTO_UDP, 'UDP'],
  [IPPROTO_SCTP, 'SCTP'],
]);

const forwardingNumbers: Readonly<Record<string, number>> = {
  masq: IP_VS_CONN_F_MASQ,
  local: IP_VS_CONN_F_LOCALNODE,
  tunnel: IP_VS_CONN_F_TUNNEL,
  route: IP_VS_CONN_F_DROUTE,
  bypass: IP_VS_CONN_F_BYPASS,
} satisfies Record<ForwardingMethod, number>;
const forwardingNames = new Map(Object.entries(forwardingNumbers).map(([name, value]) => [value, name as ForwardingMethod]));

/** enum IP_VS_CONN_F_TUNNEL_TYPE_* in linux/ip_vs.h */
const tunnelTypes: readonly TunnelType[] = ['ipip', 'gue', 'gre'];

function checkAddressFamily(address: string, family: AddressFamily, what: string): void {
  if (familyOf(address) !== family) {
    throw new NetlinkEncodeError(`${what}: ${JSON.stringify(address)} is not an ${family === 'inet' ? 'IPv4' : 'IPv6'} address`);
  }
}

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new NetlinkEncodeError(`${what}: port ${port} is out of range`);
}

/** The key alone, as the kernel wants it to find a service (DEL_SERVICE, and inside *_DEST commands). */
export function encodeServiceKey(key: IpvsServiceKey): WireService {
  if (isFwmarkKey(key)) {
    if (!Number.isInteger(key.fwmark) || key.fwmark < 1 || key.fwmark > 0xffffffff) {
      throw new NetlinkEncodeError(`firewall mark ${key.fwmark} is out of range`);
    }
    return { af: afNumber(key.family), fwmark: key.fwmark };
  }
  checkAddressFamily(key.address, key.family, 'virtual server address');
  checkPort(key.port, 'virtual server');
  const protocol = protocolNumbers[key.protocol];
  if (protocol === undefined) throw new NetlinkEncodeError(`unknown protocol ${key.protocol}`);
  return { af: afNumber(key.family), protocol, addr: addressToInetAddr(key.address), port: key.port };
}

export function encodeNetmask(family: AddressFamily, prefixLength: number): Buffer {
  const max = family === 'inet' ? 32 : 128;
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > max) {
    throw new NetlinkEncodeError(`persistence netmask /${prefixLength} is out of range for ${family === 'inet' ? 'IPv4' : 'IPv6'}`);
  }
  const buf = Buffer.alloc(4);
  if (family === 'inet') buf.writeUInt32BE(prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0);
  else buf.writeUInt32LE(prefixLength);
  return buf;
}

export function decodeNetmask(family: AddressFamily, raw: Buffer | undefined): number {
  if (!raw) return family === 'inet' ? 32 : 128;
  if (family === 'inet6') return raw.readUInt32LE(0);
  // Leading ones of the mask: clz32 of its complement (32 for 255.255.255.255, 0 for 0.0.0.0).
  return Math.clz32(~raw.readUInt32BE(0) >>> 0);
}

/** A full service, as NEW_SERVICE and SET_SERVICE require (scheduler, flags, timeout, netmask). */
export function encodeService(service: IpvsService): WireService {
  const scheduler = service.scheduler;
  if (!/^[a-z0-9_]{1,15}$/.test(scheduler)) throw new NetlinkEncodeError(`scheduler name ${JSON.stringify(scheduler)} is not valid`);
  const flags = Buffer.alloc(8);
  flags.writeUInt32LE((service.flags & ~IP_VS_SVC_F_HASHED) >>> 0, 0);
  flags.writeUInt32LE(~IP_VS_SVC_F_HASHED >>> 0, 4);
  // The key's object, added to rather than spread into a new one: a spread of a fresh object
  // (V8's CloneObject) leaves garbage that outlives the young generation, 169,018 times a first sync.
  const wire = encodeServiceKey(service.key);
  wire.schedName = scheduler;
  wire.flags = flags;
  wire.timeout = service.timeout;
  wire.netmask = encodeNetmask(service.key.family, service.netmask);
  if (service.persistenceEngine) wire.peName = service.persistenceEngine;
  return wire;
}

function statsFrom(stats64: WireStats64 | undefined, stats: WireStats | undefined): IpvsStats | undefined {
  const source = stats64 ?? stats;
  if (!source) return undefined;
  const n = (value: number | bigint | undefined): number => Number(value ?? 0);
  return {
    conns: n(source.conns),
    inPackets: n(source.inPackets),
    outPackets: n(source.outPackets),
    inBytes: n(source.inBytes),
    outBytes: n(source.outBytes),
    cps: n(source.cps),
    inPps: n(source.inPps),
    outPps: n(source.outPps),
    inBps: n(source.inBps),
    outBps: n(source.outBps),
  };
}

function requireFamily(af: number | undefined, what: string): AddressFamily {
  const family = af === undefined ? undefined : familyFromNumber(af);
  if (!family) throw new NetlinkDecodeError(`${what}: unknown address family ${String(af)}`);
  return family;
}

function decodeAddress(family: AddressFamily, raw: Buffer | undefined, what: string): string {
  if (!raw) throw new NetlinkDecodeError(`${what}: no address`);
  if (raw.length < (family === 'inet' ? 4 : 16)) throw new NetlinkDecodeError(`${what}: address of ${raw.length} bytes`);
  return formatAddress(family, raw);
}

export function decodeServiceKey(wire: WireService): IpvsServiceKey {
  const family = requireFamily(wire.af, 'virtual server');
  if (wire.fwmark) return { family, fwmark: wire.fwmark };
  const protocol = wire.protocol === undefined ? undefined : protocolNames.get(wire.protocol);
  if (!protocol) throw new NetlinkDecodeError(`virtual server: unknown protocol ${String(wire.protocol)}`);
  if (wire.port === undefined) throw new NetlinkDecodeError('virtual server: no port');
  return { family, protocol, address: decodeAddress(family, wire.addr, 'virtual server'), port: wire.port };
}

export function decodeService(wire: WireService): IpvsService {
  const key = decodeServiceKey(wire);
  const stats = statsFrom(wire.stats64, wire.stats);
  return {
    key,
    scheduler: wire.schedName ?? '',
    flags: wire.flags ? wire.flags.readUInt32LE(0) & ~IP_VS_SVC_F_HASHED : 0,
    timeout: wire.timeout ?? 0,
    netmask: decodeNetmask(key.family, wire.netmask),
    ...(wire.peName ? { persistenceEngine: wire.peName } : {}),
    ...(stats ? { stats } : {}),
  };
}

export function encodeDestinationKey(destination: DestinationKey, serviceFamily: AddressFamily): WireDest {
  const family = familyOf(destination.address);
  if (!family) throw new NetlinkEncodeError(`real server address ${JSON.stringify(destination.address)} is not an IP address`);
  checkPort(destination.port, 'real server');
  const wire: WireDest = { addr: addressToInetAddr(destination.address), port: destination.port };
  if (family !== serviceFamily) wire.addrFamily = afNumber(family);
  return wire;
}

export function encodeDestination(destination: IpvsDestination, serviceFamily: AddressFamily): WireDest {
  checkAddressFamily(destination.address, destination.family, 'real server address');
  const fwdMethod = forwardingNumbers[destination.forwarding];
  if (fwdMethod === undefined) throw new NetlinkEncodeError(`unknown forwarding method ${destination.forwarding}`);
  if (!Number.isInteger(destination.weight) || destination.weight < 0 || destination.weight > 0x7fffffff) {
    throw new NetlinkEncodeError(`real server weight ${destination.weight} is out of range`);
  }
  // Added to the key's object, not spread into a new one (see encodeService).
  const wire = encodeDestinationKey(destination, serviceFamily);
  wire.addrFamily = afNumber(destination.family);
  wire.fwdMethod = fwdMethod;
  wire.weight = destination.weight;
  wire.upperThreshold = destination.upperThreshold;
  wire.lowerThreshold = destination.lowerThreshold;
  if (destination.tunnelType !== undefined) wire.tunType = tunnelTypes.indexOf(destination.tunnelType);
  if (destination.tunnelPort !== undefined) wire.tunPort = destination.tunnelPort;
  if (destination.tunnelFlags !== undefined) wire.tunFlags = destination.tunnelFlags;
  return wire;
}

export function decodeDestination(wire: WireDest, serviceFamily: AddressFamily): IpvsDestination {
  const family = wire.addrFamily === undefined ? serviceFamily : requireFamily(wire.addrFamily, 'real server');
  const forwarding = forwardingNames.get((wire.fwdMethod ?? 0) & IP_VS_CONN_F_FWD_MASK);
  if (!forwarding) throw new NetlinkDecodeError(`real server: unknown forwarding method ${String(wire.fwdMethod)}`);
  if (wire.port === undefined) throw new NetlinkDecodeError('real server: no port');
  const stats = statsFrom(wire.stats64, wire.stats);
  const tunnelType = wire.tunType === undefined ? undefined : tunnelTypes[wire.tunType];
  return {
    address: decodeAddress(family, wire.addr, 'real server'),
    port: wire.port,
    family,
    forwarding,
    weight: wire.weight ?? 0,
    upperThreshold: wire.upperThreshold ?? 0,
    lowerThreshold: wire.lowerThreshold ?? 0,
    activeConns: wire.activeConns ?? 0,
    inactiveConns: wire.inactiveConns ?? 0,
    persistConns: wire.persistConns ?? 0,
    ...(forwarding === 'tunnel' && tunnelType !== undefined ? { tunnelType, tunnelPort: wire.tunPort ?? 0, tunnelFlags: wire.tunFlags ?? 0 } : {}),
    ...(stats ? { stats } : {}),
  };
}
