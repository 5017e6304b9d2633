// IPVS generic netlink wire format: commands and attribute tables from linux/ip_vs.h. Each entry
// names its uapi constant; test/unit/netlink/uapi.test.ts checks every value against the header.
import { be16, binary, counter64, nested, skip, string, u16, u32, u64, u8, type Attrs } from '../attributes.js';

export const IPVS_GENL_NAME = 'IPVS';
export const IPVS_GENL_VERSION = 1;

export const IpvsCommand = {
  newService: 1, // IPVS_CMD_NEW_SERVICE
  setService: 2, // IPVS_CMD_SET_SERVICE
  delService: 3, // IPVS_CMD_DEL_SERVICE
  getService: 4, // IPVS_CMD_GET_SERVICE
  newDest: 5, // IPVS_CMD_NEW_DEST
  setDest: 6, // IPVS_CMD_SET_DEST
  delDest: 7, // IPVS_CMD_DEL_DEST
  getDest: 8, // IPVS_CMD_GET_DEST
  setConfig: 12, // IPVS_CMD_SET_CONFIG
  getConfig: 13, // IPVS_CMD_GET_CONFIG
  getInfo: 15, // IPVS_CMD_GET_INFO
  zero: 16, // IPVS_CMD_ZERO
  flush: 17, // IPVS_CMD_FLUSH
} as const;

export const ipvsCommandOrig: Record<keyof typeof IpvsCommand, string> = {
  newService: 'IPVS_CMD_NEW_SERVICE',
  setService: 'IPVS_CMD_SET_SERVICE',
  delService: 'IPVS_CMD_DEL_SERVICE',
  getService: 'IPVS_CMD_GET_SERVICE',
  newDest: 'IPVS_CMD_NEW_DEST',
  setDest: 'IPVS_CMD_SET_DEST',
  delDest: 'IPVS_CMD_DEL_DEST',
  getDest: 'IPVS_CMD_GET_DEST',
  setConfig: 'IPVS_CMD_SET_CONFIG',
  getConfig: 'IPVS_CMD_GET_CONFIG',
  getInfo: 'IPVS_CMD_GET_INFO',
  zero: 'IPVS_CMD_ZERO',
  flush: 'IPVS_CMD_FLUSH',
};

/** struct ip_vs_stats_user as attributes: 32-bit counters (IPVS_SVC_ATTR_STATS, IPVS_DEST_ATTR_STATS). */
export const statsAttributes = {
  conns: u32(1, 'IPVS_STATS_ATTR_CONNS'),
  inPackets: u32(2, 'IPVS_STATS_ATTR_INPKTS'),
  outPackets: u32(3, 'IPVS_STATS_ATTR_OUTPKTS'),
  inBytes: u64(4, 'IPVS_STATS_ATTR_INBYTES'),
  outBytes: u64(5, 'IPVS_STATS_ATTR_OUTBYTES'),
  cps: u32(6, 'IPVS_STATS_ATTR_CPS'),
  inPps: u32(7, 'IPVS_STATS_ATTR_INPPS'),
  outPps: u32(8, 'IPVS_STATS_ATTR_OUTPPS'),
  inBps: u32(9, 'IPVS_STATS_ATTR_INBPS'),
  outBps: u32(10, 'IPVS_STATS_ATTR_OUTBPS'),
} as const;

/** The same counters, all 64-bit (IPVS_SVC_ATTR_STATS64, IPVS_DEST_ATTR_STATS64). */
export const stats64Attributes = {
  conns: counter64(1, 'IPVS_STATS_ATTR_CONNS'),
  inPackets: counter64(2, 'IPVS_STATS_ATTR_INPKTS'),
  outPackets: counter64(3, 'IPVS_STATS_ATTR_OUTPKTS'),
  inBytes: counter64(4, 'IPVS_STATS_ATTR_INBYTES'),
  outBytes: counter64(5, 'IPVS_STATS_ATTR_OUTBYTES'),
  cps: counter64(6, 'IPVS_STATS_ATTR_CPS'),
  inPps: counter64(7, 'IPVS_STATS_ATTR_INPPS'),
  outPps: counter64(8, 'IPVS_STATS_ATTR_OUTPPS'),
  inBps: counter64(9, 'IPVS_STATS_ATTR_INBPS'),
  outBps: counter64(10, 'IPVS_STATS_ATTR_OUTBPS'),
} as const;

export const serviceAttributes = {
  af: u16(1, 'IPVS_SVC_ATTR_AF'),
  protocol: u16(2, 'IPVS_SVC_ATTR_PROTOCOL'),
  /** union nf_inet_addr: 16 bytes, IPv4 in the first four. */
  addr: binary(3, 'IPVS_SVC_ATTR_ADDR'),
  port: be16(4, 'IPVS_SVC_ATTR_PORT'),
  fwmark: u32(5, 'IPVS_SVC_ATTR_FWMARK'),
  schedName: string(6, 'IPVS_SVC_ATTR_SCHED_NAME'),
  /** struct ip_vs_flags { u32 flags; u32 mask; } */
  flags: binary(7, 'IPVS_SVC_ATTR_FLAGS', 8),
  timeout: u32(8, 'IPVS_SVC_ATTR_TIMEOUT'),
  /** IPv4: the mask as __be32; IPv6: the prefix length as a host-order u32 (ipvsadm does the same). */
  netmask: binary(9, 'IPVS_SVC_ATTR_NETMASK', 4),
  stats: nested(10, 'IPVS_SVC_ATTR_STATS', statsAttributes),
  peName: string(11, 'IPVS_SVC_ATTR_PE_NAME'),
  stats64: nested(12, 'IPVS_SVC_ATTR_STATS64', stats64Attributes),
} as const;

