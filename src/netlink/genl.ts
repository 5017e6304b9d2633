// Generic netlink: the genlmsghdr and family resolution through the controller (linux/genetlink.h).
import { decodeAttributes, encodeAttributes, nested, string, u16, u32, type Attrs } from './attributes.js';
import { NetlinkDecodeError, NetlinkRequestError } from './errors.js';
import type { NetlinkConnection } from './connection.js';
import type { NetlinkMessage } from './message.js';

export const GENL_HEADER_LENGTH = 4;
export const GENL_ID_CTRL = 0x10;
export const CTRL_CMD_GETFAMILY = 3;

export const controllerAttributes = {
  familyId: u16(1, 'CTRL_ATTR_FAMILY_ID'),
  familyName: string(2, 'CTRL_ATTR_FAMILY_NAME'),
  version: u32(3, 'CTRL_ATTR_VERSION'),
  headerSize: u32(4, 'CTRL_ATTR_HDRSIZE'),
  maxAttribute: u32(5, 'CTRL_ATTR_MAXATTR'),
  operations: nested(6, 'CTRL_ATTR_OPS', {}),
  multicastGroups: nested(7, 'CTRL_ATTR_MCAST_GROUPS', {}),
} as const;

/** struct genlmsghdr { u8 cmd; u8 version; u16 reserved; }, to put before a message's attributes. */
export function genlHeader(command: number, version: number): Uint8Array {
  return Uint8Array.of(command, version, 0, 0);
}

export interface GenlMessage {
  readonly command: number;
  readonly version: number;
  readonly attributes: Buffer;
}

export function decodeGenlPayload(message: NetlinkMessage): GenlMessage {
  if (message.payload.length < GENL_HEADER_LENGTH) {
    throw new NetlinkDecodeError(`generic netlink message of ${message.payload.length} bytes has no genlmsghdr`);
  }
  return {
    command: message.payload.readUInt8(0),
    version: message.payload.readUInt8(1),
    attributes: message.payload.subarray(GENL_HEADER_LENGTH),
  };
}

export interface GenlFamily {
  readonly id: number;
  readonly version: number;
}

/** Resolves a family name to its id; null when the kernel has no such family (ENOENT). */
export async function resolveGenlFamily(connection: NetlinkConnection, name: string): Promise<GenlFamily | null> {
  let replies: NetlinkMessage[];
  try {
    replies = await connection.query({
      type: GENL_ID_CTRL,
      payload: encodeAttributes(controllerAttributes, { familyName: name }, genlHeader(CTRL_CMD_GETFAMILY, 1)),
      describe: () => `resolve generic netlink family ${name}`,
    });
  } catch (error) {
    if (error instanceof NetlinkRequestError && error.errnoName === 'ENOENT') return null;
    throw error;
  }
  for (const reply of replies) {
    const attrs: Attrs<typeof controllerAttributes> = decodeAttributes(controllerAttributes, decodeGenlPayload(reply).attributes);
    if (attrs.familyId !== undefined) return { id: attrs.familyId, version: attrs.version ?? 1 };
  }
  throw new NetlinkDecodeError(`controller answer for family ${name} has no CTRL_ATTR_FAMILY_ID`);
}
