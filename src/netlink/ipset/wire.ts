// ipset over nfnetlink: commands, attribute tables and error codes from linux/netfilter/ipset/ip_set.h,
// ip_set_hash.h, ip_set_bitmap.h and linux/netfilter/nfnetlink.h. Each entry names its uapi constant;
// test/unit/netlink/uapi.test.ts checks every value against the installed headers.
//
// Two rules of the kernel shape these tables (net/netfilter/ipset/ip_set_core.c):
//  - every nest (IPSET_ATTR_DATA, IPSET_ATTR_ADT, IPSET_ATTR_IP, IPSET_ATTR_IP2, ...) must carry
//    NLA_F_NESTED, or the kernel answers IPSET_ERR_PROTOCOL (flag_nested());
//  - 16- and 32-bit data attributes are big-endian and must carry NLA_F_NET_BYTEORDER
//    (ip_set_attr_netorder() / ip_set_optattr_netorder(), again IPSET_ERR_PROTOCOL otherwise).
import { be16, be32, binary, nested, string, u8, type Attrs, type ScalarField } from '../attributes.js';

/** linux/netfilter/nfnetlink.h */
export const NFNL_SUBSYS_IPSET = 6;
export const NFNETLINK_V0 = 0;
/** struct nfgenmsg { u8 nfgen_family; u8 version; __be16 res_id; } */
export const NFGENMSG_LENGTH = 4;

/** linux/netfilter.h: the families ipset speaks of (NFPROTO_UNSPEC for bitmap:port). */
export const NFPROTO_UNSPEC = 0;
export const NFPROTO_IPV4 = 2;
export const NFPROTO_IPV6 = 10;

/** The protocol versions this code speaks (IPSET_PROTOCOL, IPSET_PROTOCOL_MIN). */
export const IPSET_PROTOCOL = 7;
export const IPSET_PROTOCOL_MIN = 6;
/** Longest set or type name, the terminating NUL included. */
export const IPSET_MAXNAMELEN = 32;
export const IPSET_MAX_COMMENT_SIZE = 255;

export const IpsetCommand = {
  protocol: 1, // IPSET_CMD_PROTOCOL
  create: 2, // IPSET_CMD_CREATE
  destroy: 3, // IPSET_CMD_DESTROY
  flush: 4, // IPSET_CMD_FLUSH
  rename: 5, // IPSET_CMD_RENAME
  swap: 6, // IPSET_CMD_SWAP
  list: 7, // IPSET_CMD_LIST
  save: 8, // IPSET_CMD_SAVE
  add: 9, // IPSET_CMD_ADD
  del: 10, // IPSET_CMD_DEL
  test: 11, // IPSET_CMD_TEST
  header: 12, // IPSET_CMD_HEADER
  type: 13, // IPSET_CMD_TYPE
} as const;

export const ipsetCommandOrig: Record<keyof typeof IpsetCommand, string> = {
  protocol: 'IPSET_CMD_PROTOCOL',
  create: 'IPSET_CMD_CREATE',
  destroy: 'IPSET_CMD_DESTROY',
  flush: 'IPSET_CMD_FLUSH',
  rename: 'IPSET_CMD_RENAME',
  swap: 'IPSET_CMD_SWAP',
  list: 'IPSET_CMD_LIST',
  save: 'IPSET_CMD_SAVE',
  add: 'IPSET_CMD_ADD',
  del: 'IPSET_CMD_DEL',
  test: 'IPSET_CMD_TEST',
  header: 'IPSET_CMD_HEADER',
  type: 'IPSET_CMD_TYPE',
};

/** The nfnetlink message type of an ipset command: subsystem in the high byte. */
export const ipsetMessageType = (command: number): number => (NFNL_SUBSYS_IPSET << 8) | command;

/** A 32-bit data attribute: big-endian with NLA_F_NET_BYTEORDER, as the kernel requires. */
const net32 = (id: number, orig: string): ScalarField<'be32'> => be32(id, orig, true);
const net16 = (id: number, orig: string): ScalarField<'be16'> => be16(id, orig, true);
/**
 * 64-bit counters travel big-endian (nla_put_net64); the attribute kinds have no be64, and kipvs
 * does not use counters, so they stay bytes rather than being misread as little-endian.
 */
const net64Bytes = (id: number, orig: string): ScalarField<'binary'> => ({ ...binary(id, orig, 8), netByteOrderFlag: true });

/** An address inside IPSET_ATTR_IP and friends: exactly one of the two, both in network order. */
export const ipAddressAttributes = {
  ipv4: net32(1, 'IPSET_ATTR_IPADDR_IPV4'),
  ipv6: { ...binary(2, 'IPSET_ATTR_IPADDR_IPV6', 16), netByteOrderFlag: true } as ScalarField<'binary'>,
} as const;

const address = (id: number, orig: string) => nested(id, orig, ipAddressAttributes, true);

