// Round trips and hostile bytes: what the codec writes it reads back unchanged, and no byte string
// makes a decoder crash, hang or throw anything but NetlinkDecodeError.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { canonicalAddress } from '../../../../src/ip.js';
import { decodeAttributes, encodeAttributes } from '../../../../src/netlink/attributes.js';
import { NetlinkDecodeError } from '../../../../src/netlink/errors.js';
import {
  addAddressMessage,
  decodeAddress,
  decodeLink,
  encodeAddress,
  encodeLink,
  parseInterfaceAddress,
  type AddressFields,
} from '../../../../src/netlink/rtnl/codec.js';
import { formatInterfaceAddress, type Link } from '../../../../src/netlink/rtnl/types.js';
import {
  addressAttributes,
  decodeIfAddrHeader,
  decodeIfInfoHeader,
  encodeIfAddrHeader,
  encodeIfInfoHeader,
  IFA_F_NODAD,
  IFF_UP,
  linkAttributes,
} from '../../../../src/netlink/rtnl/wire.js';
import { defined } from '../../../support/defined.js';

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const text = fc.string({ maxLength: 40 }).filter((s) => !s.includes('\0'));
const bytes = (maxLength = 32, minLength = 0) => fc.uint8Array({ minLength, maxLength }).map((a) => Buffer.from(a));

const linkName = fc.stringMatching(/^[a-z0-9_.@-]{1,15}$/).filter((s) => s !== '.' && s !== '..');
const arbitraryLink: fc.Arbitrary<Link> = fc
  .record({
    index: fc.integer({ min: 1, max: 0x7fffffff }),
    name: linkName,
    kind: fc.option(fc.oneof(fc.constantFrom('dummy', 'veth', 'bridge', 'ipip', 'ip6tnl'), text), { nil: null }),
    flags: u32,
    mtu: u32,
  })
  .map((link) => ({ ...link, up: (link.flags & IFF_UP) !== 0 }));

const ipv4 = fc.ipV4().map((address) => ({ family: 'inet' as const, address, prefixLength: fc.integer({ min: 0, max: 32 }) }));
const ipv6 = fc.ipV6().map((address) => ({ family: 'inet6' as const, address, prefixLength: fc.integer({ min: 0, max: 128 }) }));
const arbitraryKey = fc
  .oneof(ipv4, ipv6)
  .chain(({ family, address, prefixLength }) =>
    prefixLength.map((length) => ({ family, address: defined(canonicalAddress(address), `the canonical form of ${address}`), prefixLength: length })),
  );
const arbitraryAddress: fc.Arbitrary<AddressFields> = fc
  .record({ key: arbitraryKey, linkIndex: u32, flags: u32, scope: u8, label: fc.option(text, { nil: undefined }) })
  .map(({ key, label, ...rest }) => ({ ...key, ...rest, ...(label === undefined ? {} : { label }) }));

describe('rtnetlink round trips (property)', () => {
  it('ifinfomsg and ifaddrmsg headers decode to what was encoded', () => {
    const ifinfo = fc.record({ family: u8, type: u16, index: fc.integer({ min: -0x80000000, max: 0x7fffffff }), flags: u32, change: u32 });
    fc.assert(
      fc.property(ifinfo, (header) => {
        expect(decodeIfInfoHeader(encodeIfInfoHeader(header))).toEqual(header);
      }),
    );
    const ifaddr = fc.record({ family: u8, prefixLength: u8, flags: u8, scope: u8, index: u32 });
    fc.assert(
      fc.property(ifaddr, (header) => {
        expect(decodeIfAddrHeader(encodeIfAddrHeader(header))).toEqual(header);
      }),
    );
  });

  it('the link and address attribute tables decode what they encode', () => {
    const linkValues = fc.record(
      {
        address: bytes(),
        ifname: text,
        mtu: u32,
        master: u32,
        txqlen: u32,
        operstate: u8,
        linkinfo: fc.record({ kind: text, data: bytes(), slaveKind: text }, { requiredKeys: [] }),
        extMask: u32,
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(linkValues, (values) => {
        expect(decodeAttributes(linkAttributes, encodeAttributes(linkAttributes, values))).toEqual(values);
      }),
    );
    const addressValues = fc.record(
      { local: bytes(16), address: bytes(16), label: text, cacheinfo: bytes(16, 16), flags: u32, proto: u8 },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(addressValues, (values) => {
        expect(decodeAttributes(addressAttributes, encodeAttributes(addressAttributes, values))).toEqual(values);
      }),
    );
  });

  it('a link reads back as it was written', () => {
    fc.assert(
      fc.property(arbitraryLink, (link) => {
        expect(decodeLink(encodeLink(link))).toEqual(link);
      }),
    );
  });

  it('an address reads back as it was written, flags above the first eight bits included', () => {
    fc.assert(
      fc.property(arbitraryAddress, (fields) => {
        expect(decodeAddress(encodeAddress(fields))).toEqual({ ...fields, cidr: formatInterfaceAddress(fields) });
      }),
    );
  });

  it('an address written in any spelling is added under its canonical key, IPv6 without DAD', () => {
    const spelled = fc.oneof(fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })), fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 128 })));
    fc.assert(
      fc.property(spelled, u32, ([address, prefixLength], linkIndex) => {
        const key = parseInterfaceAddress(`${address}/${prefixLength}`);
        expect(formatInterfaceAddress(key)).toBe(`${canonicalAddress(address)}/${prefixLength}`);
        expect(parseInterfaceAddress(formatInterfaceAddress(key))).toEqual(key);
        const added = decodeAddress(addAddressMessage(linkIndex, key).payload);
        expect(added).toMatchObject({ ...key, linkIndex, flags: key.family === 'inet6' ? IFA_F_NODAD : 0 });
      }),
    );
  });
});

