// Property tests of the ipset codec: every entry type survives typed -> wire -> typed, in both
// families; a listing survives being split over messages; no bytes make a decoder do anything but
// return or throw NetlinkDecodeError.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatIPv4, formatIPv6, type AddressFamily } from '../../../../src/ip.js';
import { decodeAttributes, encodeAttributes, NLA_F_NESTED } from '../../../../src/netlink/attributes.js';
import { adtOf } from '../../support/ipset-members.js';
import { NetlinkDecodeError } from '../../../../src/netlink/errors.js';
import { decodeEntry, decodeIpsetMessage, decodeSetHeader, decodeSetListing, encodeEntry, nfgenHeader } from '../../../../src/netlink/ipset/codec.js';
import { ipsetSetTypes, type IpNet, type IpsetEntry, type IpsetSetType } from '../../../../src/netlink/ipset/types.js';
import {
  entryCommandAttributes,
  entryDataAttributes,
  IpsetCommand,
  ipsetMessageType,
  setCommandAttributes,
  type WireSetCommand,
} from '../../../../src/netlink/ipset/wire.js';
import { attributeTree as makeAttributeTree } from '../../support/attribute-tree.js';

const families: readonly AddressFamily[] = ['inet', 'inet6'];
const addressLength = (family: AddressFamily): number => (family === 'inet' ? 4 : 16);
const addressBytes = (family: AddressFamily) => fc.uint8Array({ minLength: addressLength(family), maxLength: addressLength(family) });
const formatBytes = (family: AddressFamily, bytes: Uint8Array): string => (family === 'inet' ? formatIPv4(Buffer.from(bytes)) : formatIPv6(Buffer.from(bytes)));
const address = (family: AddressFamily) => addressBytes(family).map((bytes) => formatBytes(family, bytes));

/** A network with its host bits clear, as the kernel stores it. */
const network = (family: AddressFamily): fc.Arbitrary<IpNet> =>
  fc.tuple(addressBytes(family), fc.integer({ min: 0, max: family === 'inet' ? 32 : 128 })).map(([bytes, prefix]) => {
    const masked = Uint8Array.from(bytes, (byte, index) => {
      const bitsKept = Math.min(8, Math.max(0, prefix - index * 8));
      return byte & ((0xff00 >> bitsKept) & 0xff);
    });
    return { address: formatBytes(family, masked), prefix };
  });

