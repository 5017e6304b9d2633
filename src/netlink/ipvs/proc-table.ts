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
import { closeSync, openSync, readSync } from 'node:fs';
import { KipvsError } from '../../errors.js';
import { pacer, SLICE_MS } from '../../util/event-loop.js';
import { formatIPv6, type AddressFamily } from '../../ip.js';
import { withNetworkNamespace } from '../netns.js';
import { formatServiceKey, IPVS_PROTOCOLS, type IpvsProtocol, type ServiceKeyByAddress } from './types.js';

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
const PROTOCOLS: ReadonlySet<string> = new Set(IPVS_PROTOCOLS);
const FORWARDING: ReadonlyArray<readonly [string, ProcForwarding]> = [
  ['Masq', 'masq'],
  ['Local', 'local'],
  ['Tunnel', 'tunnel'],
  ['Route', 'route'],
];

/**
 * Parses the table as it is read, chunk by chunk, and hands each virtual server, once its last
 * real server is read, to `onVirtualServer`: only the current line and virtual server are held,
 * so a file that never ends a line fails at MAX_LINE_LENGTH instead of growing without bound, and
 * a reader that compares as it goes (kernel/proc-assisted-read.ts) keeps none of the 130,000
 * lines of 10,000 Services alive. The lines are scanned in place, character by character, where
 * splitting each into words cost seconds of allocation and garbage collection.
 *
 * A virtual server of a protocol kipvs does not program (ip_vs_proto_name() prints ICMP, or IP_%u)
 * is foreign: it is skipped with its real servers, and a reader then finds it in no table.
 */
export class ProcIpvsTableParser {
  private partial = '';
  private lineNumber = 0;
  /** The virtual server whose real servers are being read; `skipping` while they are a foreign one's. */
  private current: ProcVirtualServer | 'skipping' | undefined;

  constructor(private readonly onVirtualServer: (service: ProcVirtualServer) => void) {}

  push(chunk: string): void {
    const text = this.partial + chunk;
    let start = 0;
    for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n', start)) {
      this.line(new Cursor(text, start, end, ++this.lineNumber));
      start = end + 1;
    }
    if (text.length - start > MAX_LINE_LENGTH) throw new ProcTableError(this.lineNumber + 1, `a line longer than ${MAX_LINE_LENGTH} characters`);
    this.partial = text.slice(start);
  }

  /** The end of the table; a last line without its newline is an error (the kernel ends every line). */
  finish(): void {
    if (this.partial !== '') throw new ProcTableError(this.lineNumber + 1, 'the last line has no newline');
    if (this.lineNumber < HEADER_LINES) throw new ProcTableError(this.lineNumber, 'the header is incomplete');
    this.complete();
  }

  private complete(): void {
    if (this.current !== undefined && this.current !== 'skipping') this.onVirtualServer(this.current);
    this.current = undefined;
  }

  private line(line: Cursor): void {
    if (line.end - line.position > MAX_LINE_LENGTH) line.fail(`a line longer than ${MAX_LINE_LENGTH} characters`);
    if (line.number <= HEADER_LINES) {
      const text = line.rest();
      if (!headerMatches(line.number, text)) line.fail(`not the header of /proc/net/ip_vs: ${JSON.stringify(text)}`);
      return;
    }
    if (line.startsWith('  -> ')) {
      if (!this.current) line.fail('a real server before any virtual server');
      if (this.current === 'skipping') return;
      line.position += 5;
      this.current.destinations.push(parseDestination(line));
      return;
    }
    this.complete();
    this.current = parseService(line) ?? 'skipping';
  }
}

/** The whole table, keyed for lookups: for tests and small tables (the agent compares as it reads). */
export function parseProcIpvsTable(text: string): ProcIpvsTable {
  const table: ProcIpvsTable = { byAddress: new Map(), byFwmark: new Map() };
  const parser = new ProcIpvsTableParser((service) => {
    if (!('fwmark' in service.key)) {
      table.byAddress.set(formatServiceKey(service.key), service);
      return;
    }
    const marked = table.byFwmark.get(service.key.fwmark);
    if (marked) marked.push(service);
    else table.byFwmark.set(service.key.fwmark, [service]);
  });
  parser.push(text);
  parser.finish();
  return table;
}

function headerMatches(number: number, line: string): boolean {
  if (number === 1) return line.startsWith('IP Virtual Server version ');
  if (number === 2) return line.startsWith('Prot LocalAddress:Port Scheduler Flags');
  return line.startsWith('  -> RemoteAddress:Port Forward Weight ActiveConn InActConn');
}

