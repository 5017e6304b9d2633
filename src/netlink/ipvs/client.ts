// The IPVS client: one generic netlink socket per network namespace (moby/ipvs's Handle).
import { closeSync, openSync, readSync } from 'node:fs';
import { pacer, SLICE_MS } from '../../util/event-loop.js';
import { decodeAttributes, encodeAttributes } from '../attributes.js';
import { NETLINK_GENERIC, NetlinkConnection, type ConnectionOptions, type NetlinkRequest, type RequestOutcome } from '../connection.js';
import { KernelUnsupportedError, NetlinkRequestError, PermissionError } from '../errors.js';
import { decodeGenlPayload, genlHeader, resolveGenlFamily } from '../genl.js';
import type { NetlinkMessage } from '../message.js';
import { decodeDestination, decodeService, encodeDestination, encodeDestinationKey, encodeService, encodeServiceKey } from './codec.js';
import {
  describeOperation,
  formatServiceKey,
  type IpvsDestination,
  type IpvsInfo,
  type IpvsOperation,
  type IpvsService,
  type IpvsServiceKey,
  type IpvsTimeouts,
} from './types.js';
import { commandAttributes, commandAttributesWithoutStats, infoAttributes, IPVS_GENL_NAME, IPVS_GENL_VERSION, IpvsCommand, type WireCommand } from './wire.js';

export interface IpvsServiceWithDestinations {
  readonly service: IpvsService;
  readonly destinations: readonly IpvsDestination[];
}

/** Turns EPERM into an error that says which privilege is missing. */
function explainPermission(error: unknown): never {
  if (error instanceof NetlinkRequestError && (error.errnoName === 'EPERM' || error.errnoName === 'EACCES')) {
    throw new PermissionError(`${error.operation}: ${error.errnoName}: programming or reading IPVS needs CAP_NET_ADMIN (run as root)`);
  }
  throw error;
}

export interface ReadOptions {
  /** Decode the counters and rates (default true); the table alone is cheaper to read. */
  readonly withStats?: boolean;
}

/** Sockets that list real servers in parallel: one dump per service, each a round trip. */
const DUMP_SOCKETS = 4;
/**
 * What those sockets offer each receive. The kernel allocates each dump datagram at the size the
 * reader last offered (up to 32 KiB); the real servers of one service fit in a page, and 10,000
 * dumps of 32 KiB skbs (and as many 32 KiB receive buffers here) cost more than the listing
 * itself. The floor is the kernel's NLMSG_GOODSIZE, about a page up to 8 KiB: 4 KiB on most
 * machines, 8 KiB where pages are larger (arm64 and ppc64 with 64 KiB pages).
 */
const DEST_DUMP_BUFFER_BYTES = Math.min(8192, Math.max(4096, kernelPageSize()));

/** The kernel's page size, from the first mapping in /proc/self/smaps; 4 KiB when unreadable. */
function kernelPageSize(): number {
  try {
    const fd = openSync('/proc/self/smaps', 'r');
    try {
      const head = Buffer.alloc(4096);
      const text = head.toString('latin1', 0, readSync(fd, head, 0, head.length, null));
      const kib = /^KernelPageSize:\s+(\d+) kB$/m.exec(text)?.[1];
      return kib ? Number(kib) * 1024 : 4096;
    } finally {
      closeSync(fd);
    }
  } catch {
    return 4096;
  }
}

export class IpvsClient {
  private readonly dumpConnections: NetlinkConnection[] = [];

  private constructor(
    private readonly connection: NetlinkConnection,
    private readonly familyId: number,
    private readonly options: ConnectionOptions,
  ) {}

  /** Opens an IPVS socket; fails with KernelUnsupportedError when the kernel has no IPVS. */
  static async open(options: ConnectionOptions = {}): Promise<IpvsClient> {
    const connection = NetlinkConnection.open(NETLINK_GENERIC, options);
    try {
      const family = await resolveGenlFamily(connection, IPVS_GENL_NAME);
      if (!family) {
        throw new KernelUnsupportedError(
          'IPVS is not available in this kernel: generic netlink family "IPVS" not found (load the ip_vs module: modprobe ip_vs)',
        );
      }
      return new IpvsClient(connection, family.id, options);
    } catch (error) {
      connection.close();
      throw error;
    }
  }

  close(): void {
    this.connection.close();
    for (const connection of this.dumpConnections) connection.close();
    this.dumpConnections.length = 0;
  }

  get transportStats(): NetlinkConnection['stats'] {
    return this.connection.stats;
  }

  private request(command: number, attributes: WireCommand, describe: () => string, flags = 0): NetlinkRequest {
    return {
      type: this.familyId,
      flags,
      payload: encodeAttributes(commandAttributes, attributes, genlHeader(command, IPVS_GENL_VERSION)),
      describe,
    };
  }

