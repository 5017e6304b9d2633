// The batching connection on a real NETLINK_GENERIC socket of the host, asking only the generic
// netlink controller (read-only, no privilege needed).
import { describe, expect, it } from 'vitest';
import { NETLINK_GENERIC, NetlinkConnection, type NetlinkRequest } from '../../../src/netlink/connection.js';
import { NetlinkTransportError } from '../../../src/netlink/errors.js';
import { encodeAttributes } from '../../../src/netlink/attributes.js';
import { controllerAttributes, CTRL_CMD_GETFAMILY, genlHeader, GENL_ID_CTRL, resolveGenlFamily } from '../../../src/netlink/genl.js';

const askController = (name: string): NetlinkRequest => ({
  type: GENL_ID_CTRL,
  payload: encodeAttributes(controllerAttributes, { familyName: name }, genlHeader(CTRL_CMD_GETFAMILY, 1)),
  describe: () => `resolve ${name}`,
});

describe('NetlinkConnection', () => {
  it('sends thousands of requests in few datagrams and reports each failure on its own request', async () => {
    const connection = NetlinkConnection.open(NETLINK_GENERIC);
    try {
      const requests = Array.from({ length: 3000 }, (_, i) => askController(i % 1000 === 7 ? 'no-such-family' : 'nlctrl'));
      const outcomes = await connection.execute(requests);
      const failed = outcomes.flatMap((outcome, i) => (outcome.ok ? [] : [`${i} ${outcome.error.message}`]));
      expect(failed).toEqual(['7 resolve no-such-family: ENOENT', '1007 resolve no-such-family: ENOENT', '2007 resolve no-such-family: ENOENT']);
      expect(connection.stats.messagesSent).toBe(3000);
      expect(connection.stats.datagramsSent).toBeLessThan(3000 / 10);
      expect(await resolveGenlFamily(connection, 'nlctrl')).toEqual({ id: GENL_ID_CTRL, version: expect.any(Number) });
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
      setImmediate(() => (connection as unknown as { socket: { emit(event: string, error: object): void } }).socket.emit('error', { errno: 105 }));
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
