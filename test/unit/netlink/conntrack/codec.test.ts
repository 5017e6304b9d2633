import { describe, expect, it } from 'vitest';
import { decodeAttributes, encodeAttributes } from '../../../../src/netlink/attributes.js';
import { NetlinkDecodeError, NetlinkEncodeError } from '../../../../src/netlink/errors.js';
import { parseMessages } from '../../../../src/netlink/message.js';
import { decodeEntry, decodeEntryMessage, encodeDeletion, encodeEntry, encodeTuple } from '../../../../src/netlink/conntrack/codec.js';
import {
  describeEntryDeletion,
  describeUdpFlowDeletion,
  formatTuple,
  matchesFilter,
  udpFlowFilter,
  type ConntrackEntry,
} from '../../../../src/netlink/conntrack/types.js';
import {
  conntrackAttributes,
  ConntrackMessage,
  conntrackMessageType,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPS_CONFIRMED,
  IPS_SEEN_REPLY,
} from '../../../../src/netlink/conntrack/wire.js';
import { hex } from '../../support/hex.js';
import { defined } from '../../../support/defined.js';

const message = (payload: Buffer, command: number = ConntrackMessage.new) => ({ type: conntrackMessageType(command), flags: 0, seq: 1, port: 0, payload });

/** A UDP flow through IPVS: client 10.200.0.2:40001 -> VIP 10.96.0.10:53, answered by 10.201.0.2:5353. */
const udpFlow: ConntrackEntry = {
  family: 'inet',
  original: { source: '10.200.0.2', destination: '10.96.0.10', protocol: IPPROTO_UDP, sourcePort: 40001, destinationPort: 53 },
  reply: { source: '10.201.0.2', destination: '10.200.0.2', protocol: IPPROTO_UDP, sourcePort: 5353, destinationPort: 40001 },
};

describe('conntrack entries from the kernel', () => {
  it('decodes a dump answer of Linux 6.1 as conntrack -L printed it', () => {
    // One datagram of an IPCTNL_MSG_CT_GET dump in the UML sandbox, after three datagrams from the
    // client through an IPVS masq UDP virtual server with net.ipv4.vs.conntrack=1. conntrack -L:
    // udp 17 29 src=10.200.0.2 dst=10.96.0.10 sport=40001 dport=53 src=10.201.0.2 dst=10.200.0.2 sport=5353 dport=40001 mark=0 use=1
    const datagram = hex(`
      a4 00 00 00 00 01 22 00 01 00 00 00 53 03 00 08   # nlmsghdr: 164 bytes, IPCTNL_MSG_CT_NEW, NLM_F_MULTI|NLM_F_DUMP_FILTERED
      02 00 00 00                                       # nfgenmsg: AF_INET
      34 00 01 80                                       # CTA_TUPLE_ORIG | NLA_F_NESTED
      14 00 01 80 08 00 01 00 0a c8 00 02               #   CTA_TUPLE_IP: CTA_IP_V4_SRC 10.200.0.2
      08 00 02 00 0a 60 00 0a                           #     CTA_IP_V4_DST 10.96.0.10
      1c 00 02 80 05 00 01 00 11 00 00 00               #   CTA_TUPLE_PROTO: CTA_PROTO_NUM 17
      06 00 02 00 9c 41 00 00 06 00 03 00 00 35 00 00   #     CTA_PROTO_SRC_PORT 40001, CTA_PROTO_DST_PORT 53
      34 00 02 80                                       # CTA_TUPLE_REPLY | NLA_F_NESTED
      14 00 01 80 08 00 01 00 0a c9 00 02               #   CTA_IP_V4_SRC 10.201.0.2
      08 00 02 00 0a c8 00 02                           #     CTA_IP_V4_DST 10.200.0.2
      1c 00 02 80 05 00 01 00 11 00 00 00               #   CTA_PROTO_NUM 17
      06 00 02 00 14 e9 00 00 06 00 03 00 9c 41 00 00   #     ports 5353 -> 40001
      08 00 03 00 00 00 00 0a                           # CTA_STATUS: SEEN_REPLY | CONFIRMED (no IPS_DST_NAT)
      08 00 08 00 00 00 00 00                           # CTA_MARK 0
      08 00 0c 00 e1 93 ce 76                           # CTA_ID
      08 00 0b 00 00 00 00 01                           # CTA_USE 1
      08 00 07 00 00 00 00 1d                           # CTA_TIMEOUT 29
    `);
    const [only] = parseMessages(datagram);
    expect(decodeEntryMessage(defined(only, 'a message in the datagram'))).toStrictEqual({
      ...udpFlow,
      status: IPS_SEEN_REPLY | IPS_CONFIRMED,
      mark: 0,
      id: 0xe193ce76,
      use: 1,
      timeout: 29,
    });
  });

  it('keeps attributes it does not read, byte for byte', () => {
    const counters = { type: 9 | 0x8000, value: hex('0c 00 01 00 00 00 00 00 00 00 00 03') };
    const payload = encodeAttributes(conntrackAttributes, { ...encodeEntry(udpFlow), unknown: [counters] }, Uint8Array.of(2, 0, 0, 0));
    expect(decodeEntryMessage(message(payload)).unknown).toStrictEqual([counters]);
  });

  it('reads IPv6 and ICMP tuples', () => {
    const ping: ConntrackEntry = {
      family: 'inet6',
      original: { source: 'fd00::2', destination: 'fd00::1', protocol: IPPROTO_ICMPV6, icmp: { id: 7, type: 128, code: 0 } },
      reply: { source: 'fd00::1', destination: 'fd00::2', protocol: IPPROTO_ICMPV6, icmp: { id: 7, type: 129, code: 0 } },
      zone: 3,
    };
    const payload = encodeAttributes(conntrackAttributes, encodeEntry(ping), Uint8Array.of(10, 0, 0, 0));
    expect(decodeEntryMessage(message(payload))).toStrictEqual(ping);
  });

  const udpReply = defined(encodeEntry(udpFlow).tupleReply, 'the reply tuple of a UDP flow');
  it.each([
    { what: 'a family that is not IPv4 or IPv6', nfproto: 7, wire: encodeEntry(udpFlow), error: /unknown family 7/ },
    { what: 'no reply tuple', nfproto: 2, wire: { tupleOriginal: encodeEntry(udpFlow).tupleOriginal }, error: /without CTA_TUPLE_REPLY/ },
    { what: 'no protocol', nfproto: 2, wire: { ...encodeEntry(udpFlow), tupleReply: { ip: udpReply.ip } }, error: /CTA_PROTO_NUM/ },
    {
      what: 'IPv6 addresses in an IPv4 entry',
      nfproto: 2,
      wire: { ...encodeEntry(udpFlow), tupleOriginal: encodeTuple({ ...udpFlow.original, source: '::1', destination: '::2' }, 'inet6') },
      error: /CTA_IP_V4_SRC/,
    },
    {
      what: 'half an ICMP key',
      nfproto: 2,
      wire: { ...encodeEntry(udpFlow), tupleReply: { ip: udpReply.ip, proto: { number: IPPROTO_ICMP, icmpType: 8 } } },
      error: /incomplete ICMP key/,
    },
  ])('refuses an entry with $what', ({ nfproto, wire, error }) => {
    const bytes = encodeAttributes(conntrackAttributes, wire);
    expect(() => decodeEntry(nfproto, decodeAttributes(conntrackAttributes, bytes))).toThrow(NetlinkDecodeError);
    expect(() => decodeEntry(nfproto, decodeAttributes(conntrackAttributes, bytes))).toThrow(error);
  });

  it('refuses messages of another subsystem or command, and a payload without nfgenmsg', () => {
    const payload = encodeAttributes(conntrackAttributes, encodeEntry(udpFlow), Uint8Array.of(2, 0, 0, 0));
    expect(() => decodeEntryMessage({ ...message(payload), type: (6 << 8) | 0 })).toThrow(/not of the ctnetlink subsystem/);
    expect(() => decodeEntryMessage(message(payload, ConntrackMessage.delete))).toThrow(/IPCTNL_MSG_CT_NEW/);
    expect(() => decodeEntryMessage(message(Buffer.from([2, 0])))).toThrow(/no nfgenmsg/);
  });
});

