import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encodeMessage, NLM_F_ACK_TLVS, NLMSG_ERROR, parseErrorPayload, parseMessages } from '../../../src/netlink/message.js';
import { NetlinkDecodeError } from '../../../src/netlink/errors.js';
import { defined } from '../../support/defined.js';

describe('netlink messages', () => {
  it('frames several messages in one datagram and splits them back, padding included', () => {
    const datagram = Buffer.concat([encodeMessage(20, 1, 7, Buffer.from([1, 2, 3])), encodeMessage(21, 5, 8, Buffer.alloc(0))]);
    expect(datagram.length).toBe(20 + 16);
    const messages = parseMessages(datagram);
    expect(messages.map((m) => [m.type, m.flags, m.seq, [...m.payload]])).toEqual([
      [20, 1, 7, [1, 2, 3]],
      [21, 5, 8, []],
    ]);
  });

  it('reads the errno of NLMSG_ERROR and the extended ACK text when present', () => {
    const payload = Buffer.alloc(4 + 16 + 12);
    payload.writeInt32LE(-17, 0);
    payload.writeUInt32LE(16, 4); // echoed header: length 16 (no payload)
    payload.writeUInt16LE(10, 20); // NLMSGERR_ATTR_MSG, "bad\0" + pad
    payload.writeUInt16LE(1, 22);
    payload.write('bad\0', 24);
    const [message] = parseMessages(encodeMessage(NLMSG_ERROR, NLM_F_ACK_TLVS, 1, payload));
    expect(parseErrorPayload(defined(message, 'a message'))).toEqual({ errno: 17, extackMessage: 'bad' });
  });

  it('rejects a length that does not fit', () => {
    const datagram = encodeMessage(20, 0, 1, Buffer.alloc(8));
    datagram.writeUInt32LE(4096, 0);
    expect(() => parseMessages(datagram)).toThrow(NetlinkDecodeError);
  });

  it('never crashes or hangs on random bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        try {
          for (const message of parseMessages(Buffer.from(bytes))) {
            if (message.type === NLMSG_ERROR) parseErrorPayload(message);
          }
        } catch (error) {
          expect(error).toBeInstanceOf(NetlinkDecodeError);
        }
      }),
      { numRuns: 5000 },
    );
  });
});
