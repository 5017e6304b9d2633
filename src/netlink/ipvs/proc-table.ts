// /proc/net/ip_vs, the kernel's one-read view of a namespace's IPVS table: every virtual server
// with its real servers, as ip_vs_info_seq_show() (net/netfilter/ipvs/ip_vs_ctl.c) prints them.
// One read of it costs what one netlink dump of the services costs, where netlink needs one
// GET_DEST dump per virtual server. It shows less than netlink: no thresholds, tunnel settings,
// persistence engine or counters beyond the connection counts, and a firewall-mark service
// without its family; kipvs reads those over netlink (kernel/proc-assisted-read.ts says when).
//
// The format, per line after three header lines:
//   "%s  %08X:%04X %s %s "        protocol, IPv4 address and port in hex, scheduler, "ops " or ""
//   "%s  [%pI6]:%04X %s "         protocol, IPv6 address (8 groups of 4 hex digits), port, scheduler
//   "FWM  %08X %s %s"             firewall mark in hex, scheduler, "ops " or ""
//   each followed by "persistent %d %08X\n" (timeout, netmask) or "\n"; then per real server
//   "  -> %08X:%04X      %-7s %-6d %-10d %-10d\n" or "  -> [%pI6]:%04X      ..." (forwarding
//   Masq/Local/Tunnel/Route from ip_vs_fwd_name(), weight, active and inactive connections).
import { closeSync, openSync, read } from 'node:fs';
import { promisify } from 'node:util';
import { KipvsError } from '../../errors.js';
import { formatIPv4, formatIPv6, type AddressFamily } from '../../ip.js';
import { withNetworkNamespace } from '../netns.js';
import { formatServiceKey, type IpvsProtocol, type ServiceKeyByAddress } from './types.js';

const readAsync = promisify(read);

/** ip_vs_fwd_name(): a bypass real server (IP_VS_CONN_F_BYPASS) prints as "Masq" too. */
export type ProcForwarding = 'masq' | 'local' | 'tunnel' | 'route';

export interface ProcDestination {
  readonly address: string;
  readonly port: number;
  readonly family: AddressFamily;
  readonly forwarding: ProcForwarding;
  readonly weight: number;
  readonly activeConns: number;
  readonly inactiveConns: number;
}

export interface ProcVirtualServer {
  /** By address; a firewall-mark service's family is not printed, so it has only its mark. */
  readonly key: ServiceKeyByAddress | { readonly fwmark: number };
  readonly scheduler: string;
  /** IP_VS_SVC_F_ONEPACKET; printed for IPv4 and firewall-mark services only. */
  readonly onePacket: boolean;
  /** The netmask as printed: ntohl() of the kernel's field, which for IPv6 holds a prefix length. */
  readonly persistent?: { readonly timeout: number; readonly netmask: number };
  readonly destinations: ProcDestination[];
}

export interface ProcIpvsTable {
  /** Services by address, keyed by formatServiceKey(). */
  readonly byAddress: Map<string, ProcVirtualServer>;
  /** Firewall-mark services by mark: one per family at most, which the table does not tell apart. */
  readonly byFwmark: Map<number, ProcVirtualServer[]>;
}

export class ProcTableError extends KipvsError {
  constructor(
    readonly line: number,
    reason: string,
  ) {
    super('KIPVS_IPVS_PROC_TABLE', `/proc/net/ip_vs line ${line}: ${reason}`);
  }
}

/**
 * The longest line the kernel prints is an IPv6 real server's, under 100 characters; a longer one
 * is not this file, and the parser does not buffer it.
 */
export const MAX_LINE_LENGTH = 512;
const HEADER_LINES = 3;
const PROTOCOLS: ReadonlySet<string> = new Set<IpvsProtocol>(['TCP', 'UDP', 'SCTP']);
const FORWARDING: Readonly<Record<string, ProcForwarding>> = { Masq: 'masq', Local: 'local', Tunnel: 'tunnel', Route: 'route' };
const HEX = /^[0-9A-F]+$/;

/**
 * Parses the table as it is read, chunk by chunk: only the current line is held, so a file that
 * never ends a line fails at MAX_LINE_LENGTH instead of growing without bound.
 */
export class ProcIpvsTableParser {
  private readonly table: ProcIpvsTable = { byAddress: new Map(), byFwmark: new Map() };
  private partial = '';
  private lineNumber = 0;
  private current: ProcVirtualServer | undefined;

  push(chunk: string): void {
    let text = this.partial + chunk;
    let start = 0;
    for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n', start)) {
      this.line(text.slice(start, end));
      start = end + 1;
    }
    text = text.slice(start);
    if (text.length > MAX_LINE_LENGTH) throw new ProcTableError(this.lineNumber + 1, `a line longer than ${MAX_LINE_LENGTH} characters`);
    this.partial = text;
  }

  /** The table; a last line without its newline is an error (the kernel ends every line). */
  finish(): ProcIpvsTable {
    if (this.partial !== '') throw new ProcTableError(this.lineNumber + 1, 'the last line has no newline');
    if (this.lineNumber < HEADER_LINES) throw new ProcTableError(this.lineNumber, 'the header is incomplete');
    return this.table;
  }

  private line(line: string): void {
    const number = ++this.lineNumber;
    if (line.length > MAX_LINE_LENGTH) throw new ProcTableError(number, `a line longer than ${MAX_LINE_LENGTH} characters`);
    if (number <= HEADER_LINES) {
      if (!headerMatches(number, line)) throw new ProcTableError(number, `not the header of /proc/net/ip_vs: ${JSON.stringify(line)}`);
      return;
    }
    const words = line.split(' ').filter((word) => word !== '');
    if (words[0] === '->') {
      if (!this.current) throw new ProcTableError(number, 'a real server before any virtual server');
      this.current.destinations.push(parseDestination(number, words));
      return;
    }
    const service = parseService(number, words);
    this.current = service;
    if ('fwmark' in service.key) {
      const marked = this.table.byFwmark.get(service.key.fwmark);
      if (marked) marked.push(service);
      else this.table.byFwmark.set(service.key.fwmark, [service]);
    } else this.table.byAddress.set(formatServiceKey(service.key), service);
  }
}