/** Decodes, or throws NetlinkDecodeError; anything else fails the property. */
function decodesOrRefuses(decode: (payload: Buffer) => unknown, payload: Buffer): void {
  try {
    decode(payload);
  } catch (error) {
    expect(error).toBeInstanceOf(NetlinkDecodeError);
  }
}

/**
 * A header, then attributes of the table's types (and others) that mostly frame correctly, with
 * contents of the sizes the kernel uses and of others, so decoding gets past the framing.
 */
function plausiblePayload(headerLength: number, types: readonly number[]): fc.Arbitrary<Buffer> {
  const attribute = fc.record({
    type: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...types) }, { weight: 1, arbitrary: u16 }),
    length: fc.oneof({ weight: 4, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: u16 }),
    value: fc.oneof(
      fc.constantFrom(0, 1, 4, 6, 16).chain((size) => bytes(size, size)),
      bytes(24),
    ),
  });
  const header = fc.uint8Array({ minLength: headerLength, maxLength: headerLength });
  return fc.tuple(header, fc.array(attribute, { maxLength: 8 })).map(([headerBytes, attributes]) =>
    Buffer.concat([
      Buffer.from(headerBytes),
      ...attributes.map(({ type, length, value }) => {
        const tlv = Buffer.alloc(4 + ((value.length + 3) & ~3));
        tlv.writeUInt16LE(length ?? 4 + value.length, 0);
        tlv.writeUInt16LE(type, 2);
        value.copy(tlv, 4);
        return tlv;
      }),
    ]),
  );
}

describe('rtnetlink decoders on hostile bytes (property)', () => {
  const linkTypes = [...Object.values(linkAttributes).map((field) => field.id), 0x8012];
  const addressTypes = Object.values(addressAttributes).map((field) => field.id);

  it('decodeLink never crashes or hangs: it decodes or throws NetlinkDecodeError', () => {
    fc.assert(
      fc.property(bytes(256), (payload) => {
        decodesOrRefuses(decodeLink, payload);
      }),
      { numRuns: 5000 },
    );
    fc.assert(
      fc.property(plausiblePayload(16, linkTypes), (payload) => {
        decodesOrRefuses(decodeLink, payload);
      }),
      { numRuns: 5000 },
    );
  });

  it('decodeAddress never crashes or hangs: it decodes or throws NetlinkDecodeError', () => {
    fc.assert(
      fc.property(bytes(256), (payload) => {
        decodesOrRefuses(decodeAddress, payload);
      }),
      { numRuns: 5000 },
    );
    // Mostly IPv4 and IPv6 headers, so the attributes are read rather than skipped.
    const payloads = plausiblePayload(8, addressTypes).chain((payload) =>
      fc.constantFrom(2, 10, defined(payload[0], 'a family byte')).map((family) => {
        payload[0] = family;
        return payload;
      }),
    );
    fc.assert(
      fc.property(payloads, (payload) => {
        decodesOrRefuses(decodeAddress, payload);
      }),
      { numRuns: 5000 },
    );
  });
});
