// Typed links and addresses <-> rtnetlink messages (family header + attributes). The request
// builders return what NetlinkConnection sends; their bytes match iproute2's for the same command
// (test/unit/netlink/rtnl/codec.test.ts compares them with `ip` captured under strace).
import { addressToBytes, afNumber, familyFromNumber, familyOf, formatAddress, AF_INET6 } from '../../ip.js';
import { decodeAttributes, encodeAttributes } from '../attributes.js';
import { NetlinkDecodeError, NetlinkEncodeError } from '../errors.js';
import { NLM_F_CREATE, NLM_F_EXCL } from '../message.js';
import { formatInterfaceAddress, type InterfaceAddress, type InterfaceAddressKey, type Link } from './types.js';
import {
  addressAttributes,
  decodeIfAddrHeader,
  decodeIfInfoHeader,
  encodeIfAddrHeader,
  encodeIfInfoHeader,
  IFA_F_NODAD,
  IFADDRMSG_LENGTH,
  IFF_UP,
  IFINFOMSG_LENGTH,
  IFNAMSIZ,
  linkAttributes,
  RT_SCOPE_UNIVERSE,
  RTM_DELADDR,
  RTM_DELLINK,
  RTM_GETADDR,
  RTM_GETLINK,
  RTM_NEWADDR,
  RTM_NEWLINK,
  type IfInfoHeader,
  type WireAddress,
  type WireLink,
} from './wire.js';

/** A request before the connection gives it a sequence number (and a description, for errors). */
export interface RtnlMessage {
  readonly type: number;
  /** Flags besides NLM_F_REQUEST and NLM_F_ACK, which the connection sets. */
  readonly flags: number;
  readonly payload: Buffer;
}

const AF_UNSPEC = 0;

/**
 * The kernel's dev_valid_name() (net/core/dev.c): 1 to IFNAMSIZ-1 bytes, not `.` or `..`, no `/`,
 * `:` or white space. Checked here so a bad name fails with a reason rather than the kernel's EINVAL.
 */
export function checkLinkName(name: string): string {
  const reason =
    typeof name !== 'string' || name === ''
      ? 'it is empty'
      : Buffer.byteLength(name) >= IFNAMSIZ
        ? `it is longer than ${IFNAMSIZ - 1} bytes`
        : name === '.' || name === '..'
          ? 'it is . or ..'
          : /[/:\s\0]/.test(name)
            ? 'it contains /, :, NUL or white space'
            : undefined;
  if (reason) throw new NetlinkEncodeError(`link name ${JSON.stringify(name)} is not valid: ${reason}`);
  return name;
}

/**
 * `10.96.0.1/32`, `fd00::1/128`, or a bare address, which means the host prefix (/32, /128): the
 * form kube-proxy binds service IPs in. The address comes back in canonical form.
 */
export function parseInterfaceAddress(text: string): InterfaceAddressKey {
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const family = addressText.includes('%') ? undefined : familyOf(addressText);
  if (!family) throw new NetlinkEncodeError(`${JSON.stringify(text)} is not an IP address with an optional /prefix length`);
  const maxPrefix = family === 'inet' ? 32 : 128;
  const prefixText = slash < 0 ? String(maxPrefix) : text.slice(slash + 1);
  const prefixLength = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefixLength <= maxPrefix)) {
    throw new NetlinkEncodeError(`${JSON.stringify(text)}: prefix length must be 0 to ${maxPrefix}`);
  }
  return { family, address: formatAddress(family, addressToBytes(addressText)), prefixLength };
}

function linkMessage(type: number, flags: number, header: Partial<IfInfoHeader>, attributes: WireLink): RtnlMessage {
  const prefix = encodeIfInfoHeader({ family: AF_UNSPEC, type: 0, index: 0, flags: 0, change: 0, ...header });
  return { type, flags, payload: encodeAttributes(linkAttributes, attributes, prefix) };
}

/**
 * `ip link add NAME type dummy`: left down, as kube-proxy's EnsureDummyDevice (netlink.LinkAdd)
 * leaves kube-ipvs0. The kernel adds the local route of an address on a down link all the same
 * (fib_add_ifaddr(), addrconf for IPv6), which is all IPVS needs.
 */
export function createDummyLinkMessage(name: string): RtnlMessage {
  return linkMessage(
    RTM_NEWLINK,
    NLM_F_CREATE | NLM_F_EXCL,
    {},
    {
      ifname: checkLinkName(name),
      linkinfo: { kind: 'dummy' },
    },
  );
}

/** `ip link set dev INDEX up`: ifi_change limits the change to IFF_UP. */
export function setLinkUpMessage(index: number): RtnlMessage {
  return linkMessage(RTM_NEWLINK, 0, { index, flags: IFF_UP, change: IFF_UP }, {});
}

/** One link by name; the kernel answers ENODEV when there is none. */
export function getLinkMessage(name: string): RtnlMessage {
  return linkMessage(RTM_GETLINK, 0, {}, { ifname: checkLinkName(name) });
}

/** Deletes by name rather than index: an index can be reused by a link created in between. */
export function deleteLinkMessage(name: string): RtnlMessage {
  return linkMessage(RTM_DELLINK, 0, {}, { ifname: checkLinkName(name) });
}