const SPACE = 0x20;

/** One line of the text, read word by word without copying it. */
class Cursor {
  constructor(
    readonly text: string,
    public position: number,
    readonly end: number,
    readonly number: number,
  ) {}

  fail(reason: string): never {
    throw new ProcTableError(this.number, reason);
  }

  rest(): string {
    return this.text.slice(this.position, this.end);
  }

  startsWith(prefix: string): boolean {
    return this.end - this.position >= prefix.length && this.text.startsWith(prefix, this.position);
  }

  /** Skips spaces; false at the end of the line. */
  more(): boolean {
    while (this.position < this.end && this.text.charCodeAt(this.position) === SPACE) this.position++;
    return this.position < this.end;
  }

  /** The end of the word at the position (which the caller moves past). */
  wordEnd(): number {
    let end = this.position;
    while (end < this.end && this.text.charCodeAt(end) !== SPACE) end++;
    return end;
  }

  word(what: string): string {
    if (!this.more()) this.fail(`no ${what}`);
    const end = this.wordEnd();
    const word = this.text.slice(this.position, end);
    this.position = end;
    return word;
  }

  /** Exactly `digits` upper-case hex digits, as %08X and %04X print them. */
  hex(digits: number, what: string): number {
    let value = 0;
    const stop = this.position + digits;
    for (; this.position < stop; this.position++) {
      const code = this.position < this.end ? this.text.charCodeAt(this.position) : -1;
      const digit = code >= 0x30 && code <= 0x39 ? code - 0x30 : code >= 0x41 && code <= 0x46 ? code - 0x37 : -1;
      if (digit < 0) this.fail(`${what} is not ${digits} hex digits`);
      value = value * 16 + digit;
    }
    return value;
  }

  decimal(what: string): number {
    if (!this.more()) this.fail(`no ${what}`);
    const end = this.wordEnd();
    if (end - this.position > 10) this.fail(`${what} ${JSON.stringify(this.text.slice(this.position, end))} is not a number`);
    let value = 0;
    for (; this.position < end; this.position++) {
      const digit = this.text.charCodeAt(this.position) - 0x30;
      if (digit < 0 || digit > 9) this.fail(`${what} ${JSON.stringify(this.text.slice(this.position, end))} is not a number`);
      value = value * 10 + digit;
    }
    return value;
  }

  expect(code: number, what: string): void {
    if (this.position >= this.end || this.text.charCodeAt(this.position) !== code) this.fail(what);
    this.position++;
  }

  /** After a field: a space, or the line's end. */
  fieldEnd(what: string): void {
    if (this.position < this.end && this.text.charCodeAt(this.position) !== SPACE) this.fail(`${what} runs on: ${JSON.stringify(this.rest())}`);
  }
}

/** The virtual server of the line, or undefined for one of a protocol kipvs does not program. */
function parseService(line: Cursor): ProcVirtualServer | undefined {
  const protocol = line.word('protocol');
  let key: ProcVirtualServer['key'];
  if (!line.more()) line.fail('a virtual server line without its address');
  if (protocol === 'FWM') {
    key = { fwmark: line.hex(8, 'firewall mark') };
    line.fieldEnd('firewall mark');
  } else {
    if (!PROTOCOLS.has(protocol)) return undefined;
    const { family, address, port } = hostPort(line);
    key = { family, protocol: protocol as IpvsProtocol, address, port };
  }
  const scheduler = line.word('scheduler');
  let onePacket = false;
  let persistent: ProcVirtualServer['persistent'];
  if (line.more() && line.startsWith('ops') && line.wordEnd() === line.position + 3) {
    onePacket = true;
    line.position += 3;
  }
  if (line.more() && line.startsWith('persistent') && line.wordEnd() === line.position + 10) {
    line.position += 10;
    const timeout = line.decimal('persistence timeout');
    if (!line.more()) line.fail('no persistence netmask');
    persistent = { timeout, netmask: line.hex(8, 'persistence netmask') };
    line.fieldEnd('persistence netmask');
  }
  if (line.more()) line.fail(`unknown virtual server flags ${JSON.stringify(line.rest())}`);
  return { key, scheduler, onePacket, ...(persistent ? { persistent } : {}), destinations: [] };
}