export const destAttributes = {
  addr: binary(1, 'IPVS_DEST_ATTR_ADDR'),
  port: be16(2, 'IPVS_DEST_ATTR_PORT'),
  fwdMethod: u32(3, 'IPVS_DEST_ATTR_FWD_METHOD'),
  weight: u32(4, 'IPVS_DEST_ATTR_WEIGHT'),
  upperThreshold: u32(5, 'IPVS_DEST_ATTR_U_THRESH'),
  lowerThreshold: u32(6, 'IPVS_DEST_ATTR_L_THRESH'),
  activeConns: u32(7, 'IPVS_DEST_ATTR_ACTIVE_CONNS'),
  inactiveConns: u32(8, 'IPVS_DEST_ATTR_INACT_CONNS'),
  persistConns: u32(9, 'IPVS_DEST_ATTR_PERSIST_CONNS'),
  stats: nested(10, 'IPVS_DEST_ATTR_STATS', statsAttributes),
  addrFamily: u16(11, 'IPVS_DEST_ATTR_ADDR_FAMILY'),
  stats64: nested(12, 'IPVS_DEST_ATTR_STATS64', stats64Attributes),
  tunType: u8(13, 'IPVS_DEST_ATTR_TUN_TYPE'),
  tunPort: be16(14, 'IPVS_DEST_ATTR_TUN_PORT'),
  tunFlags: u16(15, 'IPVS_DEST_ATTR_TUN_FLAGS'),
} as const;

export const commandAttributes = {
  service: nested(1, 'IPVS_CMD_ATTR_SERVICE', serviceAttributes),
  dest: nested(2, 'IPVS_CMD_ATTR_DEST', destAttributes),
  timeoutTcp: u32(4, 'IPVS_CMD_ATTR_TIMEOUT_TCP'),
  timeoutTcpFin: u32(5, 'IPVS_CMD_ATTR_TIMEOUT_TCP_FIN'),
  timeoutUdp: u32(6, 'IPVS_CMD_ATTR_TIMEOUT_UDP'),
} as const;

/**
 * The same command attributes for reading the table without its counters: dumps skip the two
 * nested stats of every service and real server, the bulk of a large dump's decoding and garbage.
 */
export const commandAttributesWithoutStats = {
  ...commandAttributes,
  service: nested(1, 'IPVS_CMD_ATTR_SERVICE', { ...serviceAttributes, stats: skip(10, 'IPVS_SVC_ATTR_STATS'), stats64: skip(12, 'IPVS_SVC_ATTR_STATS64') }),
  dest: nested(2, 'IPVS_CMD_ATTR_DEST', { ...destAttributes, stats: skip(10, 'IPVS_DEST_ATTR_STATS'), stats64: skip(12, 'IPVS_DEST_ATTR_STATS64') }),
} as const;

/** GET_INFO answers with these at the top level. */
export const infoAttributes = {
  version: u32(1, 'IPVS_INFO_ATTR_VERSION'),
  connTabSize: u32(2, 'IPVS_INFO_ATTR_CONN_TAB_SIZE'),
} as const;

export type WireService = Attrs<typeof serviceAttributes>;
export type WireDest = Attrs<typeof destAttributes>;
export type WireCommand = Attrs<typeof commandAttributes>;
export type WireStats = Attrs<typeof statsAttributes>;
export type WireStats64 = Attrs<typeof stats64Attributes>;

/** linux/ip_vs.h service flags. */
export const IP_VS_SVC_F_PERSISTENT = 0x0001;
export const IP_VS_SVC_F_HASHED = 0x0002;
export const IP_VS_SVC_F_ONEPACKET = 0x0004;
export const IP_VS_SVC_F_SCHED1 = 0x0008;
export const IP_VS_SVC_F_SCHED2 = 0x0010;
export const IP_VS_SVC_F_SCHED3 = 0x0020;

/** linux/ip_vs.h forwarding methods (IP_VS_CONN_F_FWD_MASK). */
export const IP_VS_CONN_F_FWD_MASK = 0x0007;
export const IP_VS_CONN_F_MASQ = 0x0000;
export const IP_VS_CONN_F_LOCALNODE = 0x0001;
export const IP_VS_CONN_F_TUNNEL = 0x0002;
export const IP_VS_CONN_F_DROUTE = 0x0003;
export const IP_VS_CONN_F_BYPASS = 0x0004;

export { IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP } from '../inet.js';