export function parseProcIpvsTable(text: string): ProcIpvsTable {
  const parser = new ProcIpvsTableParser();
  parser.push(text);
  return parser.finish();
}

function headerMatches(number: number, line: string): boolean {
  if (number === 1) return line.startsWith('IP Virtual Server version ');
  if (number === 2) return line.startsWith('Prot LocalAddress:Port Scheduler Flags');
  return line.startsWith('  -> RemoteAddress:Port Forward Weight ActiveConn InActConn');
}

function parseService(number: number, words: readonly string[]): ProcVirtualServer {
  const [protocol, where, scheduler, ...flags] = words;
  if (protocol === undefined || where === undefined || scheduler === undefined) throw new ProcTableError(number, 'a virtual server line without its scheduler');
  let key: ProcVirtualServer['key'];
  if (protocol === 'FWM') {
    key = { fwmark: hexNumber(number, where, 8, 'firewall mark') };
  } else {
    if (!PROTOCOLS.has(protocol)) throw new ProcTableError(number, `protocol ${JSON.stringify(protocol)} is not one kipvs programs`);
    key = { protocol: protocol as IpvsProtocol, ...parseHostPort(number, where) };
  }
  let onePacket = false;
  let persistent: ProcVirtualServer['persistent'];
  let rest = flags;
  if (rest[0] === 'ops') {
    onePacket = true;
    rest = rest.slice(1);
  }
  if (rest[0] === 'persistent' && rest.length === 3) {
    const timeout = decimal(number, rest[1], 'persistence timeout');
    persistent = { timeout, netmask: hexNumber(number, rest[2] ?? '', 8, 'persistence netmask') };
    rest = [];
  }
  if (rest.length > 0) throw new ProcTableError(number, `unknown virtual server flags ${JSON.stringify(rest.join(' '))}`);
  return { key, scheduler, onePacket, ...(persistent ? { persistent } : {}), destinations: [] };
}

function parseDestination(number: number, words: readonly string[]): ProcDestination {
  if (words.length !== 6) throw new ProcTableError(number, 'a real server line without its five fields');
  const [, where = '', forwardingName = '', weight, active, inactive] = words;
  const forwarding = FORWARDING[forwardingName];
  if (!forwarding) throw new ProcTableError(number, `unknown forwarding method ${JSON.stringify(forwardingName)}`);
  return {
    ...parseHostPort(number, where),
    forwarding,
    weight: decimal(number, weight, 'weight'),
    activeConns: decimal(number, active, 'active connections'),
    inactiveConns: decimal(number, inactive, 'inactive connections'),
  };
}

/** `0A600001:0050` or `[2001:0db8:0000:0000:0000:0000:0000:0001]:0050`. */
function parseHostPort(number: number, text: string): { family: AddressFamily; address: string; port: number } {
  const colon = text.lastIndexOf(':');
  const port = hexNumber(number, text.slice(colon + 1), 4, 'port');
  const host = text.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) {
    const groups = host.slice(1, -1).split(':');
    if (groups.length !== 8 || !groups.every((group) => group.length === 4 && /^[0-9a-f]{4}$/.test(group))) {
      throw new ProcTableError(number, `not an IPv6 address as %pI6 prints one: ${JSON.stringify(host)}`);
    }
    return { family: 'inet6', address: formatIPv6(Buffer.from(groups.join(''), 'hex')), port };
  }
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(hexNumber(number, host, 8, 'IPv4 address'));
  return { family: 'inet', address: formatIPv4(bytes), port };
}

function hexNumber(number: number, text: string, digits: number, what: string): number {
  if (text.length !== digits || !HEX.test(text)) throw new ProcTableError(number, `${what} ${JSON.stringify(text)} is not ${digits} hex digits`);
  return parseInt(text, 16);
}

function decimal(number: number, text: string | undefined, what: string): number {
  if (text === undefined || !/^\d{1,10}$/.test(text)) throw new ProcTableError(number, `${what} ${JSON.stringify(text)} is not a number`);
  return Number(text);
}

/** Bytes per read(2): the kernel fills each read with as many whole services as fit. */
const READ_BYTES = 256 * 1024;

/**
 * Reads and parses the table of `netns` (the caller's namespace when absent). A /proc/…/net file
 * shows the namespace of the task that opened it, so it is opened inside the namespace
 * (/proc/thread-self: the main thread, which withNetworkNamespace moves) and read after
 * returning. The reads are asynchronous (libuv's pool), so the event loop runs on meanwhile: at
 * 12,000 virtual servers the kernel takes about half a second to print the table under UML.
 */
export async function readProcIpvsTable(netns?: string): Promise<ProcIpvsTable> {
  const fd = withNetworkNamespace(netns, () => openSync('/proc/thread-self/net/ip_vs', 'r'));
  try {
    const parser = new ProcIpvsTableParser();
    const buffer = Buffer.allocUnsafe(READ_BYTES);
    for (;;) {
      const { bytesRead } = await readAsync(fd, buffer, 0, buffer.length, null);
      if (bytesRead === 0) return parser.finish();
      parser.push(buffer.toString('latin1', 0, bytesRead));
    }
  } finally {
    closeSync(fd);
  }
}
