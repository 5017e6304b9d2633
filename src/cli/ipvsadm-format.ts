// The IPVS table in the layout of `ipvsadm -Ln` (ipvsadm 1.31), line for line: operators diff the
// two, and scripts that parse ipvsadm's output keep working. Pure functions of the table.
import { addressToBytes } from '../ip.js';
import { isFwmarkKey, type IpvsDestination, type IpvsInfo, type IpvsService, type IpvsServiceKey } from '../netlink/ipvs/types.js';
import { IP_VS_SVC_F_ONEPACKET, IP_VS_SVC_F_PERSISTENT, IP_VS_SVC_F_SCHED1, IP_VS_SVC_F_SCHED2, IP_VS_SVC_F_SCHED3 } from '../netlink/ipvs/wire.js';
import type { IpvsServiceWithDestinations } from '../netlink/ipvs/client.js';

export type ListFormat = 'connections' | 'stats' | 'rate';

const protocolOrder = { TCP: 6, UDP: 17, SCTP: 132 } as const;
const familyOrder = { inet: 2, inet6: 10 } as const;
const FORWARD_NAMES = { masq: 'Masq', local: 'Local', tunnel: 'Tunnel', route: 'Route', bypass: 'Bypass' } as const;

/**
 * libipvs compares 32-bit words by subtracting them into an int, so the order wraps around
 * (255.255.255.254 sorts before 10.0.0.1); we reproduce it to match ipvsadm's order exactly.
 */
const intDifference = (a: number, b: number): number => (a - b) | 0;

function compareAddresses(a: string, b: string): number {
  const left = addressToBytes(a);
  const right = addressToBytes(b);
  for (let offset = 0; offset < left.length && offset < right.length; offset += 4) {
    const r = intDifference(left.readUInt32BE(offset), right.readUInt32BE(offset));
    if (r !== 0) return r;
  }
  return 0;
}

/** ipvs_cmp_services(): fwmark, family, protocol, address, port. */
export function compareServiceKeys(a: IpvsServiceKey, b: IpvsServiceKey): number {
  const fwmarkA = isFwmarkKey(a) ? a.fwmark : 0;
  const fwmarkB = isFwmarkKey(b) ? b.fwmark : 0;
  let r = intDifference(fwmarkA, fwmarkB);
  if (r !== 0) return r;
  r = familyOrder[a.family] - familyOrder[b.family];
  if (r !== 0 || isFwmarkKey(a) || isFwmarkKey(b)) return r;
  r = protocolOrder[a.protocol] - protocolOrder[b.protocol];
  if (r !== 0) return r;
  r = compareAddresses(a.address, b.address);
  return r !== 0 ? r : a.port - b.port;
}

/** ipvs_cmp_dests(): address, then port. */
export function compareDestinations(a: IpvsDestination, b: IpvsDestination): number {
  const r = compareAddresses(a.address, b.address);
  return r !== 0 ? r : a.port - b.port;
}

const hostPort = (address: string, port: number): string => (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);

function serviceName(key: IpvsServiceKey): string {
  if (isFwmarkKey(key)) return `FWM  ${key.fwmark}${key.family === 'inet6' ? ' IPv6' : ''}`;
  return `${key.protocol.padEnd(4)} ${hostPort(key.address, key.port)}`;
}

function schedulerFlagNames(scheduler: string, flags: number): string[] {
  const [flag1, flag2] = scheduler === 'sh' ? ['sh-fallback', 'sh-port'] : scheduler === 'mh' ? ['mh-fallback', 'mh-port'] : ['flag-1', 'flag-2'];
  const named = [
    [IP_VS_SVC_F_SCHED1, flag1],
    [IP_VS_SVC_F_SCHED2, flag2],
    [IP_VS_SVC_F_SCHED3, 'flag-3'],
  ] as const;
  return named.flatMap(([bit, name]) => (flags & bit ? [name] : []));
}

function ipv4Mask(prefix: number): string {
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((shift) => (mask >>> shift) & 0xff).join('.');
}

export function formatServiceLine(service: IpvsService): string {
  let line = `${serviceName(service.key)} ${service.scheduler}`;
  const schedulerFlags = schedulerFlagNames(service.scheduler, service.flags);
  if (schedulerFlags.length > 0) line += ` (${schedulerFlags.join(',')})`;
  if (service.flags & IP_VS_SVC_F_PERSISTENT) {
    line += ` persistent ${service.timeout}`;
    const full = service.key.family === 'inet' ? 32 : 128;
    if (service.netmask !== full) line += ` mask ${service.key.family === 'inet' ? ipv4Mask(service.netmask) : service.netmask}`;
    if (service.persistenceEngine) line += ` pe ${service.persistenceEngine}`;
  }
  if (service.flags & IP_VS_SVC_F_ONEPACKET) line += ' ops';
  return line;
}

