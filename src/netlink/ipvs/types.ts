// Public IPVS types, named after the kernel's concepts: a virtual service (keyed by protocol,
// address and port, or by firewall mark) and its destinations (real servers).
import { formatHostPort, type AddressFamily } from '../../ip.js';

/** The protocols kipvs programs (and reads back: another's virtual server of another protocol is foreign). */
export const IPVS_PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;
export type IpvsProtocol = (typeof IPVS_PROTOCOLS)[number];
/** Masq (NAT), Local (to this host), Tunnel (IPIP/GUE/GRE), Route (direct routing), Bypass. */
export type ForwardingMethod = 'masq' | 'local' | 'tunnel' | 'route' | 'bypass';
export type TunnelType = 'ipip' | 'gue' | 'gre';

export interface ServiceKeyByAddress {
  readonly family: AddressFamily;
  readonly protocol: IpvsProtocol;
  readonly address: string;
  readonly port: number;
}

export interface ServiceKeyByFwmark {
  readonly family: AddressFamily;
  readonly fwmark: number;
}

export type IpvsServiceKey = ServiceKeyByAddress | ServiceKeyByFwmark;

export const isFwmarkKey = (key: IpvsServiceKey): key is ServiceKeyByFwmark => 'fwmark' in key;

/** Counters and rates, as the kernel reports them (64-bit counters read as numbers). */
export interface IpvsStats {
  readonly conns: number;
  readonly inPackets: number;
  readonly outPackets: number;
  readonly inBytes: number;
  readonly outBytes: number;
  readonly cps: number;
  readonly inPps: number;
  readonly outPps: number;
  readonly inBps: number;
  readonly outBps: number;
}

export interface IpvsService {
  readonly key: IpvsServiceKey;
  readonly scheduler: string;
  /** IP_VS_SVC_F_* flags, without HASHED (which the kernel manages). */
  readonly flags: number;
  /** Persistence timeout in seconds; meaningful with IP_VS_SVC_F_PERSISTENT. */
  readonly timeout: number;
  /** Persistence netmask as a prefix length (32 or 128 for one client address). */
  readonly netmask: number;
  readonly persistenceEngine?: string;
  readonly stats?: IpvsStats;
}

export interface IpvsDestination {
  readonly address: string;
  readonly port: number;
  /** The destination's own family; it may differ from the service's for tunnelled destinations. */
  readonly family: AddressFamily;
  readonly forwarding: ForwardingMethod;
  readonly weight: number;
  readonly upperThreshold: number;
  readonly lowerThreshold: number;
  readonly activeConns?: number;
  readonly inactiveConns?: number;
  readonly persistConns?: number;
  readonly tunnelType?: TunnelType;
  readonly tunnelPort?: number;
  readonly tunnelFlags?: number;
  readonly stats?: IpvsStats;
}

export interface DestinationKey {
  readonly address: string;
  readonly port: number;
}

export interface IpvsInfo {
  /** Encoded as 0x010201 for 1.2.1. */
  readonly version: number;
  readonly connectionTableSize: number;
}

export interface IpvsTimeouts {
  readonly tcp: number;
  readonly tcpFin: number;
  readonly udp: number;
}

export type IpvsOperation =
  | { readonly op: 'addService'; readonly service: IpvsService }
  | { readonly op: 'editService'; readonly service: IpvsService }
  | { readonly op: 'deleteService'; readonly key: IpvsServiceKey }
  | { readonly op: 'addDestination'; readonly service: IpvsServiceKey; readonly destination: IpvsDestination }
  | { readonly op: 'editDestination'; readonly service: IpvsServiceKey; readonly destination: IpvsDestination }
  | { readonly op: 'deleteDestination'; readonly service: IpvsServiceKey; readonly destination: DestinationKey };

/** Two services alike in what kipvs programs of them: scheduler, flags and persistence (not their keys, nor counters). */
export const sameServiceSettings = (a: IpvsService, b: IpvsService): boolean =>
  a.scheduler === b.scheduler &&
  a.flags === b.flags &&
  a.timeout === b.timeout &&
  a.netmask === b.netmask &&
  (a.persistenceEngine ?? '') === (b.persistenceEngine ?? '');

/** `TCP 10.96.0.1:80`, `UDP [fd00::a]:53`, `FWM 7 IPv4`: one formatting for keys, logs and errors. */
export function formatServiceKey(key: IpvsServiceKey): string {
  if (isFwmarkKey(key)) return `FWM ${key.fwmark} ${key.family === 'inet' ? 'IPv4' : 'IPv6'}`;
  // Joined for the reason formatHostPort gives.
  return [key.protocol, formatHostPort(key.address, key.port)].join(' ');
}

export function formatDestinationKey(key: DestinationKey): string {
  return formatHostPort(key.address, key.port);
}

export function describeOperation(operation: IpvsOperation): string {
  switch (operation.op) {
    case 'addService':
      return `add virtual server ${formatServiceKey(operation.service.key)}`;
    case 'editService':
      return `edit virtual server ${formatServiceKey(operation.service.key)}`;
    case 'deleteService':
      return `delete virtual server ${formatServiceKey(operation.key)}`;
    case 'addDestination':
      return `add real server ${formatDestinationKey(operation.destination)} to ${formatServiceKey(operation.service)}`;
    case 'editDestination':
      return `edit real server ${formatDestinationKey(operation.destination)} of ${formatServiceKey(operation.service)}`;
    case 'deleteDestination':
      return `delete real server ${formatDestinationKey(operation.destination)} from ${formatServiceKey(operation.service)}`;
  }
}
