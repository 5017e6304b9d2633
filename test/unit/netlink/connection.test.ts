// The batching connection on a real NETLINK_GENERIC socket of the host, asking only the generic
// netlink controller (read-only, no privilege needed).
import { describe, expect, it } from 'vitest';
import { NETLINK_GENERIC, NetlinkConnection, type NetlinkRequest } from '../../../src/netlink/connection.js';
import { DumpInterruptedError, NetlinkTransportError } from '../../../src/netlink/errors.js';
import { NLM_F_DUMP_INTR } from '../../../src/netlink/message.js';
import { encodeAttributes } from '../../../src/netlink/attributes.js';
import { controllerAttributes, CTRL_CMD_GETFAMILY, genlHeader, GENL_ID_CTRL, resolveGenlFamily } from '../../../src/netlink/genl.js';

const askController = (name: string): NetlinkRequest => ({
  type: GENL_ID_CTRL,
  payload: encodeAttributes(controllerAttributes, { familyName: name }, genlHeader(CTRL_CMD_GETFAMILY, 1)),
  describe: () => `resolve ${name}`,
});

const listFamilies: NetlinkRequest = {
  type: GENL_ID_CTRL,
  payload: encodeAttributes(controllerAttributes, {}, genlHeader(CTRL_CMD_GETFAMILY, 1)),
  describe: () => 'list generic netlink families',
};

/**
 * Marks every message of the first `attempts` dumps (told apart by their sequence numbers) as
 * interrupted, as the kernel does when the table changes while it is dumped.
 */
function interruptDumps(connection: NetlinkConnection, attempts: number): void {
  const socket = (connection as unknown as { socket: { emit(event: string, ...args: unknown[]): boolean } }).socket;
  const emit = socket.emit.bind(socket);
  const seen = new Set<number>();
  socket.emit = (event: string, ...args: unknown[]): boolean => {
    const data = args[0];
    if (event === 'message' && Buffer.isBuffer(data)) {
      for (let offset = 0; offset + 16 <= data.length; offset += (data.readUInt32LE(offset) + 3) & ~3) {
        seen.add(data.readUInt32LE(offset + 8));
        if (seen.size <= attempts) data.writeUInt16LE(data.readUInt16LE(offset + 6) | NLM_F_DUMP_INTR, offset + 6);
      }
    }
    return emit(event, ...args);
  };
}

describe('NetlinkConnection', () => {
  it('retries a dump the kernel interrupted, and returns the first complete one', async () => {
    const connection = NetlinkConnection.open(NETLINK_GENERIC);
    try {
      const complete = await connection.dump(listFamilies);
      interruptDumps(connection, 2);
      const retried = await connection.dump(listFamilies);
      expect(retried.map((message) => message.payload)).toEqual(complete.map((message) => message.payload));
      expect(retried.every((message) => (message.flags & NLM_F_DUMP_INTR) === 0)).toBe(true);
    } finally {
      connection.close();
    }
  });

  it('fails a dump interrupted three times in a row with a stable code instead of returning it', async () => {
    const connection = NetlinkConnection.open(NETLINK_GENERIC);
    try {
      interruptDumps(connection, 3);
      const failed = connection.dump(listFamilies);
      await expect(failed).rejects.toBeInstanceOf(DumpInterruptedError);
      await expect(failed).rejects.toMatchObject({ code: 'KIPVS_NETLINK_DUMP_INTERRUPTED', operation: 'list generic netlink families', attempts: 3 });
      // The socket is still good: the next dump, not interrupted, succeeds.
      expect((await connection.dump(listFamilies)).length).toBeGreaterThan(0);
    } finally {
      connection.close();
    }
  });

  it("reads a dump as it arrives with a fresh reader per attempt, and returns only the complete attempt's result", async () => {
    const connection = NetlinkConnection.open(NETLINK_GENERIC);
    try {
      const complete = await connection.dump(listFamilies);
      interruptDumps(connection, 2);
      const readers: Array<{ read: Buffer[]; asked: boolean }> = [];
      const result = await connection.dumpRead(listFamilies, () => {
        const reader = { read: [] as Buffer[], asked: false };
        readers.push(reader);
        return {
          read: (message) => void reader.read.push(Buffer.from(message.payload)),
          result: () => {
            reader.asked = true;
            return reader.read;
          },
        };
      });
      // Two interrupted attempts and the complete one, each read from its start by its own reader.
      expect(readers).toHaveLength(3);
      expect(readers.map((reader) => reader.asked)).toEqual([false, false, true]);
      expect(readers.every((reader) => reader.read.length === complete.length)).toBe(true);
      expect(result).toEqual(complete.map((message) => message.payload));
    } finally {
      connection.close();
    }
  });

  it('fails a dump whose reader throws with what it threw, reads none of its messages after, and the socket still serves the next dump', async () => {
    const connection = NetlinkConnection.open(NETLINK_GENERIC);
    try {
      const refused = new Error('a message that does not decode');
      let messages = 0;
      const failed = connection.dumpRead(listFamilies, () => ({
        read: () => {
          if (++messages === 2) throw refused;
        },
        result: () => messages,
      }));
      await expect(failed).rejects.toBe(refused);
      // The dump ran to its end (the kernel refuses a second dump on the socket while one runs),
      // without the reader that gave up.
      expect(messages).toBe(2);
      expect((await connection.dump(listFamilies)).length).toBeGreaterThan(2);
    } finally {
      connection.close();
    }
  });

  it('sends thousands of requests in few datagrams and reports each failure on its own request', async () => {
    const connection = NetlinkConnection.open(NETLINK_GENERIC);
    try {
      const requests = Array.from({ length: 3000 }, (_, i) => askController(i % 1000 === 7 ? 'no-such-family' : 'nlctrl'));
      const outcomes = await connection.execute(requests);
      const failed = outcomes.flatMap((outcome, i) => (outcome.ok ? [] : [`${i} ${outcome.error.message}`]));
      expect(failed).toEqual(['7 resolve no-such-family: ENOENT', '1007 resolve no-such-family: ENOENT', '2007 resolve no-such-family: ENOENT']);
      expect(connection.stats.messagesSent).toBe(3000);
      expect(connection.stats.datagramsSent).toBeLessThan(3000 / 10);
      expect(await resolveGenlFamily(connection, 'nlctrl')).toEqual({ id: GENL_ID_CTRL, version: expect.any(Number) as number });
    } finally {
      connection.close();
    }
  });

  it('fails the whole batch with a transport error, once, when the socket fails mid-way (nothing left unhandled)', async () => {
    const connection = NetlinkConnection.open(NETLINK_GENERIC);
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const requests = Array.from({ length: 20_000 }, () => askController('nlctrl'));
      const running = connection.execute(requests);
      // An overrun of the receive queue, as the kernel reports it: every pending request fails.
      setImmediate(() => {
        (connection as unknown as { socket: { emit(event: string, error: object): void } }).socket.emit('error', { errno: 105 });
      });
      await expect(running).rejects.toBeInstanceOf(NetlinkTransportError);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(unhandled).toEqual([]);
      expect(connection.stats.messagesSent).toBeLessThan(20_000);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      connection.close();
    }
  });
});
