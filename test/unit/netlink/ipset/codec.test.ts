import { describe, expect, it } from 'vitest';
import { encodeAttributes, NLA_F_NESTED } from '../../../../src/netlink/attributes.js';
import { adtOf } from '../../support/ipset-members.js';
import { KernelUnsupportedError, NetlinkDecodeError, NetlinkEncodeError } from '../../../../src/netlink/errors.js';
import {
  checkSetName,
  decodeIpsetMessage,
  decodeSetListing,
  decodeSetListingTolerant,
  encodeCreate,
  encodeEntry,
  negotiateProtocol,
  nfgenHeader,
} from '../../../../src/netlink/ipset/codec.js';
import type { IpsetEntry, IpsetSetSpec } from '../../../../src/netlink/ipset/types.js';
import {
  entryCommandAttributes,
  entryDataAttributes,
  IPSET_FLAG_WITH_COMMENT,
  IpsetCommand,
  ipsetMessageType,
  setCommandAttributes,
  type WireSetCommand,
} from '../../../../src/netlink/ipset/wire.js';
import { hex } from '../../support/hex.js';

const HEAD = `
  02 00 00 00                   # nfgenmsg: AF_INET, NFNETLINK_V0, res_id 0
  05 00 01 00 07 00 00 00       # IPSET_ATTR_PROTOCOL 7
  06 00 02 00 53 00 00 00       # IPSET_ATTR_SETNAME "S"
`;

const addPayload = (entry: IpsetEntry): Buffer =>
  encodeAttributes(entryCommandAttributes, { protocol: 7, setName: 'S', data: encodeEntry(entry) }, nfgenHeader());

describe('ipset entry encoding, checked byte by byte', () => {
  it.each([
    {
      what: 'hash:ip,port 10.0.0.1,tcp:80',
      entry: { ip: '10.0.0.1', protocol: 'tcp', port: 80 } satisfies IpsetEntry,
      bytes: `${HEAD}
        20 00 07 80                   # IPSET_ATTR_DATA | NLA_F_NESTED, 32 bytes
        0c 00 01 80                   #   IPSET_ATTR_IP | NLA_F_NESTED
        08 00 01 40 0a 00 00 01       #     IPSET_ATTR_IPADDR_IPV4 | NLA_F_NET_BYTEORDER 10.0.0.1
        06 00 04 40 00 50 00 00       #   IPSET_ATTR_PORT | NLA_F_NET_BYTEORDER 80, big-endian
        05 00 07 00 06 00 00 00       #   IPSET_ATTR_PROTO IPPROTO_TCP`,
    },
    {
      what: 'hash:net 2001:db8::/32 comment "x"',
      entry: { net: { address: '2001:db8::', prefix: 32 }, comment: 'x' } satisfies IpsetEntry,
      bytes: `${HEAD}
        2c 00 07 80                   # IPSET_ATTR_DATA | NLA_F_NESTED, 44 bytes
        18 00 01 80                   #   IPSET_ATTR_IP | NLA_F_NESTED
        14 00 02 40                   #     IPSET_ATTR_IPADDR_IPV6 | NLA_F_NET_BYTEORDER
        20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 00
        05 00 03 00 20 00 00 00       #   IPSET_ATTR_CIDR 32
        06 00 1a 00 78 00 00 00       #   IPSET_ATTR_COMMENT "x"`,
    },
    {
      what: 'hash:ip,port,net 10.0.0.1,udp:53,10.1.0.0/16',
      entry: { ip: '10.0.0.1', protocol: 'udp', port: 53, net: { address: '10.1.0.0', prefix: 16 } } satisfies IpsetEntry,
      bytes: `${HEAD}
        34 00 07 80                   # IPSET_ATTR_DATA | NLA_F_NESTED, 52 bytes
        0c 00 01 80 08 00 01 40 0a 00 00 01   # IPSET_ATTR_IP 10.0.0.1
        06 00 04 40 00 35 00 00       #   IPSET_ATTR_PORT 53
        05 00 07 00 11 00 00 00       #   IPSET_ATTR_PROTO IPPROTO_UDP
        0c 00 14 80 08 00 01 40 0a 01 00 00   # IPSET_ATTR_IP2 | NLA_F_NESTED 10.1.0.0
        05 00 15 00 10 00 00 00       #   IPSET_ATTR_CIDR2 16`,
    },
    {
      what: 'hash:ip,port,ip fd00::1,sctp:9,fd00::2',
      entry: { ip: 'fd00::1', protocol: 'sctp', port: 9, ip2: 'fd00::2' } satisfies IpsetEntry,
      bytes: `${HEAD}
        44 00 07 80                   # IPSET_ATTR_DATA | NLA_F_NESTED, 68 bytes
        18 00 01 80 14 00 02 40 fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01   # IPSET_ATTR_IP fd00::1
        06 00 04 40 00 09 00 00       #   IPSET_ATTR_PORT 9
        05 00 07 00 84 00 00 00       #   IPSET_ATTR_PROTO IPPROTO_SCTP
        18 00 14 80 14 00 02 40 fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 02   # IPSET_ATTR_IP2 fd00::2`,
    },
    {
      what: 'bitmap:port 80',
      entry: { port: 80 } satisfies IpsetEntry,
      bytes: `${HEAD}
        0c 00 07 80                   # IPSET_ATTR_DATA | NLA_F_NESTED
        06 00 04 40 00 50 00 00       #   IPSET_ATTR_PORT 80`,
    },
  ])('$what', ({ entry, bytes }) => {
    expect(addPayload(entry).toString('hex')).toBe(hex(bytes).toString('hex'));
  });
});

