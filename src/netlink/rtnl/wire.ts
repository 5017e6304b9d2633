// rtnetlink wire format for links and addresses: message types, flags and attribute tables from
// linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h and linux/if.h, and the two fixed family
// headers (struct ifinfomsg, struct ifaddrmsg). Each entry names its uapi constant;
// test/unit/netlink/uapi.test.ts checks every value against the installed headers.
import { binary, nested, string, u32, u8, type Attrs } from '../attributes.js';
import { NetlinkDecodeError, NetlinkEncodeError } from '../errors.js';

/** linux/rtnetlink.h message types. */
export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;

/** linux/rtnetlink.h address scopes. */
export const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_SITE = 200;
export const RT_SCOPE_LINK = 253;
export const RT_SCOPE_HOST = 254;

/** linux/if.h device flags (ifi_flags). */
export const IFF_UP = 0x1;
export const IFF_BROADCAST = 0x2;
export const IFF_LOOPBACK = 0x8;
export const IFF_POINTOPOINT = 0x10;
export const IFF_RUNNING = 0x40;
export const IFF_NOARP = 0x80;
export const IFF_MULTICAST = 0x1000;
export const IFF_LOWER_UP = 0x10000;
/** linux/if.h: names are at most IFNAMSIZ - 1 bytes, plus the NUL. */
export const IFNAMSIZ = 16;

/** linux/if_addr.h address flags (ifa_flags, and IFA_FLAGS for the bits above the first eight). */
export const IFA_F_SECONDARY = 0x01;
export const IFA_F_NODAD = 0x02;
export const IFA_F_OPTIMISTIC = 0x04;
export const IFA_F_DADFAILED = 0x08;
export const IFA_F_DEPRECATED = 0x20;
export const IFA_F_TENTATIVE = 0x40;
export const IFA_F_PERMANENT = 0x80;
export const IFA_F_NOPREFIXROUTE = 0x200;

// Multicast groups (enum rtnetlink_groups in linux/rtnetlink.h): address changes per family.
export const RTNLGRP_IPV4_IFADDR = 5;
export const RTNLGRP_IPV6_IFADDR = 9;

/** Every constant above by its uapi name, for the header check. */
export const uapiConstants: Readonly<Record<string, number>> = {
  RTM_NEWLINK,
  RTM_DELLINK,
  RTM_GETLINK,
  RTM_NEWADDR,
  RTM_DELADDR,
  RTM_GETADDR,
  RT_SCOPE_UNIVERSE,
  RT_SCOPE_SITE,
  RT_SCOPE_LINK,
  RT_SCOPE_HOST,
  IFF_UP,
  IFF_BROADCAST,
  IFF_LOOPBACK,
  IFF_POINTOPOINT,
  IFF_RUNNING,
  IFF_NOARP,
  IFF_MULTICAST,
  IFF_LOWER_UP,
  IFNAMSIZ,
  IFA_F_SECONDARY,
  IFA_F_NODAD,
  IFA_F_OPTIMISTIC,
  IFA_F_DADFAILED,
  IFA_F_DEPRECATED,
  IFA_F_TENTATIVE,
  IFA_F_PERMANENT,
  IFA_F_NOPREFIXROUTE,
  RTNLGRP_IPV4_IFADDR,
  RTNLGRP_IPV6_IFADDR,
};

/**
 * IFLA_LINKINFO's contents. The kind-specific data is kept as bytes: a dummy has none, and we
 * never create other kinds.
 */
export const linkInfoAttributes = {
  kind: string(1, 'IFLA_INFO_KIND'),
  data: binary(2, 'IFLA_INFO_DATA'),
  slaveKind: string(4, 'IFLA_INFO_SLAVE_KIND'),
} as const;

/**
 * The link attributes kipvs reads or writes; the kernel sends some fifty more (stats, AF_SPEC),
 * which decode into `unknown`. IFLA_LINKINFO goes without NLA_F_NESTED, as iproute2 sends it
 * (`ip link add ... type dummy`, seen with strace); the kernel parses it either way
 * (nla_parse_nested_deprecated in rtnl_newlink) and does not set the flag in its answers.
 */
export const linkAttributes = {
  address: binary(1, 'IFLA_ADDRESS'),
  broadcast: binary(2, 'IFLA_BROADCAST'),
  ifname: string(3, 'IFLA_IFNAME'),
  mtu: u32(4, 'IFLA_MTU'),
  master: u32(10, 'IFLA_MASTER'),
  txqlen: u32(13, 'IFLA_TXQLEN'),
  operstate: u8(16, 'IFLA_OPERSTATE'),
  linkinfo: nested(18, 'IFLA_LINKINFO', linkInfoAttributes, false),
  extMask: u32(29, 'IFLA_EXT_MASK'),
} as const;

/**
 * Address attributes, IFA_LOCAL before IFA_ADDRESS: encoding follows table order, and this is the
 * order iproute2 writes them in (`ip addr add`), so our requests are byte for byte its requests.
 */