describe('conntrack deletion requests, checked byte by byte', () => {
  it('names the entry by its original tuple and id, and nothing else', () => {
    const payload = encodeDeletion({ ...udpFlow, id: 0xe193ce76, status: 10, timeout: 29, mark: 0, use: 1 });
    expect(payload).toEqual(
      hex(`
        02 00 00 00                                       # nfgenmsg: AF_INET, NFNETLINK_V0, res_id 0
        34 00 01 80                                       # CTA_TUPLE_ORIG | NLA_F_NESTED
        14 00 01 80 08 00 01 00 0a c8 00 02               #   CTA_TUPLE_IP | NLA_F_NESTED: CTA_IP_V4_SRC 10.200.0.2
        08 00 02 00 0a 60 00 0a                           #     CTA_IP_V4_DST 10.96.0.10
        1c 00 02 80 05 00 01 00 11 00 00 00               #   CTA_TUPLE_PROTO | NLA_F_NESTED: CTA_PROTO_NUM 17
        06 00 02 00 9c 41 00 00 06 00 03 00 00 35 00 00   #     ports 40001 -> 53, big-endian
        08 00 0c 00 e1 93 ce 76                           # CTA_ID
      `),
    );
  });

  it('speaks of an IPv6 entry as AF_INET6 with 16-byte addresses, and carries its zone', () => {
    const entry: ConntrackEntry = {
      family: 'inet6',
      original: { source: 'fd00:200::2', destination: 'fd00:96::10', protocol: IPPROTO_UDP, sourcePort: 1, destinationPort: 53 },
      reply: { source: 'fd00:201::2', destination: 'fd00:200::2', protocol: IPPROTO_UDP, sourcePort: 5353, destinationPort: 1 },
      zone: 5,
    };
    const payload = encodeDeletion(entry);
    expect(payload.subarray(0, 4)).toEqual(Buffer.from([10, 0, 0, 0]));
    const wire = decodeAttributes(conntrackAttributes, payload.subarray(4));
    expect(wire).toStrictEqual({
      tupleOriginal: {
        ip: { v6Source: Buffer.from('fd000200000000000000000000000002', 'hex'), v6Destination: Buffer.from('fd000096000000000000000000000010', 'hex') },
        proto: { number: IPPROTO_UDP, sourcePort: 1, destinationPort: 53 },
      },
      zone: 5,
    });
  });

  it.each([
    { what: 'an address of the other family', entry: { ...udpFlow, original: { ...udpFlow.original, destination: 'fd00::10' } } },
    { what: 'a missing address', entry: { ...udpFlow, original: { ...udpFlow.original, source: undefined as unknown as string } } },
    { what: 'a port out of range', entry: { ...udpFlow, original: { ...udpFlow.original, sourcePort: 65536 } } },
    { what: 'an ICMP key on UDP', entry: { ...udpFlow, original: { ...udpFlow.original, icmp: { id: 1, type: 8, code: 0 } } } },
    { what: 'an unknown family', entry: { ...udpFlow, family: 'packet' as 'inet' } },
  ])('refuses to encode a deletion with $what: never a DELETE without a tuple, which would flush the table', ({ entry }) => {
    expect(() => encodeDeletion(entry)).toThrow(NetlinkEncodeError);
  });
});

