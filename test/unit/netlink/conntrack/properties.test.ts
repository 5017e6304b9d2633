// Property tests of the conntrack codec: every entry survives typed -> wire -> typed in both
// families; a deletion request names exactly the entry's original tuple, id and zone; a filter
// built from an entry's own tuples selects it and no variation of it; no bytes make a decoder do
// anything but return or throw NetlinkDecodeError.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatIPv4, formatIPv6, type AddressFamily } from '../../../../src/ip.js';
import { decodeAttributes, encodeAttributes, NLA_F_NESTED, NLA_F_NET_BYTEORDER, type RawAttribute } from '../../../../src/netlink/attributes.js';
import { NetlinkDecodeError } from '../../../../src/netlink/errors.js';
import { decodeEntry, decodeEntryMessage, decodeTuple, encodeDeletion, encodeEntry, nfgenHeader } from '../../../../src/netlink/conntrack/codec.js';
import { matchesFilter, udpFlowFilter, type ConntrackEntry, type ConntrackTuple } from '../../../../src/netlink/conntrack/types.js';
import {
  conntrackAttributes,
  ConntrackMessage,
  conntrackMessageType,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  tupleAttributes,
} from '../../../../src/netlink/conntrack/wire.js';
import { attributeTree as makeAttributeTree } from '../../support/attribute-tree.js';
import { defined } from '../../../support/defined.js';

const nfproto = (family: AddressFamily): number => (family === 'inet' ? 2 : 10);
const addressLength = (family: AddressFamily): number => (family === 'inet' ? 4 : 16);
const address = (family: AddressFamily): fc.Arbitrary<string> =>
  fc
    .uint8Array({ minLength: addressLength(family), maxLength: addressLength(family) })
    .map((bytes) => (family === 'inet' ? formatIPv4(Buffer.from(bytes)) : formatIPv6(Buffer.from(bytes))));