  private decode(message: NetlinkMessage, withStats = true): WireCommand {
    const table = withStats ? commandAttributes : commandAttributesWithoutStats;
    return decodeAttributes(table, decodeGenlPayload(message).attributes);
  }

  async info(): Promise<IpvsInfo> {
    const replies = await this.connection.query(this.request(IpvsCommand.getInfo, {}, () => 'get IPVS info')).catch(explainPermission);
    const reply = replies[0];
    const attrs = reply ? decodeAttributes(infoAttributes, decodeGenlPayload(reply).attributes) : {};
    return { version: attrs.version ?? 0, connectionTableSize: attrs.connTabSize ?? 0 };
  }

  async timeouts(): Promise<IpvsTimeouts> {
    const replies = await this.connection.query(this.request(IpvsCommand.getConfig, {}, () => 'get IPVS timeouts')).catch(explainPermission);
    const attrs = replies[0] ? this.decode(replies[0]) : {};
    return { tcp: attrs.timeoutTcp ?? 0, tcpFin: attrs.timeoutTcpFin ?? 0, udp: attrs.timeoutUdp ?? 0 };
  }

  /** Sets the timeouts that are given; 0 or absent leaves one unchanged, as in the kernel. */
  async setTimeouts(timeouts: Partial<IpvsTimeouts>): Promise<void> {
    const attributes: WireCommand = {
      timeoutTcp: timeouts.tcp ?? 0,
      timeoutTcpFin: timeouts.tcpFin ?? 0,
      timeoutUdp: timeouts.udp ?? 0,
    };
    await this.connection
      .executeOne(this.request(IpvsCommand.setConfig, attributes, () => `set IPVS timeouts ${JSON.stringify(timeouts)}`))
      .catch(explainPermission);
  }

  /**
   * Every virtual server; `withStats: false` leaves the counters out (cheaper for large tables).
   * Each is decoded as its datagram arrives (12,000 at 10,000 Kubernetes Services), and `keep`
   * says what to keep of it: a reader that compares the table with one it holds passes its own
   * equal object, and the decoded one dies young instead of living through the read.
   */
  async listServices({ withStats = true, keep }: ReadOptions & { readonly keep?: (read: IpvsService) => IpvsService } = {}): Promise<IpvsService[]> {
    return this.connection
      .dumpRead(
        this.request(IpvsCommand.getService, {}, () => 'list virtual servers'),
        () => {
          const services: IpvsService[] = [];
          return {
            read: (message) => {
              const { service } = this.decode(message, withStats);
              if (!service) return;
              const read = decodeService(service);
              services.push(keep ? keep(read) : read);
            },
            result: () => services,
          };
        },
      )
      .catch(explainPermission);
  }

  /** One service, or null when the kernel has none with this key. */
  async getService(key: IpvsServiceKey): Promise<IpvsService | null> {
    try {
      const replies = await this.connection.query(
        this.request(IpvsCommand.getService, { service: encodeServiceKey(key) }, () => `get virtual server ${formatServiceKey(key)}`),
      );
      const wire = replies[0] ? this.decode(replies[0]).service : undefined;
      return wire ? decodeService(wire) : null;
    } catch (error) {
      if (error instanceof NetlinkRequestError && error.errnoName === 'ESRCH') return null;
      return explainPermission(error);
    }
  }

  async listDestinations(key: IpvsServiceKey, { withStats = true }: ReadOptions = {}, connection = this.connection): Promise<IpvsDestination[]> {
    const messages = await connection
      .dump(this.request(IpvsCommand.getDest, { service: encodeServiceKey(key) }, () => `list real servers of ${formatServiceKey(key)}`))
      .catch(explainPermission);
    const destinations: IpvsDestination[] = [];
    for (const message of messages) {
      const { dest } = this.decode(message, withStats);
      if (dest) destinations.push(decodeDestination(dest, key.family));
    }
    return destinations;
  }

  /**
   * Every virtual server with its real servers. A service deleted between the two dumps (ESRCH)
   * is left out rather than failing the whole read.
   */
  async snapshot(options: ReadOptions = {}): Promise<IpvsServiceWithDestinations[]> {
    return this.listDestinationsOf(await this.listServices(options), options);
  }

  /** The real servers of each of `services`; one deleted meanwhile (ESRCH) is left out. */
  async listDestinationsOf(services: readonly IpvsService[], options: ReadOptions = {}): Promise<IpvsServiceWithDestinations[]> {
    const table: IpvsServiceWithDestinations[] = [];
    for await (const entry of this.withDestinations(services, options)) table.push(entry);
    return table;
  }