describe('ipset set creation encoding, checked byte by byte', () => {
  const createPayload = (spec: IpsetSetSpec, revision: number): Buffer => {
    const wire = encodeCreate(spec);
    const attributes = { protocol: 7, setName: 'S', typeName: spec.type, revision, family: wire.family, data: wire.data };
    return encodeAttributes(setCommandAttributes, attributes, nfgenHeader());
  };

  it.each([
    {
      what: 'hash:ip,port family inet6 hashsize 64 comment',
      spec: { type: 'hash:ip,port', family: 'inet6', hashSize: 64, comment: true } satisfies IpsetSetSpec,
      revision: 6,
      bytes: `${HEAD}
        11 00 03 00 68 61 73 68 3a 69 70 2c 70 6f 72 74 00 00 00 00   # IPSET_ATTR_TYPENAME "hash:ip,port"
        05 00 04 00 06 00 00 00       # IPSET_ATTR_REVISION 6
        05 00 05 00 0a 00 00 00       # IPSET_ATTR_FAMILY NFPROTO_IPV6
        14 00 07 80                   # IPSET_ATTR_DATA | NLA_F_NESTED
        08 00 08 40 00 00 00 10       #   IPSET_ATTR_CADT_FLAGS | NLA_F_NET_BYTEORDER IPSET_FLAG_WITH_COMMENT
        08 00 12 40 00 00 00 40       #   IPSET_ATTR_HASHSIZE | NLA_F_NET_BYTEORDER 64`,
    },
    {
      what: 'bitmap:port range 1000-2000',
      spec: { type: 'bitmap:port', range: { from: 1000, to: 2000 } } satisfies IpsetSetSpec,
      revision: 3,
      bytes: `${HEAD}
        10 00 03 00 62 69 74 6d 61 70 3a 70 6f 72 74 00   # IPSET_ATTR_TYPENAME "bitmap:port"
        05 00 04 00 03 00 00 00       # IPSET_ATTR_REVISION 3
        05 00 05 00 00 00 00 00       # IPSET_ATTR_FAMILY NFPROTO_UNSPEC, as the ipset tool sends it
        14 00 07 80                   # IPSET_ATTR_DATA | NLA_F_NESTED
        06 00 04 40 03 e8 00 00       #   IPSET_ATTR_PORT 1000
        06 00 05 40 07 d0 00 00       #   IPSET_ATTR_PORT_TO 2000`,
    },
  ])('$what', ({ spec, revision, bytes }) => {
    expect(createPayload(spec, revision).toString('hex')).toBe(hex(bytes).toString('hex'));
  });
});