export const addressAttributes = {
  local: binary(2, 'IFA_LOCAL'),
  address: binary(1, 'IFA_ADDRESS'),
  label: string(3, 'IFA_LABEL'),
  broadcast: binary(4, 'IFA_BROADCAST'),
  /** struct ifa_cacheinfo: preferred and valid lifetimes, creation and update stamps. */
  cacheinfo: binary(6, 'IFA_CACHEINFO', 16),
  /** All 32 flag bits; ifa_flags in the header holds only the first eight. */
  flags: u32(8, 'IFA_FLAGS'),
  routePriority: u32(9, 'IFA_RT_PRIORITY'),
  proto: u8(11, 'IFA_PROTO'),
} as const;

export type WireLink = Attrs<typeof linkAttributes>;
export type WireAddress = Attrs<typeof addressAttributes>;

/** struct ifinfomsg (linux/rtnetlink.h): the header of every link message. */
export interface IfInfoHeader {
  /** ifi_family: AF_UNSPEC for links. */
  readonly family: number;
  /** ifi_type: ARPHRD_* hardware type. */
  readonly type: number;
  /** ifi_index: 0 in a request that names the link by IFLA_IFNAME or creates one. */
  readonly index: number;
  /** ifi_flags: IFF_* flags. */
  readonly flags: number;
  /** ifi_change: which IFF_* flags a request changes. */
  readonly change: number;
}

export const IFINFOMSG_LENGTH = 16;

function checkField(struct: string, field: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new NetlinkEncodeError(`${struct}.${field}: ${value} is not an integer from ${min} to ${max}`);
  }
  return value;
}

export function encodeIfInfoHeader(header: IfInfoHeader): Buffer {
  checkField('ifinfomsg', 'ifi_family', header.family, 0, 0xff);
  checkField('ifinfomsg', 'ifi_type', header.type, 0, 0xffff);
  checkField('ifinfomsg', 'ifi_index', header.index, -0x80000000, 0x7fffffff);
  checkField('ifinfomsg', 'ifi_flags', header.flags, 0, 0xffffffff);
  checkField('ifinfomsg', 'ifi_change', header.change, 0, 0xffffffff);
  const buf = Buffer.alloc(IFINFOMSG_LENGTH);
  buf.writeUInt8(header.family, 0);
  buf.writeUInt16LE(header.type, 2);
  buf.writeInt32LE(header.index, 4);
  buf.writeUInt32LE(header.flags, 8);
  buf.writeUInt32LE(header.change, 12);
  return buf;
}

export function decodeIfInfoHeader(payload: Buffer): IfInfoHeader {
  if (payload.length < IFINFOMSG_LENGTH) throw new NetlinkDecodeError(`ifinfomsg needs ${IFINFOMSG_LENGTH} bytes, got ${payload.length}`);
  return {
    family: payload.readUInt8(0),
    type: payload.readUInt16LE(2),
    index: payload.readInt32LE(4),
    flags: payload.readUInt32LE(8),
    change: payload.readUInt32LE(12),
  };
}

/** struct ifaddrmsg (linux/if_addr.h): the header of every address message. */
export interface IfAddrHeader {
  readonly family: number;
  readonly prefixLength: number;
  /** ifa_flags: the first eight IFA_F_* bits. */
  readonly flags: number;
  readonly scope: number;
  readonly index: number;
}

export const IFADDRMSG_LENGTH = 8;

export function encodeIfAddrHeader(header: IfAddrHeader): Buffer {
  checkField('ifaddrmsg', 'ifa_family', header.family, 0, 0xff);
  checkField('ifaddrmsg', 'ifa_prefixlen', header.prefixLength, 0, 0xff);
  checkField('ifaddrmsg', 'ifa_flags', header.flags, 0, 0xff);
  checkField('ifaddrmsg', 'ifa_scope', header.scope, 0, 0xff);
  checkField('ifaddrmsg', 'ifa_index', header.index, 0, 0xffffffff);
  const buf = Buffer.alloc(IFADDRMSG_LENGTH);
  buf.writeUInt8(header.family, 0);
  buf.writeUInt8(header.prefixLength, 1);
  buf.writeUInt8(header.flags, 2);
  buf.writeUInt8(header.scope, 3);
  buf.writeUInt32LE(header.index, 4);
  return buf;
}

export function decodeIfAddrHeader(payload: Buffer): IfAddrHeader {
  if (payload.length < IFADDRMSG_LENGTH) throw new NetlinkDecodeError(`ifaddrmsg needs ${IFADDRMSG_LENGTH} bytes, got ${payload.length}`);
  return {
    family: payload.readUInt8(0),
    prefixLength: payload.readUInt8(1),
    flags: payload.readUInt8(2),
    scope: payload.readUInt8(3),
    index: payload.readUInt32LE(4),
  };
}