  /**
   * The given virtual servers with their real servers, in the given order, as each is read: a
   * reader that prints or folds them as they come holds a few at a time, not the whole table.
   * One left out when it was deleted meanwhile (ESRCH), as in snapshot().
   */
  async *withDestinations(services: readonly IpvsService[], options: ReadOptions = {}): AsyncGenerator<IpvsServiceWithDestinations> {
    // The kernel has no dump of all real servers, only one per service: spread those round
    // trips over a few sockets so the kernel's work and ours overlap.
    while (this.dumpConnections.length < DUMP_SOCKETS && services.length > 64) {
      this.dumpConnections.push(NetlinkConnection.open(NETLINK_GENERIC, { ...this.options, receiveBufferBytes: DEST_DUMP_BUFFER_BYTES }));
    }
    const connections = services.length > 64 ? this.dumpConnections : [this.connection];
    type Read = { readonly destinations: IpvsDestination[] | null } | { readonly error: unknown };
    // Never rejects: a read waits in the window until its turn, and a rejection nobody awaits yet
    // would be an unhandled one.
    const read = (index: number): Promise<Read> => {
      const service = services[index] as IpvsService;
      return this.listDestinations(service.key, options, connections[index % connections.length]).then(
        (destinations) => ({ destinations }),
        (error: unknown) => (error instanceof NetlinkRequestError && error.errnoName === 'ESRCH' ? { destinations: null } : { error }),
      );
    };
    // Service i is read on socket i mod n, one dump in flight per socket, taken in order.
    const window = Array.from({ length: Math.min(connections.length, services.length) }, (_, index) => read(index));
    // A dump's end is handled inside the socket's receive loop, which reads on while the socket has
    // data (up to 32 datagrams): a dump asked for at once is answered inside that loop, and one
    // loop ran a dozen dumps on the four sockets (8-14 ms under UML) while a sync waited.
    const pace = pacer(SLICE_MS, 1);
    for (const [index, service] of services.entries()) {
      const slot = index % window.length;
      const result = await (window[slot] as Promise<Read>);
      const turn = pace();
      if (turn) await turn;
      if (index + window.length < services.length) window[slot] = read(index + window.length);
      if ('error' in result) throw result.error;
      if (result.destinations) yield { service, destinations: result.destinations };
    }
  }

  encodeOperation(operation: IpvsOperation): NetlinkRequest {
    const describe = (): string => describeOperation(operation);
    switch (operation.op) {
      case 'addService':
        return this.request(IpvsCommand.newService, { service: encodeService(operation.service) }, describe);
      case 'editService':
        return this.request(IpvsCommand.setService, { service: encodeService(operation.service) }, describe);
      case 'deleteService':
        return this.request(IpvsCommand.delService, { service: encodeServiceKey(operation.key) }, describe);
      case 'addDestination':
        return this.request(
          IpvsCommand.newDest,
          { service: encodeServiceKey(operation.service), dest: encodeDestination(operation.destination, operation.service.family) },
          describe,
        );
      case 'editDestination':
        return this.request(
          IpvsCommand.setDest,
          { service: encodeServiceKey(operation.service), dest: encodeDestination(operation.destination, operation.service.family) },
          describe,
        );
      case 'deleteDestination':
        return this.request(
          IpvsCommand.delDest,
          { service: encodeServiceKey(operation.service), dest: encodeDestinationKey(operation.destination, operation.service.family) },
          describe,
        );
    }
  }

  /**
   * Applies operations in order, batched; returns one outcome per operation. Each is encoded only
   * when its datagram is sent (NetlinkConnection.executeEach). An operation that cannot even be
   * encoded (bad address, scheduler name) fails alone without reaching the kernel.
   */
  apply(operations: readonly IpvsOperation[]): Promise<RequestOutcome[]> {
    return this.connection.executeEach(operations.length, (index) => {
      const operation = operations[index] as IpvsOperation;
      try {
        return this.encodeOperation(operation);
      } catch (error) {
        return { ok: false, error: new NetlinkRequestError(describeOperation(operation), 22, (error as Error).message) };
      }
    });
  }

  /** Applies operations and throws the first failure (for callers that want all or an error). */
  async applyAll(operations: readonly IpvsOperation[]): Promise<void> {
    const outcomes = await this.apply(operations);
    const failed = outcomes.find((outcome) => !outcome.ok);
    if (failed) explainPermission(failed.error);
  }

  /** Removes every virtual server of this namespace (ipvsadm -C). */
  async flush(): Promise<void> {
    await this.connection.executeOne(this.request(IpvsCommand.flush, {}, () => 'flush IPVS table')).catch(explainPermission);
  }

  /** Zeroes the counters of one service, or of all when no key is given (ipvsadm -Z). */
  async zero(key?: IpvsServiceKey): Promise<void> {
    const attributes: WireCommand = key ? { service: encodeServiceKey(key) } : {};
    await this.connection
      .executeOne(this.request(IpvsCommand.zero, attributes, () => `zero counters${key ? ` of ${formatServiceKey(key)}` : ''}`))
      .catch(explainPermission);
  }
}
