// Hostile input for decoders: attributes with valid framing and arbitrary types, flags and
// contents, nested a few levels, so fuzzing reaches past the framing checks into the codecs.
import fc from 'fast-check';
import { NLA_F_NESTED, NLA_F_NET_BYTEORDER } from '../../../src/netlink/attributes.js';

export function attributeTree(maxType: number): fc.Arbitrary<Buffer> {
  return fc.letrec<{ list: Buffer }>((tie) => ({
    list: fc
      .array(
        fc.tuple(
          fc.integer({ min: 0, max: maxType }),
          fc.constantFrom(0, NLA_F_NESTED, NLA_F_NET_BYTEORDER),
          fc.oneof(
            { depthSize: 'small' },
            fc.uint8Array({ maxLength: 24 }).map((bytes) => Buffer.from(bytes)),
            tie('list'),
          ),
        ),
        { maxLength: 6 },
      )
      .map((attributes) =>
        Buffer.concat(
          attributes.map(([type, flags, value]) => {
            const header = Buffer.alloc(4);
            header.writeUInt16LE(4 + value.length, 0);
            header.writeUInt16LE(type | flags, 2);
            return Buffer.concat([header, value, Buffer.alloc((4 - (value.length % 4)) % 4)]);
          }),
        ),
      ),
  })).list;
}
