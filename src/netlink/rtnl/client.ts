// The link client: links and their addresses over one rtnetlink socket per network namespace
// (moby/ipvs's Handle, for `ip link` and `ip addr`). kube-proxy's IPVS mode needs one dummy link,
// kube-ipvs0, holding every service IP as a /32 or /128, so that the node accepts packets for them.
import { constants } from 'node:os';
import { NETLINK_ROUTE, NetlinkConnection, type ConnectionOptions, type NetlinkRequest, type RequestOutcome } from '../connection.js';
import { KipvsError } from '../../errors.js';
import { KernelUnsupportedError, NetlinkRequestError, PermissionError } from '../errors.js';
import {
  addAddressMessage,
  checkLinkName,
  createDummyLinkMessage,
  decodeAddress,
  decodeLink,
  deleteAddressMessage,
  deleteLinkMessage,
  dumpAddressesMessage,
  dumpLinksMessage,
  getLinkMessage,
  parseInterfaceAddress,
  type RtnlMessage,
} from './codec.js';
import {
  formatInterfaceAddress,
  KUBE_IPVS_LINK,
  LinkKindError,
  LinkNotFoundError,
  type AddAddressOptions,
  type DeleteAddressOptions,
  type DeleteLinkOptions,
  type InterfaceAddress,
  type InterfaceAddressKey,
  type Link,
} from './types.js';
import { RTM_NEWADDR, RTM_NEWLINK } from './wire.js';

const isErrno = (error: unknown, name: string): error is NetlinkRequestError => error instanceof NetlinkRequestError && error.errnoName === name;

/** Turns EPERM into an error that says which privilege is missing. */
function explainPermission(error: unknown): never {
  if (isErrno(error, 'EPERM') || isErrno(error, 'EACCES')) {
    throw new PermissionError(`${error.operation}: ${error.errnoName}: changing links and addresses needs CAP_NET_ADMIN (run as root)`);
  }
  throw error;
}

/** Rounds of read-then-write in ensureDummy before giving up on a link that keeps changing. */
const ENSURE_ATTEMPTS = 3;

export class LinkClient {
  private constructor(private readonly connection: NetlinkConnection) {}

  /** Opens an rtnetlink socket, in `options.netns` when given. */
  static open(options: ConnectionOptions = {}): LinkClient {
    return new LinkClient(NetlinkConnection.open(NETLINK_ROUTE, options));
  }

  close(): void {
    this.connection.close();
  }

  get transportStats(): NetlinkConnection['stats'] {
    return this.connection.stats;
  }

  private request(message: RtnlMessage, description: string): NetlinkRequest {
    return { ...message, describe: () => description };
  }

  async listLinks(): Promise<Link[]> {
    const messages = await this.connection.dump(this.request(dumpLinksMessage(), 'list links')).catch(explainPermission);
    return messages.filter((message) => message.type === RTM_NEWLINK).map((message) => decodeLink(message.payload));
  }

  /** The link of this name, or null when there is none. */
  async getLink(name: string): Promise<Link | null> {
    try {
      const replies = await this.connection.query(this.request(getLinkMessage(name), `get link ${name}`));
      const reply = replies.find((message) => message.type === RTM_NEWLINK);
      return reply ? decodeLink(reply.payload) : null;
    } catch (error) {
      if (isErrno(error, 'ENODEV')) return null;
      return explainPermission(error);
    }
  }

  private async requireLink(name: string): Promise<Link> {
    const link = await this.getLink(name);
    if (!link) throw new LinkNotFoundError(name);
    return link;
  }

  /**
   * Makes sure a dummy link of this name exists, and returns it: creates it (down, as kube-proxy
   * does) if missing, and otherwise changes nothing, its up/down state included: a node switched
   * from kube-proxy keeps kube-ipvs0 as kube-proxy left it. A link of this name that is not a
   * dummy is refused with LinkKindError and left as it is.
   */
  async ensureDummy(name: string = KUBE_IPVS_LINK): Promise<Link> {
    checkLinkName(name);
    for (let attempt = 0; attempt < ENSURE_ATTEMPTS; attempt++) {
      const existing = await this.getLink(name);
      if (existing && existing.kind !== 'dummy') throw new LinkKindError(name, 'dummy', existing.kind);
      if (existing) return existing;
      try {
        await this.connection.executeOne(this.request(createDummyLinkMessage(name), `create dummy link ${name}`));
      } catch (error) {
        // Someone else created it since we looked: look again.
        if (isErrno(error, 'EEXIST')) continue;
        if (isErrno(error, 'EOPNOTSUPP')) {
          throw new KernelUnsupportedError(`${error.operation}: this kernel has no dummy links (load the dummy module: modprobe dummy)`);
        }
        return explainPermission(error);
      }
    }
    const link = await this.getLink(name);
    if (link && link.kind === 'dummy') return link;
    throw new KipvsError('KIPVS_LINK_CHANGING', `link ${name} kept changing while kipvs made it a dummy link`);
  }

