import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  be16,
  be32,
  binary,
  decodeAttributes,
  encodeAttributes,
  flag,
  nested,
  NLA_F_NESTED,
  NLA_F_NET_BYTEORDER,
  string,
  u16,
  u32,
  u64,
  u8,
  counter64,
} from '../../../src/netlink/attributes.js';
import { NetlinkDecodeError, NetlinkEncodeError } from '../../../src/netlink/errors.js';

const inner = {
  port: be16(1, 'TEST_PORT', true),
  ip: be32(2, 'TEST_IP', true),
} as const;
const table = {
  small: u8(1, 'TEST_U8'),
  medium: u16(2, 'TEST_U16'),
  large: u32(3, 'TEST_U32'),
  huge: u64(4, 'TEST_U64'),
  name: string(5, 'TEST_NAME'),
  blob: binary(6, 'TEST_BLOB'),
  present: flag(7, 'TEST_FLAG'),
  data: nested(8, 'TEST_DATA', inner, true),
  plain: nested(9, 'TEST_PLAIN', inner, false),
  packets: counter64(10, 'TEST_COUNTER'),
} as const;

describe('attribute tables', () => {
  it('encodes each kind with the kernel layout: little-endian, network order, NUL-terminated, padded', () => {
    const bytes = encodeAttributes(table, { small: 1, medium: 0x0203, name: 'rr' });
    expect([...bytes]).toEqual([5, 0, 1, 0, 1, 0, 0, 0, 6, 0, 2, 0, 3, 2, 0, 0, 7, 0, 5, 0, 0x72, 0x72, 0, 0]);
  });

  it('sets NLA_F_NESTED and NLA_F_NET_BYTEORDER where the table asks for them', () => {
    const bytes = encodeAttributes(table, { data: { port: 80 }, plain: { port: 80 } });
    expect(bytes.readUInt16LE(2)).toBe(8 | NLA_F_NESTED);
    expect(bytes.readUInt16LE(6)).toBe(1 | NLA_F_NET_BYTEORDER);
    expect(bytes.readUInt16BE(8)).toBe(80);
    expect(bytes.readUInt16LE(14)).toBe(9);
  });

  it('decodes what it encodes, flags included, and keeps unknown attributes byte for byte', () => {
    const unknown = [{ type: 42, value: Buffer.from([1, 2, 3]) }];
    const value = { small: 7, huge: 2n ** 63n, blob: Buffer.from('xyz'), present: true as const, data: { ip: 0x0a000001 }, unknown };
    const decoded = decodeAttributes(table, encodeAttributes(table, value));
    expect(decoded).toEqual(value);
    expect(encodeAttributes(table, decoded)).toEqual(encodeAttributes(table, value));
  });

  it('refuses values that do not fit their attribute', () => {
    expect(() => encodeAttributes(table, { small: 256 })).toThrow(NetlinkEncodeError);
    expect(() => encodeAttributes(table, { large: -1 })).toThrow(/TEST_U32/);
    expect(() => encodeAttributes(table, { name: 'a\0b' })).toThrow(NetlinkEncodeError);
    expect(() => encodeAttributes(table, { huge: 2n ** 64n })).toThrow(NetlinkEncodeError);
  });

  it('rejects a fixed-size attribute of the wrong size instead of misreading it', () => {
    const bytes = Buffer.from([6, 0, 3, 0, 1, 0, 0, 0]); // a u32 attribute carrying two bytes
    expect(() => decodeAttributes(table, bytes)).toThrow(/TEST_U32: expected 4 bytes, got 2/);
  });

  it('round-trips any table values (property)', () => {
    const arbitraryValue = fc.record(
      {
        small: fc.integer({ min: 0, max: 255 }),
        medium: fc.integer({ min: 0, max: 0xffff }),
        large: fc.integer({ min: 0, max: 0xffffffff }),
        huge: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        name: fc.string().filter((s) => !s.includes('\0')),
        blob: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
        present: fc.constant(true as const),
        packets: fc.maxSafeNat(),
        data: fc.record({ port: fc.integer({ min: 0, max: 0xffff }), ip: fc.integer({ min: 0, max: 0xffffffff }) }, { requiredKeys: [] }),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(arbitraryValue, (value) => {
        expect(decodeAttributes(table, encodeAttributes(table, value))).toEqual(value);
      }),
    );
  });

  it('never crashes or hangs on random bytes: it decodes or throws NetlinkDecodeError (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
        try {
          decodeAttributes(table, Buffer.from(bytes));
        } catch (error) {
          expect(error).toBeInstanceOf(NetlinkDecodeError);
        }
      }),
      { numRuns: 5000 },
    );
  });
});