describe('ipset entry checks before anything is sent', () => {
  it.each([
    [{ net: { address: '10.0.0.1', prefix: 8 } }, /host bits set/],
    [{ ip: '10.0.0.1', protocol: 'tcp', port: 80, net: { address: '2001:db8::', prefix: 32 } }, /two families/],
    [{ ip: '10.0.0.1', protocol: 'tcp', port: 80, ip2: 'fd00::1' }, /two families/],
    [{ ip: '10.0.0.256' }, /not an IP address/],
    [{ ip: '10.0.0.1', protocol: 'tcp', port: 65536 }, /port 65536 is out of range/],
    [{ ip: '10.0.0.1', protocol: 'icmp', port: 0 }, /unknown protocol "icmp"/],
    [{ net: { address: '10.0.0.0', prefix: 33 } }, /prefix \/33 is out of range/],
    [{ ip: '10.0.0.1', comment: 'say "hi"' }, /without "/],
    [{ ip: '10.0.0.1', comment: 'x'.repeat(256) }, /at most 255 bytes/],
  ])('refuses %j', (entry, message) => {
    expect(() => encodeEntry(entry as IpsetEntry)).toThrow(NetlinkEncodeError);
    expect(() => encodeEntry(entry as IpsetEntry)).toThrow(message);
  });

  it('sends no comment for an empty one, as the kernel would keep none', () => {
    expect(encodeEntry({ ip: '10.0.0.1', comment: '' })).toEqual(encodeEntry({ ip: '10.0.0.1' }));
  });

  it('refuses set names the kernel would truncate or refuse', () => {
    expect(() => {
      checkSetName('KUBE-CLUSTER-IP');
    }).not.toThrow();
    expect(() => {
      checkSetName('x'.repeat(31));
    }).not.toThrow();
    expect(() => {
      checkSetName('x'.repeat(32));
    }).toThrow(NetlinkEncodeError);
    expect(() => {
      checkSetName('');
    }).toThrow(NetlinkEncodeError);
  });

  it('refuses an empty port range and sizes out of range', () => {
    expect(() => encodeCreate({ type: 'bitmap:port', range: { from: 2, to: 1 } })).toThrow(/empty/);
    expect(() => encodeCreate({ type: 'hash:ip', family: 'inet', maxElements: 0 })).toThrow(/maxelem 0/);
  });
});

describe('ipset protocol negotiation', () => {
  it.each([
    [{ protocol: 7, protocolMin: 6 }, 7, 7],
    [{ protocol: 6 }, 7, 6], // kernels before protocol 7 send no IPSET_ATTR_PROTOCOL_MIN
    [{ protocol: 8, protocolMin: 6 }, 7, 7],
    [{ protocol: 7, protocolMin: 6 }, 6, 6],
  ])('kernel %j, offered %i: speaks %i', (reply, offered, expected) => {
    expect(negotiateProtocol(reply, offered)).toBe(expected);
  });

  it.each([[{ protocol: 9, protocolMin: 8 }], [{ protocol: 5 }]])('gives up with a kernel speaking %j', (reply) => {
    expect(() => negotiateProtocol(reply)).toThrow(KernelUnsupportedError);
  });

  it('refuses an answer without a protocol', () => {
    expect(() => negotiateProtocol({})).toThrow(NetlinkDecodeError);
  });
});

describe('ipset messages', () => {
  it('reads the command from the message type and skips nfgenmsg', () => {
    const payload = Buffer.from([2, 0, 0, 0, 5, 0, 1, 0, 7, 0, 0, 0]);
    const message = decodeIpsetMessage({ type: ipsetMessageType(IpsetCommand.list), flags: 0, seq: 1, port: 0, payload });
    expect(message.command).toBe(IpsetCommand.list);
    expect(message.attributes).toEqual(payload.subarray(4));
  });

  it('refuses messages of another subsystem or without nfgenmsg', () => {
    const base = { flags: 0, seq: 1, port: 0 };
    expect(() => decodeIpsetMessage({ ...base, type: (1 << 8) | 7, payload: Buffer.alloc(4) })).toThrow(NetlinkDecodeError);
    expect(() => decodeIpsetMessage({ ...base, type: ipsetMessageType(7), payload: Buffer.alloc(3) })).toThrow(NetlinkDecodeError);
  });
});

describe('ipset listings', () => {
  const member = (entry: IpsetEntry) => ({ type: 7 | NLA_F_NESTED, value: encodeAttributes(entryDataAttributes, encodeEntry(entry)) });
  const header: WireSetCommand = {
    protocol: 7,
    setName: 'S',
    typeName: 'hash:ip',
    revision: 5,
    family: 2,
    data: {
      hashSize: 1024,
      maxElements: 65536,
      bucketSize: 12,
      initval: 0x32f85182,
      references: 1,
      memorySize: 340,
      elements: 2,
      cadtFlags: IPSET_FLAG_WITH_COMMENT,
    },
  };

  it('merges a set that comes in several messages, the header in the first', () => {
    const listing = decodeSetListing([
      { ...header, adt: adtOf([member({ ip: '10.0.0.1', comment: 'x y' })]) },
      { protocol: 7, setName: 'S', adt: adtOf([member({ ip: '10.0.0.2' })]) },
    ]);
    expect(listing).toEqual([
      {
        header: {
          name: 'S',
          type: 'hash:ip',
          family: 'inet',
          revision: 5,
          hashSize: 1024,
          maxElements: 65536,
          bucketSize: 12,
          initval: 0x32f85182,
          references: 1,
          memorySize: 340,
          entryCount: 2,
          comment: true,
        },
        entries: [{ ip: '10.0.0.1', comment: 'x y' }, { ip: '10.0.0.2' }],
      },
    ]);
  });

  it('refuses members before their header, a second header, and types it does not read', () => {
    expect(() => decodeSetListing([{ protocol: 7, setName: 'S', adt: adtOf([member({ ip: '10.0.0.2' })]) }])).toThrow(/before the header/);
    expect(() => decodeSetListing([header, header])).toThrow(/second header/);
    expect(() => decodeSetListing([{ ...header, typeName: 'hash:mac' }])).toThrow(NetlinkDecodeError);
  });

  it('tolerantly: a set it cannot read costs only itself, named with its type and the reason', () => {
    const mac = { ...header, setName: 'MAC', typeName: 'hash:mac', data: { ...header.data, elements: 3 } };
    const listing = decodeSetListingTolerant([
      mac,
      { ...header, adt: adtOf([member({ ip: '10.0.0.1' })]) },
      { protocol: 7, setName: 'LIST', typeName: 'list:set', revision: 3 },
    ]);
    expect(listing.map((set) => ('decoded' in set ? `decoded ${set.decoded.header.name}` : `${set.undecoded.name} ${set.undecoded.type}`))).toEqual([
      'MAC hash:mac',
      'decoded S',
      'LIST list:set',
    ]);
    expect(listing[0]).toEqual({
      undecoded: {
        name: 'MAC',
        type: 'hash:mac',
        revision: 5,
        references: 1,
        entryCount: 3,
        memorySize: 340,
        reason: 'set "MAC": set type "hash:mac" is not one kipvs reads',
      },
    });
  });
});
