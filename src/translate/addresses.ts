// Strict parsing of the addresses, networks and ports a Service or EndpointSlice carries. Every
// value comes from JSON that nobody validated for us (a file source, an old object), so each
// helper takes `unknown` and answers undefined instead of throwing.
import { addressToBytes, canonicalAddress, familyOf, type AddressFamily, type ParsedCidr } from '../ip.js';

export interface ParsedAddress {
  /** Canonical text, as inet_ntop prints it (and as the kernel reports it back). */
  readonly address: string;
  readonly family: AddressFamily;
}

// One CIDR parser for the whole tree (flags, configuration file, Services): it lives in ip.ts.
export { parseCidr, type ParsedCidr } from '../ip.js';

export const familyName = (family: AddressFamily): string => (family === 'inet' ? 'IPv4' : 'IPv6');

/**
 * A unicast host address a Service can use. Refused: anything node's parser refuses (IPv4 with
 * leading zeros included), zone indexes (`fe80::1%eth0`), the unspecified address, and
 * IPv4-mapped IPv6 (Go parses `::ffff:1.2.3.4` as IPv4, node as IPv6: ambiguous, so neither).
 */
export function parseAddress(text: unknown): ParsedAddress | undefined {
  if (typeof text !== 'string' || text.includes('%')) return undefined;
  const family = familyOf(text);
  if (!family) return undefined;
  const address = canonicalAddress(text);
  if (address === undefined || address === '0.0.0.0' || address === '::' || address.startsWith('::ffff:')) return undefined;
  return { address, family };
}

export function inCidr(cidr: ParsedCidr, address: ParsedAddress): boolean {
  if (cidr.family !== address.family) return false;
  const network = addressToBytes(cidr.address);
  const host = addressToBytes(address.address);
  for (let bit = 0; bit < cidr.prefix; bit++) {
    const mask = 0x80 >> (bit & 7);
    if ((network.readUInt8(bit >> 3) & mask) !== (host.readUInt8(bit >> 3) & mask)) return false;
  }
  return true;
}

/** A TCP/UDP/SCTP port a Service or endpoint can name: an integer in 1..65535. */
export const isPort = (value: unknown): value is number => typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 0xffff;

/** Longest quote of input in a problem: a 1 MB annotation must not become a 1 MB log line. */
const MAX_SHOWN = 120;

/** JSON.stringify as it behaves: undefined for undefined, a function or a symbol, whatever lib.d.ts says. */
const toJson = (value: unknown): string | undefined => JSON.stringify(value);

/** How a bad value reads in a problem: strings quoted, everything else as JSON, at most MAX_SHOWN characters. */
export function show(value: unknown): string {
  let text: string;
  try {
    text = toJson(value) ?? String(value);
  } catch {
    text = String(value); // a bigint, or an object with a cycle
  }
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}… (${text.length} characters)` : text;
}
