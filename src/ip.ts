// IP addresses as canonical strings, and their wire bytes. Formatting follows glibc's inet_ntop
// (longest run of two or more zero groups compressed, the first on a tie; ::ffff:a.b.c.d for
// IPv4-mapped addresses) so that what we print matches ipvsadm and ipset line for line.
import { isIPv4, isIPv6 } from 'node:net';

export type AddressFamily = 'inet' | 'inet6';

/** linux/socket.h */
export const AF_INET = 2;
export const AF_INET6 = 10;

export function familyOf(address: string): AddressFamily | undefined {
  if (isIPv4(address)) return 'inet';
  if (isIPv6(address)) return 'inet6';
  return undefined;
}

/** Encoders check a family with this: callers outside the type checker (JSON, plain JS) can pass anything. */
export function isAddressFamily(value: unknown): value is AddressFamily {
  return value === 'inet' || value === 'inet6';
}

export const afNumber = (family: AddressFamily): number => (family === 'inet' ? AF_INET : AF_INET6);

export function familyFromNumber(af: number): AddressFamily | undefined {
  if (af === AF_INET) return 'inet';
  if (af === AF_INET6) return 'inet6';
  return undefined;
}

function ipv4Bytes(address: string): Buffer {
  return Buffer.from(address.split('.').map((part) => Number(part)));
}

/** 4 bytes for IPv4, 16 for IPv6; throws on anything that is not an IP address. */
export function addressToBytes(address: string): Buffer {
  if (isIPv4(address)) return ipv4Bytes(address);
  if (!isIPv6(address)) throw new TypeError(`not an IP address: ${JSON.stringify(address)}`);
  const zone = address.indexOf('%');
  let text = zone >= 0 ? address.slice(0, zone) : address;
  const bytes = Buffer.alloc(16);
  let tail: Buffer | undefined;
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    tail = ipv4Bytes(text.slice(lastColon + 1));
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const restGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const groups = rest === undefined ? headGroups : [...headGroups, ...new Array<string>(8 - headGroups.length - restGroups.length).fill('0'), ...restGroups];
  groups.forEach((group, i) => bytes.writeUInt16BE(parseInt(group, 16), i * 2));
  if (tail) tail.copy(bytes, 12);
  return bytes;
}

/** 16 bytes (union nf_inet_addr) with the IPv4 address in the first four. */
export function addressToInetAddr(address: string): Buffer {
  const bytes = addressToBytes(address);
  if (bytes.length === 16) return bytes;
  const padded = Buffer.alloc(16);
  bytes.copy(padded);
  return padded;
}

export function formatIPv4(bytes: Buffer, offset = 0): string {
  return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
}

export function formatIPv6(bytes: Buffer): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push(bytes.readUInt16BE(i * 2));
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (bestLength < 2) bestStart = -1;
  if (bestStart === 0 && (bestLength === 6 || (bestLength === 5 && words[5] === 0xffff))) {
    return `::${bestLength === 5 ? 'ffff:' : ''}${formatIPv4(bytes, 12)}`;
  }
  let text = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      text += '::';
      i += bestLength - 1;
      continue;
    }
    if (text !== '' && !text.endsWith(':')) text += ':';
    text += bytes.readUInt16BE(i * 2).toString(16);
  }
  return text;
}

/** Formats an address from `bytes` in `family`; the bytes may be longer (nf_inet_addr). */
export function formatAddress(family: AddressFamily, bytes: Buffer): string {
  if (family === 'inet') {
    if (bytes.length < 4) throw new RangeError(`IPv4 address needs 4 bytes, got ${bytes.length}`);
    return formatIPv4(bytes);
  }
  if (bytes.length < 16) throw new RangeError(`IPv6 address needs 16 bytes, got ${bytes.length}`);
  return formatIPv6(bytes);
}

/**
 * The canonical text of an address (as inet_ntop would print it), or undefined if invalid. The
 * address itself when it is IPv4: node's isIPv4 takes only plain dotted decimal without leading
 * zeros, which is canonical already (no bytes and no new string for each of 100,000 endpoints).
 */
export function canonicalAddress(address: string): string | undefined {
  if (isIPv4(address)) return address;
  return isIPv6(address) ? formatIPv6(addressToBytes(address)) : undefined;
}

/**
 * `10.0.0.1:80` or `[2001:db8::1]:80`, as ipvsadm prints a service or destination. Joined, not
 * concatenated: these are the keys of 100,000s of real servers, and V8 keeps a concatenation of 13
 * characters or more as a pair of strings (a ConsString, 64 bytes here) where join() writes one
 * flat string (40).
 */
export function formatHostPort(address: string, port: number): string {
  return address.includes(':') ? ['[', address, ']:', port].join('') : [address, port].join(':');
}

/** Whether `address` lies in `cidr` (`10.0.0.0/8`, `fd00::/64`); false across families or when invalid. */
export function cidrContains(cidr: string, address: string): boolean {
  const slash = cidr.indexOf('/');
  const network = slash < 0 ? cidr : cidr.slice(0, slash);
  const family = familyOf(network);
  if (!family || familyOf(address) !== family) return false;
  const bits = family === 'inet' ? 32 : 128;
  const prefix = slash < 0 ? bits : Number(cidr.slice(slash + 1));
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits) return false;
  const a = addressToBytes(network);
  const b = addressToBytes(address);
  const fullBytes = prefix >> 3;
  for (let i = 0; i < fullBytes; i++) if (a[i] !== b[i]) return false;
  const rest = prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (a.readUInt8(fullBytes) & mask) === (b.readUInt8(fullBytes) & mask);
}

export interface ParsedCidr {
  /** The network with its host bits cleared, as kube-proxy's ParseCIDRSloppy and ipset keep it. */
  readonly address: string;
  readonly prefix: number;
  readonly family: AddressFamily;
}

/**
 * `10.0.0.0/8`, `fd00::/64`; host bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`). The one CIDR
 * parser for flags, the configuration file and Services. A bare IP is not a CIDR, as to kube-proxy
 * (netutils.ParseCIDRSloppy refuses it in --cluster-cidr, --ipvs-exclude-cidrs, nodePortAddresses).
 */
export function parseCidr(text: unknown): ParsedCidr | undefined {
  if (typeof text !== 'string') return undefined;
  const slash = text.indexOf('/');
  if (slash < 0 || !/^\d{1,3}$/.test(text.slice(slash + 1))) return undefined;
  const network = text.slice(0, slash);
  if (network.includes('%')) return undefined;
  const family = familyOf(network);
  const prefix = Number(text.slice(slash + 1));
  if (!family || prefix > (family === 'inet' ? 32 : 128)) return undefined;
  const bytes = addressToBytes(network);
  for (let bit = prefix; bit < bytes.length * 8; bit++) bytes[bit >> 3] = (bytes[bit >> 3] ?? 0) & ~(0x80 >> (bit & 7));
  return { address: formatAddress(family, bytes), prefix, family };
}