  async deleteLink(name: string, options: DeleteLinkOptions = {}): Promise<void> {
    try {
      await this.connection.executeOne(this.request(deleteLinkMessage(name), `delete link ${name}`));
    } catch (error) {
      if (!isErrno(error, 'ENODEV')) return explainPermission(error);
      if (!options.ignoreMissing) throw new LinkNotFoundError(name);
    }
  }

  /**
   * The link's IPv4 and IPv6 addresses, including those the kernel made (IPv6 link-local). With
   * `keep`, what it returns of each (undefined: nothing): each is decoded as its datagram arrives
   * and only that is kept, not 10,000 decoded addresses nor the dump's messages over a full read.
   */
  listAddresses(linkName: string): Promise<InterfaceAddress[]>;
  listAddresses<T>(linkName: string, keep: (address: InterfaceAddress) => T | undefined): Promise<T[]>;
  async listAddresses<T>(linkName: string, keep?: (address: InterfaceAddress) => T | undefined): Promise<Array<T | InterfaceAddress>> {
    const link = await this.requireLink(linkName);
    return this.connection
      .dumpRead(this.request(dumpAddressesMessage(), `list addresses of ${linkName}`), () => {
        const kept: Array<T | InterfaceAddress> = [];
        return {
          read: (message) => {
            if (message.type !== RTM_NEWADDR) return;
            const address = decodeAddress(message.payload);
            if (!address || address.linkIndex !== link.index) return;
            const value = keep ? keep(address) : address;
            if (value !== undefined) kept.push(value);
          },
          result: () => kept,
        };
      })
      .catch(explainPermission);
  }

  /**
   * Adds addresses (`10.96.0.1/32`, `fd00::1/128`; a bare address means /32 or /128) to a link, in
   * batches; returns one outcome per address, in order. IPv6 addresses skip duplicate address
   * detection, so a service IP answers at once. With `ignoreExisting`, an address the link already
   * has counts as added; for IPv6 the kernel says EEXIST also when only the prefix length differs.
   */
  addAddresses(linkName: string, addresses: readonly string[], options: AddAddressOptions = {}): Promise<RequestOutcome[]> {
    return this.changeAddresses(linkName, addresses, {
      describe: (address) => `add address ${address} to ${linkName}`,
      encode: addAddressMessage,
      toleratedErrno: options.ignoreExisting ? 'EEXIST' : undefined,
    });
  }

  /** Deletes addresses (address and prefix length must both match); one outcome per address. */
  deleteAddresses(linkName: string, addresses: readonly string[], options: DeleteAddressOptions = {}): Promise<RequestOutcome[]> {
    return this.changeAddresses(linkName, addresses, {
      describe: (address) => `delete address ${address} from ${linkName}`,
      encode: deleteAddressMessage,
      toleratedErrno: options.ignoreMissing ? 'EADDRNOTAVAIL' : undefined,
    });
  }

  /** One address; throws its NetlinkRequestError. */
  async addAddress(linkName: string, address: string, options: AddAddressOptions = {}): Promise<void> {
    throwFailure(await this.addAddresses(linkName, [address], options));
  }

  async deleteAddress(linkName: string, address: string, options: DeleteAddressOptions = {}): Promise<void> {
    throwFailure(await this.deleteAddresses(linkName, [address], options));
  }

  private async changeAddresses(
    linkName: string,
    addresses: readonly string[],
    change: {
      describe: (address: string) => string;
      encode: (linkIndex: number, key: InterfaceAddressKey) => RtnlMessage;
      toleratedErrno: string | undefined;
    },
  ): Promise<RequestOutcome[]> {
    const link = await this.requireLink(linkName);
    // Each address encoded only when its datagram is sent (NetlinkConnection.executeEach).
    const outcomes = await this.connection.executeEach(addresses.length, (index) => {
      const text = addresses[index] as string;
      let key: InterfaceAddressKey;
      try {
        key = parseInterfaceAddress(text);
      } catch (error) {
        // An address that cannot be encoded fails alone, without reaching the kernel.
        return { ok: false, error: new NetlinkRequestError(change.describe(text), constants.errno.EINVAL, (error as Error).message) };
      }
      return this.request(change.encode(link.index, key), change.describe(formatInterfaceAddress(key)));
    });
    outcomes.forEach((outcome, index) => {
      outcomes[index] = settle(outcome, linkName, change.toleratedErrno);
    });
    return outcomes;
  }
}

function settle(outcome: RequestOutcome, linkName: string, toleratedErrno: string | undefined): RequestOutcome {
  if (outcome.ok) return outcome;
  if (toleratedErrno !== undefined && outcome.error.errnoName === toleratedErrno) return { ok: true };
  if (outcome.error.errnoName === 'ENODEV') {
    // The link went away after we looked it up.
    return { ok: false, error: new NetlinkRequestError(outcome.error.operation, outcome.error.errno, `link ${linkName} does not exist`) };
  }
  return outcome;
}

function throwFailure(outcomes: readonly RequestOutcome[]): void {
  for (const outcome of outcomes) if (!outcome.ok) explainPermission(outcome.error);
}