/** The CADT attributes (create and add/del/test share ids 1..16). */
const cadtAttributes = {
  ip: address(1, 'IPSET_ATTR_IP'),
  ipTo: address(2, 'IPSET_ATTR_IP_TO'),
  cidr: u8(3, 'IPSET_ATTR_CIDR'),
  port: net16(4, 'IPSET_ATTR_PORT'),
  portTo: net16(5, 'IPSET_ATTR_PORT_TO'),
  timeout: net32(6, 'IPSET_ATTR_TIMEOUT'),
  proto: u8(7, 'IPSET_ATTR_PROTO'),
  cadtFlags: net32(8, 'IPSET_ATTR_CADT_FLAGS'),
  lineno: net32(9, 'IPSET_ATTR_CADT_LINENO'),
  mark: net32(10, 'IPSET_ATTR_MARK'),
  markmask: net32(11, 'IPSET_ATTR_MARKMASK'),
} as const;

/**
 * IPSET_ATTR_DATA of CREATE, and of the set header a LIST answers with. Its ids from 17 on mean
 * something else than in an entry's IPSET_ATTR_DATA, hence two tables.
 */
export const createDataAttributes = {
  ...cadtAttributes,
  initval: net32(17, 'IPSET_ATTR_INITVAL'),
  hashSize: net32(18, 'IPSET_ATTR_HASHSIZE'),
  maxElements: net32(19, 'IPSET_ATTR_MAXELEM'),
  netmask: u8(20, 'IPSET_ATTR_NETMASK'),
  bucketSize: u8(21, 'IPSET_ATTR_BUCKETSIZE'),
  resize: u8(22, 'IPSET_ATTR_RESIZE'),
  size: net32(23, 'IPSET_ATTR_SIZE'),
  elements: net32(24, 'IPSET_ATTR_ELEMENTS'),
  references: net32(25, 'IPSET_ATTR_REFERENCES'),
  memorySize: net32(26, 'IPSET_ATTR_MEMSIZE'),
} as const;

/** IPSET_ATTR_DATA of one entry: ADD, DEL, TEST, and each member of a LIST answer. */
export const entryDataAttributes = {
  ...cadtAttributes,
  ether: binary(17, 'IPSET_ATTR_ETHER', 6),
  name: string(18, 'IPSET_ATTR_NAME'),
  nameref: string(19, 'IPSET_ATTR_NAMEREF'),
  ip2: address(20, 'IPSET_ATTR_IP2'),
  cidr2: u8(21, 'IPSET_ATTR_CIDR2'),
  ip2To: address(22, 'IPSET_ATTR_IP2_TO'),
  iface: string(23, 'IPSET_ATTR_IFACE'),
  bytes: net64Bytes(24, 'IPSET_ATTR_BYTES'),
  packets: net64Bytes(25, 'IPSET_ATTR_PACKETS'),
  comment: string(26, 'IPSET_ATTR_COMMENT'),
  skbmark: net64Bytes(27, 'IPSET_ATTR_SKBMARK'),
  skbprio: net32(28, 'IPSET_ATTR_SKBPRIO'),
  skbqueue: net16(29, 'IPSET_ATTR_SKBQUEUE'),
  pad: binary(30, 'IPSET_ATTR_PAD'),
} as const;

/**
 * Command-level attributes of CREATE, DESTROY, FLUSH, LIST (request and answer), HEADER, PROTOCOL.
 * IPSET_ATTR_ADT holds one IPSET_ATTR_DATA per member, repeated: a table cannot name a repeated
 * attribute, so it arrives as a view of its bytes, and the codec walks the members one at a time
 * (forEachAttribute), decoding each with entryDataAttributes. Never encoded: kipvs sends members
 * one per message.
 */
export const setCommandAttributes = {
  protocol: u8(1, 'IPSET_ATTR_PROTOCOL'),
  setName: string(2, 'IPSET_ATTR_SETNAME'),
  typeName: string(3, 'IPSET_ATTR_TYPENAME'),
  revision: u8(4, 'IPSET_ATTR_REVISION'),
  family: u8(5, 'IPSET_ATTR_FAMILY'),
  flags: net32(6, 'IPSET_ATTR_FLAGS'),
  data: nested(7, 'IPSET_ATTR_DATA', createDataAttributes, true),
  adt: binary(8, 'IPSET_ATTR_ADT'),
  lineno: net32(9, 'IPSET_ATTR_LINENO'),
  protocolMin: u8(10, 'IPSET_ATTR_PROTOCOL_MIN'),
  index: net16(11, 'IPSET_ATTR_INDEX'),
} as const;

/** ADD, DEL and TEST: the set and one entry. */
export const entryCommandAttributes = {
  protocol: u8(1, 'IPSET_ATTR_PROTOCOL'),
  setName: string(2, 'IPSET_ATTR_SETNAME'),
  data: nested(7, 'IPSET_ATTR_DATA', entryDataAttributes, true),
  lineno: net32(9, 'IPSET_ATTR_LINENO'),
} as const;