const port = fc.integer({ min: 0, max: 0xffff });
const u8 = fc.integer({ min: 0, max: 0xff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const optional = <T>(arbitrary: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(arbitrary, { nil: undefined });

/** Drops the keys whose value is undefined: the decoder leaves absent attributes out. */
const withoutUndefined = <T extends object>(value: T): T => Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;

function tuple(family: AddressFamily, protocol: number): fc.Arbitrary<ConntrackTuple> {
  const icmp = protocol === (family === 'inet' ? IPPROTO_ICMP : IPPROTO_ICMPV6);
  return fc
    .record({
      source: address(family),
      destination: address(family),
      sourcePort: icmp ? fc.constant(undefined) : optional(port),
      destinationPort: icmp ? fc.constant(undefined) : optional(port),
      // fc.record makes objects without a prototype; the decoder makes plain ones.
      icmp: icmp ? optional(fc.record({ id: port, type: u8, code: u8 }).map((key) => ({ ...key }))) : fc.constant(undefined),
      zone: optional(port),
    })
    .map((fields) => withoutUndefined({ ...fields, protocol }));
}

/** Top-level attributes the table does not name (counters, protocol info, labels...), with any flags. */
const knownIds = new Set(Object.values(conntrackAttributes).map((field) => field.id));
const unknownAttribute: fc.Arbitrary<RawAttribute> = fc
  .record({
    id: fc.integer({ min: 0, max: 40 }).filter((id) => !knownIds.has(id)),
    flags: fc.constantFrom(0, NLA_F_NESTED, NLA_F_NET_BYTEORDER),
    value: fc.uint8Array({ maxLength: 24 }).map((bytes) => Buffer.from(bytes)),
  })
  .map(({ id, flags, value }) => ({ type: id | flags, value }));

const entry = (family: AddressFamily): fc.Arbitrary<ConntrackEntry> =>
  fc
    .constantFrom(IPPROTO_UDP, IPPROTO_TCP, IPPROTO_SCTP, family === 'inet' ? IPPROTO_ICMP : IPPROTO_ICMPV6, 47)
    .chain((protocol) =>
      fc.record({
        original: tuple(family, protocol),
        reply: tuple(family, protocol),
        id: optional(u32),
        status: optional(u32),
        timeout: optional(u32),
        mark: optional(u32),
        use: optional(u32),
        zone: optional(port),
        unknown: optional(fc.array(unknownAttribute, { minLength: 1, maxLength: 3 })),
      }),
    )
    .map((fields) => withoutUndefined({ ...fields, family }));

const anyEntry = fc.oneof(entry('inet'), entry('inet6'));

/** What a dump answer for `entry` carries, decoded again as kipvs reads it. */
function throughTheWire(value: ConntrackEntry): ConntrackEntry {
  const payload = encodeAttributes(conntrackAttributes, encodeEntry(value), nfgenHeader(nfproto(value.family)));
  return decodeEntryMessage({ type: conntrackMessageType(ConntrackMessage.new), flags: 0, seq: 1, port: 0, payload });
}

describe('conntrack entries round-trip (property)', () => {
  it('typed -> wire -> typed is the identity, in both families, unknown attributes included', () => {
    fc.assert(
      fc.property(anyEntry, (value) => {
        expect(throughTheWire(value)).toStrictEqual(value);
      }),
      { numRuns: 1000 },
    );
  });

  it('a deletion names the original tuple, the id and the zone, and never leaves the tuple out', () => {
    fc.assert(
      fc.property(anyEntry, (value) => {
        const payload = encodeDeletion(value);
        expect([...payload.subarray(0, 4)]).toEqual([nfproto(value.family), 0, 0, 0]);
        const wire = decodeAttributes(conntrackAttributes, payload.subarray(4));
        expect(Object.keys(wire).sort()).toEqual(
          ['tupleOriginal', ...(value.id === undefined ? [] : ['id']), ...(value.zone === undefined ? [] : ['zone'])].sort(),
        );
        expect(decodeTuple(wire.tupleOriginal, value.family, 'CTA_TUPLE_ORIG')).toStrictEqual(value.original);
        expect(wire.id).toBe(value.id);
        expect(wire.zone).toBe(value.zone);
      }),
      { numRuns: 500 },
    );
  });
});

describe('conntrack filters (property)', () => {
  const udpEntry = fc
    .oneof(entry('inet'), entry('inet6'))
    .filter((value) => value.original.protocol === IPPROTO_UDP && value.original.destinationPort !== undefined && value.reply.sourcePort !== undefined);
  const targetOf = (value: ConntrackEntry) => ({
    family: value.family,
    virtualAddress: value.original.destination,
    virtualPort: defined(value.original.destinationPort, 'a destination port'),
    endpointAddress: value.reply.source,
    endpointPort: defined(value.reply.sourcePort, 'a reply source port'),
  });

  it('a UDP flow matches the target made of its own original destination and reply source', () => {
    fc.assert(
      fc.property(udpEntry, (value) => {
        expect(matchesFilter(value, udpFlowFilter(targetOf(value)))).toBe(true);
      }),
    );
  });

  it('and no target that differs from it in one field', () => {
    fc.assert(
      fc.property(udpEntry, fc.constantFrom('virtualPort', 'endpointPort', 'virtualAddress', 'endpointAddress', 'family'), (value, field) => {
        const target = targetOf(value);
        const other =
          field === 'virtualPort' || field === 'endpointPort'
            ? { ...target, [field]: (target[field] + 1) % 0x10000 }
            : field === 'family'
              ? { ...target, family: target.family === 'inet' ? ('inet6' as const) : ('inet' as const) }
              : {
                  ...target,
                  [field]:
                    target[field] === '10.0.0.1' || target[field] === 'fd00::1'
                      ? value.family === 'inet'
                        ? '10.0.0.2'
                        : 'fd00::2'
                      : value.family === 'inet'
                        ? '10.0.0.1'
                        : 'fd00::1',
                };
        expect(matchesFilter(value, udpFlowFilter(other))).toBe(false);
      }),
    );
  });
});

/** Runs a decoder on hostile input: it may return or throw NetlinkDecodeError, nothing else. */
function survives(decode: () => unknown): void {
  try {
    decode();
  } catch (error) {
    if (!(error instanceof NetlinkDecodeError)) throw error;
  }
}

const attributeTree = makeAttributeTree(20);

function decodeEverything(bytes: Buffer, family: number): void {
  survives(() =>
    decodeEntryMessage({
      type: conntrackMessageType(ConntrackMessage.new),
      flags: 0,
      seq: 0,
      port: 0,
      payload: Buffer.concat([Buffer.from([family, 0, 0, 0]), bytes]),
    }),
  );
  survives(() => decodeEntry(family, decodeAttributes(conntrackAttributes, bytes)));
  survives(() => decodeTuple(decodeAttributes(tupleAttributes, bytes), family === 10 ? 'inet6' : 'inet', 'CTA_TUPLE_ORIG'));
}

describe('conntrack decoders on hostile bytes (property)', () => {
  it('random bytes raise NetlinkDecodeError or decode, and never hang', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), fc.integer({ min: 0, max: 0xffff }), fc.constantFrom(0, 2, 10, 7), (raw, type, family) => {
        const bytes = Buffer.from(raw);
        survives(() => decodeEntryMessage({ type, flags: 0, seq: 0, port: 0, payload: bytes }));
        decodeEverything(bytes, family);
      }),
      { numRuns: 2000 },
    );
  });

  it('well-framed attributes with arbitrary types and contents raise NetlinkDecodeError or decode', () => {
    fc.assert(
      fc.property(attributeTree, fc.constantFrom(2, 10), (bytes, family) => {
        decodeEverything(bytes, family);
      }),
      { numRuns: 3000 },
    );
  });

  it('an entry whose tuples hold arbitrary attributes raises NetlinkDecodeError or decodes', () => {
    fc.assert(
      fc.property(attributeTree, attributeTree, fc.constantFrom(2, 10), (original, reply, family) => {
        const bytes = Buffer.concat([nestedAttribute(1, original), nestedAttribute(2, reply)]);
        decodeEverything(bytes, family);
      }),
      { numRuns: 2000 },
    );
  });
});

function nestedAttribute(type: number, value: Buffer): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt16LE(4 + value.length, 0);
  header.writeUInt16LE(type | NLA_F_NESTED, 2);
  return Buffer.concat([header, value]);
}