export function dumpLinksMessage(): RtnlMessage {
  return linkMessage(RTM_GETLINK, 0, {}, {});
}

/** A link as the kernel describes it in RTM_NEWLINK (also what a fake kernel would answer). */
export function encodeLink(link: Link): Buffer {
  const attributes: WireLink = { ifname: link.name, mtu: link.mtu };
  if (link.kind !== null) attributes.linkinfo = { kind: link.kind };
  const prefix = encodeIfInfoHeader({ family: AF_UNSPEC, type: 0, index: link.index, flags: link.flags, change: 0 });
  return encodeAttributes(linkAttributes, attributes, prefix);
}

export function decodeLink(payload: Buffer): Link {
  const header = decodeIfInfoHeader(payload);
  const attributes = decodeAttributes(linkAttributes, payload.subarray(IFINFOMSG_LENGTH));
  if (attributes.ifname === undefined) throw new NetlinkDecodeError(`link ${header.index} has no IFLA_IFNAME`);
  return {
    index: header.index,
    name: attributes.ifname,
    kind: attributes.linkinfo?.kind ?? null,
    up: (header.flags & IFF_UP) !== 0,
    flags: header.flags,
    mtu: attributes.mtu ?? 0,
  };
}

export type AddressFields = Omit<InterfaceAddress, 'cidr'>;

/**
 * An address message. The flags go in ifa_flags when they fit in its eight bits, in IFA_FLAGS
 * otherwise, as iproute2 does (ipaddr_modify); the kernel takes IFA_FLAGS over ifa_flags when
 * both are there. IFA_LOCAL and IFA_ADDRESS both carry the address, as `ip addr add` sends them.
 */
export function encodeAddress(fields: AddressFields): Buffer {
  if (familyOf(fields.address) !== fields.family) {
    throw new NetlinkEncodeError(`${JSON.stringify(fields.address)} is not an ${fields.family === 'inet' ? 'IPv4' : 'IPv6'} address`);
  }
  const bytes = addressToBytes(fields.address);
  const attributes: WireAddress = { local: bytes, address: bytes };
  if (fields.label !== undefined) attributes.label = fields.label;
  if (fields.flags > 0xff) attributes.flags = fields.flags;
  const prefix = encodeIfAddrHeader({
    family: afNumber(fields.family),
    prefixLength: fields.prefixLength,
    flags: fields.flags > 0xff ? 0 : fields.flags,
    scope: fields.scope,
    index: fields.linkIndex,
  });
  return encodeAttributes(addressAttributes, attributes, prefix);
}

/** Service IPs are usable at once: IPv6 ones skip duplicate address detection (IFA_F_NODAD). */
export function addAddressMessage(linkIndex: number, key: InterfaceAddressKey): RtnlMessage {
  const flags = key.family === 'inet6' ? IFA_F_NODAD : 0;
  const payload = encodeAddress({ ...key, linkIndex, flags, scope: RT_SCOPE_UNIVERSE });
  return { type: RTM_NEWADDR, flags: NLM_F_CREATE | NLM_F_EXCL, payload };
}

/** The kernel matches address and prefix length: deleting 10.0.0.1/32 leaves 10.0.0.1/24 alone. */
export function deleteAddressMessage(linkIndex: number, key: InterfaceAddressKey): RtnlMessage {
  const payload = encodeAddress({ ...key, linkIndex, flags: 0, scope: RT_SCOPE_UNIVERSE });
  return { type: RTM_DELADDR, flags: 0, payload };
}

/** All addresses of all links, IPv4 and IPv6 (AF_UNSPEC dumps every family). */
export function dumpAddressesMessage(): RtnlMessage {
  const prefix = encodeIfAddrHeader({ family: AF_UNSPEC, prefixLength: 0, flags: 0, scope: 0, index: 0 });
  return { type: RTM_GETADDR, flags: 0, payload: prefix };
}

/** An address from RTM_NEWADDR; null for families other than IPv4 and IPv6. */
export function decodeAddress(payload: Buffer): InterfaceAddress | null {
  const header = decodeIfAddrHeader(payload);
  const family = familyFromNumber(header.family);
  if (!family) return null;
  const attributes = decodeAttributes(addressAttributes, payload.subarray(IFADDRMSG_LENGTH));
  // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's on a point-to-point link.
  const raw = attributes.local ?? attributes.address;
  const size = header.family === AF_INET6 ? 16 : 4;
  if (!raw) throw new NetlinkDecodeError(`address on link ${header.index} has neither IFA_LOCAL nor IFA_ADDRESS`);
  if (raw.length !== size) throw new NetlinkDecodeError(`address on link ${header.index}: expected ${size} bytes, got ${raw.length}`);
  if (header.prefixLength > size * 8) throw new NetlinkDecodeError(`address on link ${header.index}: prefix length ${header.prefixLength}`);
  const address = formatAddress(family, raw);
  return {
    family,
    address,
    prefixLength: header.prefixLength,
    cidr: formatInterfaceAddress({ address, prefixLength: header.prefixLength }),
    linkIndex: header.index,
    flags: attributes.flags ?? header.flags,
    scope: header.scope,
    ...(attributes.label !== undefined ? { label: attributes.label } : {}),
  };
}