/** RENAME and SWAP: IPSET_ATTR_SETNAME2 shares its id with IPSET_ATTR_TYPENAME. */
export const setPairCommandAttributes = {
  protocol: u8(1, 'IPSET_ATTR_PROTOCOL'),
  setName: string(2, 'IPSET_ATTR_SETNAME'),
  setName2: string(3, 'IPSET_ATTR_SETNAME2'),
} as const;

/** TYPE (request and answer): IPSET_ATTR_REVISION_MIN shares its id with IPSET_ATTR_PROTOCOL_MIN. */
export const typeCommandAttributes = {
  protocol: u8(1, 'IPSET_ATTR_PROTOCOL'),
  typeName: string(3, 'IPSET_ATTR_TYPENAME'),
  revision: u8(4, 'IPSET_ATTR_REVISION'),
  family: u8(5, 'IPSET_ATTR_FAMILY'),
  revisionMin: u8(10, 'IPSET_ATTR_REVISION_MIN'),
} as const;

export type WireAddress = Attrs<typeof ipAddressAttributes>;
export type WireCreateData = Attrs<typeof createDataAttributes>;
export type WireEntryData = Attrs<typeof entryDataAttributes>;
export type WireSetCommand = Attrs<typeof setCommandAttributes>;
export type WireEntryCommand = Attrs<typeof entryCommandAttributes>;
export type WireSetPairCommand = Attrs<typeof setPairCommandAttributes>;
export type WireTypeCommand = Attrs<typeof typeCommandAttributes>;

/** Command-level flags (IPSET_ATTR_FLAGS), enum ipset_cmd_flags. */
export const IPSET_FLAG_EXIST = 1 << 0;
export const IPSET_FLAG_LIST_SETNAME = 1 << 1;
export const IPSET_FLAG_LIST_HEADER = 1 << 2;

/** CADT flags (IPSET_ATTR_CADT_FLAGS), enum ipset_cadt_flags. */
export const IPSET_FLAG_NOMATCH = 1 << 2;
export const IPSET_FLAG_WITH_COUNTERS = 1 << 3;
export const IPSET_FLAG_WITH_COMMENT = 1 << 4;
export const IPSET_FLAG_WITH_FORCEADD = 1 << 5;
export const IPSET_FLAG_WITH_SKBINFO = 1 << 6;

/** Protocol numbers of hash:*port* entries. */
export { IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP } from '../inet.js';

/** enum ipset_errno: errors every set type can answer. */
export const IPSET_ERR_PRIVATE = 4096;
export const IPSET_ERR_TYPE_SPECIFIC = 4352;
export const ipsetCommonErrors: readonly string[] = [
  'IPSET_ERR_PRIVATE',
  'IPSET_ERR_PROTOCOL',
  'IPSET_ERR_FIND_TYPE',
  'IPSET_ERR_MAX_SETS',
  'IPSET_ERR_BUSY',
  'IPSET_ERR_EXIST_SETNAME2',
  'IPSET_ERR_TYPE_MISMATCH',
  'IPSET_ERR_EXIST',
  'IPSET_ERR_INVALID_CIDR',
  'IPSET_ERR_INVALID_NETMASK',
  'IPSET_ERR_INVALID_FAMILY',
  'IPSET_ERR_TIMEOUT',
  'IPSET_ERR_REFERENCED',
  'IPSET_ERR_IPADDR_IPV4',
  'IPSET_ERR_IPADDR_IPV6',
  'IPSET_ERR_COUNTER',
  'IPSET_ERR_COMMENT',
  'IPSET_ERR_INVALID_MARKMASK',
  'IPSET_ERR_SKBINFO',
];
export const IPSET_ERR_PROTOCOL = IPSET_ERR_PRIVATE + ipsetCommonErrors.indexOf('IPSET_ERR_PROTOCOL');
export const IPSET_ERR_FIND_TYPE = IPSET_ERR_PRIVATE + ipsetCommonErrors.indexOf('IPSET_ERR_FIND_TYPE');
export const IPSET_ERR_EXIST = IPSET_ERR_PRIVATE + ipsetCommonErrors.indexOf('IPSET_ERR_EXIST');

/**
 * Type-specific errors start again at IPSET_ERR_TYPE_SPECIFIC for each kind of set, so 4352 is
 * IPSET_ERR_HASH_FULL from a hash and IPSET_ERR_BITMAP_RANGE from a bitmap.
 */
export const ipsetHashErrors: readonly string[] = [
  'IPSET_ERR_HASH_FULL',
  'IPSET_ERR_HASH_ELEM',
  'IPSET_ERR_INVALID_PROTO',
  'IPSET_ERR_MISSING_PROTO',
  'IPSET_ERR_HASH_RANGE_UNSUPPORTED',
  'IPSET_ERR_HASH_RANGE',
];
export const ipsetBitmapErrors: readonly string[] = ['IPSET_ERR_BITMAP_RANGE', 'IPSET_ERR_BITMAP_RANGE_SIZE'];