const protocol = fc.constantFrom('tcp' as const, 'udp' as const, 'sctp' as const);
const port = fc.integer({ min: 0, max: 0xffff });
const comment = fc.option(
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 }).filter((text) => !/["\0]/.test(text) && Buffer.byteLength(text) <= 255),
  { nil: undefined },
);
/** A plain object (fc.record's have no prototype), with the comment only when there is one. */
const withComment = <T extends IpsetEntry>(entry: T, text: string | undefined): T => (text === undefined ? { ...entry } : { ...entry, comment: text });

function entryOf(type: IpsetSetType, family: AddressFamily): fc.Arbitrary<IpsetEntry> {
  const ip = address(family);
  const shapes: Record<IpsetSetType, fc.Arbitrary<IpsetEntry>> = {
    'hash:ip': fc.record({ ip }),
    'hash:ip,port': fc.record({ ip, protocol, port }),
    'hash:ip,port,ip': fc.record({ ip, protocol, port, ip2: ip }),
    'hash:ip,port,net': fc.record({ ip, protocol, port, net: network(family) }),
    'hash:net': fc.record({ net: network(family) }),
    'bitmap:port': fc.record({ port }),
  };
  return fc.tuple(shapes[type], comment).map(([entry, text]) => withComment(entry, text));
}

interface Case {
  readonly type: IpsetSetType;
  readonly family: AddressFamily;
}
const cases = ipsetSetTypes.flatMap((type): Case[] => (type === 'bitmap:port' ? [{ type, family: 'inet' }] : families.map((family) => ({ type, family }))));

/** What an ADD message carries, decoded again as the kernel would read it. */
function throughTheWire(type: IpsetSetType, entry: IpsetEntry): IpsetEntry {
  const payload = encodeAttributes(entryCommandAttributes, { protocol: 7, setName: 'S', data: encodeEntry(entry) }, nfgenHeader());
  const message = decodeIpsetMessage({ type: ipsetMessageType(IpsetCommand.add), flags: 0, seq: 1, port: 0, payload });
  const { data } = decodeAttributes(entryCommandAttributes, message.attributes);
  return decodeEntry(type, data ?? {});
}

describe('ipset entries round-trip (property)', () => {
  it.each(cases)('$type $family: typed -> wire -> typed is the identity', ({ type, family }) => {
    fc.assert(
      fc.property(entryOf(type, family), (entry) => {
        expect(throughTheWire(type, entry)).toStrictEqual(entry);
      }),
      { numRuns: 300 },
    );
  });

  it.each(cases)('$type $family: a listing split over any number of messages reads back whole', ({ type, family }) => {
    const header: WireSetCommand = {
      protocol: 7,
      setName: 'S',
      typeName: type,
      revision: 1,
      family: family === 'inet' ? 2 : 10,
      data: type === 'bitmap:port' ? { port: 0, portTo: 65535, elements: 0 } : { hashSize: 1024, maxElements: 65536, elements: 0 },
    };
    fc.assert(
      fc.property(fc.array(entryOf(type, family), { maxLength: 40 }), fc.integer({ min: 1, max: 5 }), (entries, parts) => {
        const members = entries.map((entry) => ({
          type: 7 | NLA_F_NESTED,
          value: encodeAttributes(entryDataAttributes, encodeEntry(entry)),
        }));
        const size = Math.ceil(members.length / parts) || 1;
        const messages: WireSetCommand[] = [{ ...header, adt: adtOf(members.slice(0, size)) }];
        for (let start = size; start < members.length; start += size) {
          messages.push({ protocol: 7, setName: 'S', adt: adtOf(members.slice(start, start + size)) });
        }
        // Through bytes, as the dump delivers them.
        const decoded = messages.map((wire) => decodeAttributes(setCommandAttributes, encodeAttributes(setCommandAttributes, wire)));
        const [set] = decodeSetListing(decoded);
        expect(set?.entries).toStrictEqual(entries);
        expect(set?.header.type).toBe(type);
      }),
      { numRuns: 100 },
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

function decodeEverything(bytes: Buffer): void {
  survives(() => decodeSetListing([decodeAttributes(setCommandAttributes, bytes)]));
  survives(() => decodeSetHeader(decodeAttributes(setCommandAttributes, bytes)));
  for (const type of ipsetSetTypes) survives(() => decodeEntry(type, decodeAttributes(entryDataAttributes, bytes)));
}

const attributeTree = makeAttributeTree(31);

describe('ipset decoders on hostile bytes (property)', () => {
  it('random bytes raise NetlinkDecodeError or decode, and never hang', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), fc.integer({ min: 0, max: 0xffff }), (raw, type) => {
        const bytes = Buffer.from(raw);
        survives(() => decodeIpsetMessage({ type, flags: 0, seq: 0, port: 0, payload: bytes }));
        decodeEverything(bytes);
      }),
      { numRuns: 2000 },
    );
  });

  it('well-framed attributes with arbitrary types and contents raise NetlinkDecodeError or decode', () => {
    fc.assert(
      fc.property(attributeTree, (bytes) => {
        decodeEverything(bytes);
      }),
      { numRuns: 3000 },
    );
  });

  it.each(ipsetSetTypes)('a %s listing whose members hold arbitrary attributes raises NetlinkDecodeError or decodes', (type) => {
    fc.assert(
      fc.property(fc.array(attributeTree, { maxLength: 4 }), fc.constantFrom(2, 10, 0, 7), (members, family) => {
        const wire: WireSetCommand = {
          protocol: 7,
          setName: 'S',
          typeName: type,
          revision: 1,
          family,
          data: { hashSize: 64, maxElements: 8, port: 1, portTo: 2 },
          adt: adtOf(members.map((value) => ({ type: 7 | NLA_F_NESTED, value }))),
        };
        survives(() => decodeSetListing([decodeAttributes(setCommandAttributes, encodeAttributes(setCommandAttributes, wire))]));
      }),
      { numRuns: 1000 },
    );
  });
});