function parseDestination(line: Cursor): ProcDestination {
  if (!line.more()) line.fail('a real server line without its address');
  const { family, address, port } = hostPort(line);
  if (!line.more()) line.fail('no forwarding method');
  const forwarding = forwardingAt(line);
  const weight = line.decimal('weight');
  const activeConns = line.decimal('active connections');
  const inactiveConns = line.decimal('inactive connections');
  if (line.more()) line.fail(`more than five fields: ${JSON.stringify(line.rest())}`);
  return { address, port, family, forwarding, weight, activeConns, inactiveConns };
}

function forwardingAt(line: Cursor): ProcForwarding {
  const end = line.wordEnd();
  for (const [name, forwarding] of FORWARDING) {
    if (end - line.position === name.length && line.startsWith(name)) {
      line.position = end;
      return forwarding;
    }
  }
  return line.fail(`unknown forwarding method ${JSON.stringify(line.text.slice(line.position, end))}`);
}

/** Scratch space for an IPv6 address: formatIPv6 reads it, and the parser is synchronous. */
const ipv6Bytes = Buffer.alloc(16);

/** `0A600001:0050` or `[2001:0db8:0000:0000:0000:0000:0000:0001]:0050`. */
function hostPort(line: Cursor): { family: AddressFamily; address: string; port: number } {
  let family: AddressFamily;
  let address: string;
  if (line.text.charCodeAt(line.position) === 0x5b /* [ */) {
    line.position++;
    for (let group = 0; group < 8; group++) {
      if (group > 0) line.expect(0x3a, 'not an IPv6 address as %pI6 prints one');
      ipv6Bytes.writeUInt16BE(lowerHex4(line), group * 2);
    }
    line.expect(0x5d, 'not an IPv6 address as %pI6 prints one');
    family = 'inet6';
    address = formatIPv6(ipv6Bytes);
  } else {
    const value = line.hex(8, 'IPv4 address');
    family = 'inet';
    address = `${value >>> 24}.${(value >>> 16) & 0xff}.${(value >>> 8) & 0xff}.${value & 0xff}`;
  }
  line.expect(0x3a, 'no port after the address');
  const port = line.hex(4, 'port');
  line.fieldEnd('port');
  return { family, address, port };
}

/** %pI6 prints four lower-case hex digits per group. */
function lowerHex4(line: Cursor): number {
  let value = 0;
  for (let i = 0; i < 4; i++, line.position++) {
    const code = line.position < line.end ? line.text.charCodeAt(line.position) : -1;
    const digit = code >= 0x30 && code <= 0x39 ? code - 0x30 : code >= 0x61 && code <= 0x66 ? code - 0x57 : -1;
    if (digit < 0) line.fail('not an IPv6 address as %pI6 prints one');
    value = value * 16 + digit;
  }
  return value;
}

/** Bytes per read(2); seq_file returns about a page per read whatever is offered. */
const READ_BYTES = 64 * 1024;

/**
 * Reads and parses the table of `netns` (the caller's namespace when absent), handing each virtual
 * server to `onVirtualServer` as it is read. A /proc/…/net file
 * shows the namespace of the task that opened it, so it is opened inside the namespace
 * (/proc/thread-self: the main thread, which withNetworkNamespace moves) and read after
 * returning. The kernel prints a page per read(2), 2,000 of them at 10,000 Services; they are
 * made here in slices of `sliceMs`, between which the event loop runs (a read through libuv's
 * pool instead cost three times as long under UML, a thread hand-off per page).
 */
export async function readProcIpvsTable(onVirtualServer: (service: ProcVirtualServer) => void, netns?: string, sliceMs = SLICE_MS): Promise<void> {
  const fd = withNetworkNamespace(netns, () => openSync('/proc/thread-self/net/ip_vs', 'r'));
  try {
    const parser = new ProcIpvsTableParser(onVirtualServer);
    const buffer = Buffer.allocUnsafe(READ_BYTES);
    // The clock is read after every read: a read and the parse of its page cost far more than
    // that (read every four, slices ran to 8-12 ms under UML, each of them a wait for a change).
    const pace = pacer(sliceMs, 1);
    for (;;) {
      const bytesRead = readSync(fd, buffer, 0, buffer.length, null);
      if (bytesRead === 0) {
        parser.finish();
        return;
      }
      parser.push(buffer.toString('latin1', 0, bytesRead));
      const turn = pace();
      if (turn) await turn;
    }
  } finally {
    closeSync(fd);
  }
}
