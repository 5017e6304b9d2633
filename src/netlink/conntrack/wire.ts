// Conntrack over nfnetlink (ctnetlink): message types and attribute tables from
// linux/netfilter/nfnetlink_conntrack.h, the subsystem from linux/netfilter/nfnetlink.h, status bits
// from linux/netfilter/nf_conntrack_common.h. Each entry names its uapi constant;
// test/unit/netlink/uapi.test.ts checks every value against the installed headers.
//
// The kernel writes nests with NLA_F_NESTED (nla_nest_start()) and reads them with or without it
// (nla_parse_nested_deprecated() in ctnetlink_parse_tuple()); we send it, as libnetfilter_conntrack
// does. Addresses, ports and the 32-bit values are big-endian (nla_put_be32(), nla_put_be16()),
// without NLA_F_NET_BYTEORDER: ctnetlink neither sets nor checks it.
import { be16, be32, binary, nested, u8, type Attrs } from '../attributes.js';

/** linux/netfilter/nfnetlink.h */
export const NFNL_SUBSYS_CTNETLINK = 1;
export const NFNETLINK_V0 = 0;
/** struct nfgenmsg { u8 nfgen_family; u8 version; __be16 res_id; } */
export const NFGENMSG_LENGTH = 4;

/** linux/netfilter.h: the nfgen_family of a request; NFPROTO_UNSPEC dumps every family. */
export const NFPROTO_UNSPEC = 0;
export const NFPROTO_IPV4 = 2;
export const NFPROTO_IPV6 = 10;

/** enum cntl_msg_types: the commands kipvs sends (a dump answers with IPCTNL_MSG_CT_NEW messages). */
export const ConntrackMessage = {
  new: 0, // IPCTNL_MSG_CT_NEW
  get: 1, // IPCTNL_MSG_CT_GET
  delete: 2, // IPCTNL_MSG_CT_DELETE
} as const;

export const conntrackMessageOrig: Record<keyof typeof ConntrackMessage, string> = {
  new: 'IPCTNL_MSG_CT_NEW',
  get: 'IPCTNL_MSG_CT_GET',
  delete: 'IPCTNL_MSG_CT_DELETE',
};

/** The nfnetlink message type of a ctnetlink command: subsystem in the high byte. */
export const conntrackMessageType = (command: number): number => (NFNL_SUBSYS_CTNETLINK << 8) | command;

/** The layer-4 protocols whose tuple keys kipvs reads. */
export { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE } from '../inet.js';

/** enum ip_conntrack_status (CTA_STATUS): the bits kipvs names. */
export const IPS_SEEN_REPLY = 1 << 1;
export const IPS_ASSURED = 1 << 2;
export const IPS_CONFIRMED = 1 << 3;
export const IPS_SRC_NAT = 1 << 4;
export const IPS_DST_NAT = 1 << 5;

/** CTA_TUPLE_IP: the addresses of one direction, both of one family. */
export const ipAttributes = {
  v4Source: be32(1, 'CTA_IP_V4_SRC'),
  v4Destination: be32(2, 'CTA_IP_V4_DST'),
  v6Source: binary(3, 'CTA_IP_V6_SRC', 16),
  v6Destination: binary(4, 'CTA_IP_V6_DST', 16),
} as const;

/** CTA_TUPLE_PROTO: the layer-4 key, ports for TCP/UDP/SCTP, id/type/code for ICMP. */
export const protoAttributes = {
  number: u8(1, 'CTA_PROTO_NUM'),
  sourcePort: be16(2, 'CTA_PROTO_SRC_PORT'),
  destinationPort: be16(3, 'CTA_PROTO_DST_PORT'),
  icmpId: be16(4, 'CTA_PROTO_ICMP_ID'),
  icmpType: u8(5, 'CTA_PROTO_ICMP_TYPE'),
  icmpCode: u8(6, 'CTA_PROTO_ICMP_CODE'),
  icmpv6Id: be16(7, 'CTA_PROTO_ICMPV6_ID'),
  icmpv6Type: u8(8, 'CTA_PROTO_ICMPV6_TYPE'),
  icmpv6Code: u8(9, 'CTA_PROTO_ICMPV6_CODE'),
} as const;

/** CTA_TUPLE_ORIG and CTA_TUPLE_REPLY. */
export const tupleAttributes = {
  ip: nested(1, 'CTA_TUPLE_IP', ipAttributes, true),
  proto: nested(2, 'CTA_TUPLE_PROTO', protoAttributes, true),
  zone: be16(3, 'CTA_TUPLE_ZONE'),
} as const;

/**
 * One conntrack entry (the body of IPCTNL_MSG_CT_NEW, GET and DELETE). Counters, protocol state,
 * timestamps, labels and the like are not named: they arrive in `unknown`, byte for byte.
 */
export const conntrackAttributes = {
  tupleOriginal: nested(1, 'CTA_TUPLE_ORIG', tupleAttributes, true),
  tupleReply: nested(2, 'CTA_TUPLE_REPLY', tupleAttributes, true),
  status: be32(3, 'CTA_STATUS'),
  timeout: be32(7, 'CTA_TIMEOUT'),
  mark: be32(8, 'CTA_MARK'),
  use: be32(11, 'CTA_USE'),
  id: be32(12, 'CTA_ID'),
  zone: be16(18, 'CTA_ZONE'),
} as const;

export type WireIp = Attrs<typeof ipAttributes>;
export type WireProto = Attrs<typeof protoAttributes>;
export type WireTuple = Attrs<typeof tupleAttributes>;
export type WireConntrack = Attrs<typeof conntrackAttributes>;
