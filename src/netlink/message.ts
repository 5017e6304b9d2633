// Netlink message framing (struct nlmsghdr, linux/netlink.h). Parsing treats every byte as hostile:
// a length that does not fit, a truncated header or error payload raises NetlinkDecodeError and
// never reads past the buffer or loops.
import { NetlinkDecodeError } from './errors.js';
import { align4 } from './attributes.js';

export const NLMSG_HEADER_LENGTH = 16;

/** linux/netlink.h */
export const NLMSG_NOOP = 0x1;
export const NLMSG_ERROR = 0x2;
export const NLMSG_DONE = 0x3;
export const NLMSG_OVERRUN = 0x4;

export const NLM_F_REQUEST = 0x01;
export const NLM_F_ACK = 0x04;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
/** Flags on an NLMSG_ERROR message: the echoed request is capped; extended ACK TLVs follow. */
export const NLM_F_CAPPED = 0x100;
export const NLM_F_ACK_TLVS = 0x200;

export interface NetlinkMessage {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  readonly port: number;
  readonly payload: Buffer;
}

/** Bytes one message takes in a datagram, padding included. */
export const messageSpace = (payloadLength: number): number => align4(NLMSG_HEADER_LENGTH + payloadLength);

/** Writes one message (header, payload, zero padding) into `out` at `offset`; returns the next offset. */
export function writeMessage(out: Buffer, offset: number, type: number, flags: number, seq: number, payload: Uint8Array): number {
  out.writeUInt32LE(NLMSG_HEADER_LENGTH + payload.length, offset);
  out.writeUInt16LE(type, offset + 4);
  out.writeUInt16LE(flags, offset + 6);
  out.writeUInt32LE(seq >>> 0, offset + 8);
  out.writeUInt32LE(0, offset + 12);
  out.set(payload, offset + NLMSG_HEADER_LENGTH);
  const end = offset + messageSpace(payload.length);
  out.fill(0, offset + NLMSG_HEADER_LENGTH + payload.length, end);
  return end;
}

export function encodeMessage(type: number, flags: number, seq: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(messageSpace(payload.length));
  writeMessage(out, 0, type, flags, seq, payload);
  return out;
}

/** Splits a datagram into messages. */
export function parseMessages(buf: Buffer): NetlinkMessage[] {
  const messages: NetlinkMessage[] = [];
  let offset = 0;
  while (offset < buf.length) {
    if (buf.length - offset < NLMSG_HEADER_LENGTH) {
      throw new NetlinkDecodeError(`truncated message header (${buf.length - offset} bytes left)`, offset);
    }
    const length = buf.readUInt32LE(offset);
    if (length < NLMSG_HEADER_LENGTH || length > buf.length - offset) {
      throw new NetlinkDecodeError(`message length ${length} does not fit in ${buf.length - offset} bytes`, offset);
    }
    messages.push({
      type: buf.readUInt16LE(offset + 4),
      flags: buf.readUInt16LE(offset + 6),
      seq: buf.readUInt32LE(offset + 8),
      port: buf.readUInt32LE(offset + 12),
      payload: buf.subarray(offset + NLMSG_HEADER_LENGTH, offset + length),
    });
    offset += Math.max(align4(length), NLMSG_HEADER_LENGTH);
  }
  return messages;
}

export interface ErrorPayload {
  /** 0 for an ACK, otherwise a positive errno. */
  readonly errno: number;
  /** Extended ACK message text (NLMSGERR_ATTR_MSG), when the kernel gave one. */
  readonly extackMessage?: string;
}

const NLMSGERR_ATTR_MSG = 1;

/** Decodes the payload of NLMSG_ERROR: struct nlmsgerr { int error; struct nlmsghdr msg; ... }. */
export function parseErrorPayload(message: NetlinkMessage): ErrorPayload {
  const { payload } = message;
  if (payload.length < 4) throw new NetlinkDecodeError(`NLMSG_ERROR payload of ${payload.length} bytes`);
  const errno = -payload.readInt32LE(0);
  if (!(message.flags & NLM_F_ACK_TLVS) || payload.length < 4 + NLMSG_HEADER_LENGTH) return { errno };
  // Extended ACK: TLVs follow the echoed request (only its header when NLM_F_CAPPED).
  const echoedLength = payload.readUInt32LE(4);
  const tlvStart = 4 + (message.flags & NLM_F_CAPPED ? NLMSG_HEADER_LENGTH : align4(echoedLength));
  let offset = tlvStart;
  while (offset + 4 <= payload.length) {
    const length = payload.readUInt16LE(offset);
    const type = payload.readUInt16LE(offset + 2);
    if (length < 4 || offset + length > payload.length) break;
    if (type === NLMSGERR_ATTR_MSG) {
      const text = payload.subarray(offset + 4, offset + length);
      const end = text.indexOf(0);
      return { errno, extackMessage: text.toString('utf8', 0, end < 0 ? text.length : end) };
    }
    offset += align4(length);
  }
  return { errno };
}