/** print_largenum(): right-aligned in 9 columns, scaled with K/M/G/T past 100 million. */
export function formatLargeNumber(value: number): string {
  if (value < 1e8) return String(value).padStart(9);
  if (value < 1e9) return `${String(Math.floor(value / 1e3)).padStart(8)}K`;
  if (value < 1e11) return `${String(Math.floor(value / 1e6)).padStart(8)}M`;
  if (value < 1e14) return `${String(Math.floor(value / 1e9)).padStart(8)}G`;
  return `${String(Math.floor(value / 1e12)).padStart(8)}T`;
}

const zeroStats = { conns: 0, inPackets: 0, outPackets: 0, inBytes: 0, outBytes: 0, cps: 0, inPps: 0, outPps: 0, inBps: 0, outBps: 0 };

function destinationLine(destination: IpvsDestination, format: ListFormat): string {
  const name = hostPort(destination.address, destination.port).padEnd(28);
  const stats = destination.stats ?? zeroStats;
  switch (format) {
    case 'connections':
      return `  -> ${name} ${FORWARD_NAMES[destination.forwarding].padEnd(7)} ${String(destination.weight).padEnd(6)} ${String(
        destination.activeConns ?? 0,
      ).padEnd(10)} ${String(destination.inactiveConns ?? 0).padEnd(10)}`;
    case 'stats':
      return `  -> ${name}${[stats.conns, stats.inPackets, stats.outPackets, stats.inBytes, stats.outBytes].map(formatLargeNumber).join('')}`;
    case 'rate':
      return `  -> ${name} ${[stats.cps, stats.inPps, stats.outPps].map((n) => String(n).padStart(8)).join(' ')}${[stats.inBps, stats.outBps]
        .map(formatLargeNumber)
        .join('')}`;
  }
}

function serviceLine(service: IpvsService, format: ListFormat): string {
  if (format === 'connections') return formatServiceLine(service);
  const stats = service.stats ?? zeroStats;
  const values =
    format === 'stats'
      ? [stats.conns, stats.inPackets, stats.outPackets, stats.inBytes, stats.outBytes]
      : [stats.cps, stats.inPps, stats.outPps, stats.inBps, stats.outBps];
  return `${serviceName(service.key).padEnd(33)}${values.map(formatLargeNumber).join('')}`;
}

function titleLines(format: ListFormat): string[] {
  switch (format) {
    case 'connections':
      return ['Prot LocalAddress:Port Scheduler Flags', '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn'];
    case 'stats':
      return [
        `${'Prot LocalAddress:Port'.padEnd(33)} ${['Conns', 'InPkts', 'OutPkts', 'InBytes', 'OutBytes'].map((t) => t.padStart(8)).join(' ')}`,
        '  -> RemoteAddress:Port',
      ];
    case 'rate':
      return [
        `${'Prot LocalAddress:Port'.padEnd(33)} ${['CPS', 'InPPS', 'OutPPS', 'InBPS', 'OutBPS'].map((t) => t.padStart(8)).join(' ')}`,
        '  -> RemoteAddress:Port',
      ];
  }
}

const formatVersion = (version: number): string => `${(version >> 16) & 0xff}.${(version >> 8) & 0xff}.${version & 0xff}`;

/**
 * Names to show after each line (`kipvs inspect --names`): the Service port of a virtual server,
 * the pod of a real server. Without them the listing is ipvsadm's, byte for byte.
 */
export interface ListingNames {
  virtualServer(key: IpvsServiceKey): string | undefined;
  realServer(address: string): string | undefined;
}

const withName = (line: string, name: string | undefined): string => (name === undefined ? line : `${line}  ${name}`);

/** The lines before the first virtual server: the version and the column titles. */
export function listingHeader(info: IpvsInfo, format: ListFormat): string[] {
  return [`IP Virtual Server version ${formatVersion(info.version)} (size=${info.connectionTableSize})`, ...titleLines(format)];
}

/** One virtual server and its real servers (sorted, as ipvsadm sorts them), each followed by its name when `names` are given. */
export function virtualServerLines({ service, destinations }: IpvsServiceWithDestinations, format: ListFormat, names?: ListingNames): string[] {
  const lines = [withName(serviceLine(service, format), names?.virtualServer(service.key))];
  for (const destination of [...destinations].sort(compareDestinations)) {
    lines.push(withName(destinationLine(destination, format), names?.realServer(destination.address)));
  }
  return lines;
}

/** The whole listing, as `ipvsadm -Ln` (or with --stats / --rate) prints it; with `names`, each followed by its name. */
export function formatIpvsadmListing(info: IpvsInfo, table: readonly IpvsServiceWithDestinations[], format: ListFormat, names?: ListingNames): string[] {
  const services = [...table].sort((a, b) => compareServiceKeys(a.service.key, b.service.key));
  return [...listingHeader(info, format), ...services.flatMap((entry) => virtualServerLines(entry, format, names))];
}