describe('conntrack filters', () => {
  const target = { family: 'inet' as const, virtualAddress: '10.96.0.10', virtualPort: 53, endpointAddress: '10.201.0.2', endpointPort: 5353 };

  it("selects a target's flows: UDP, to the virtual address:port, answered by the endpoint address:port", () => {
    expect(matchesFilter(udpFlow, udpFlowFilter(target))).toBe(true);
    expect(matchesFilter(udpFlow, udpFlowFilter({ ...target, endpointAddress: '10.201.1.2' }))).toBe(false);
    expect(matchesFilter(udpFlow, udpFlowFilter({ ...target, endpointPort: 53 }))).toBe(false);
    expect(matchesFilter(udpFlow, udpFlowFilter({ ...target, virtualAddress: '10.96.0.11' }))).toBe(false);
    expect(matchesFilter(udpFlow, udpFlowFilter({ ...target, virtualPort: 5353 }))).toBe(false);
    const tcp = { ...udpFlow, original: { ...udpFlow.original, protocol: IPPROTO_TCP }, reply: { ...udpFlow.reply, protocol: IPPROTO_TCP } };
    expect(matchesFilter(tcp, udpFlowFilter(target))).toBe(false);
    expect(matchesFilter({ ...udpFlow, family: 'inet6' }, udpFlowFilter(target))).toBe(false);
  });

  it('compares addresses in canonical form, whatever their spelling', () => {
    const v6: ConntrackEntry = {
      family: 'inet6',
      original: { source: 'fd00::2', destination: 'fd00::a', protocol: IPPROTO_UDP, sourcePort: 1, destinationPort: 53 },
      reply: { source: 'fd00::1:2', destination: 'fd00::2', protocol: IPPROTO_UDP, sourcePort: 53, destinationPort: 1 },
    };
    const spelled = { family: 'inet6' as const, virtualAddress: 'FD00:0:0::000A', virtualPort: 53, endpointAddress: 'fd00:0::1:2', endpointPort: 53 };
    expect(matchesFilter(v6, udpFlowFilter(spelled))).toBe(true);
  });

  it('an empty filter passes everything', () => {
    expect(matchesFilter(udpFlow, {})).toBe(true);
  });
});

describe('conntrack descriptions', () => {
  it('name the flow, the entry and the target as an operator reads them', () => {
    expect(formatTuple(udpFlow.original)).toBe('udp 10.200.0.2:40001 -> 10.96.0.10:53');
    expect(formatTuple({ source: 'fd00::1', destination: 'fd00::2', protocol: IPPROTO_ICMPV6, icmp: { id: 7, type: 128, code: 0 } })).toBe(
      'icmpv6 fd00::1 -> fd00::2 type 128 code 0 id 7',
    );
    expect(formatTuple({ source: '10.0.0.1', destination: '10.0.0.2', protocol: 47 })).toBe('47 10.0.0.1 -> 10.0.0.2');
    expect(describeEntryDeletion(udpFlow)).toBe('delete conntrack entry udp 10.200.0.2:40001 -> 10.96.0.10:53 (reply from 10.201.0.2:5353)');
    expect(describeUdpFlowDeletion({ family: 'inet', virtualAddress: '10.96.0.10', virtualPort: 53, endpointAddress: '10.244.1.2', endpointPort: 53 })).toBe(
      'delete UDP flows to 10.244.1.2:53 of UDP 10.96.0.10:53',
    );
    expect(describeUdpFlowDeletion({ family: 'inet6', virtualAddress: 'fd00::a', virtualPort: 53, endpointAddress: 'fd00::1:2', endpointPort: 53 })).toBe(
      'delete UDP flows to [fd00::1:2]:53 of UDP [fd00::a]:53',
    );
  });
});
