// The ipset client: one nfnetlink socket per network namespace, speaking the protocol version it
// agreed with the kernel. Entries go to the kernel one message each, many messages per datagram,
// so that every entry gets its own outcome (an IPSET_ATTR_ADT batch stops at its first failure).
import { forEachPaced, pacer, SLICE_MS } from '../../util/event-loop.js';
import { decodeAttributes, encodeAttributes, type Attrs, type AttrTable } from '../attributes.js';
import { NETLINK_NETFILTER, NetlinkConnection, type ConnectionOptions, type NetlinkRequest, type RequestOutcome } from '../connection.js';
import { KernelUnsupportedError, NetlinkDecodeError, NetlinkRequestError, PermissionError } from '../errors.js';
import { NLM_F_EXCL, type NetlinkMessage } from '../message.js';
import {
  checkSetName,
  decodeIpsetMessage,
  decodeSetListing,
  encodeCreate,
  encodeEntry,
  negotiateProtocol,
  nfgenHeader,
  TolerantSetListingDecoder,
} from './codec.js';
import { IpsetRequestError, setKindOf, type IpsetSetKind } from './errors.js';
import {
  describeEntryOperation,
  entrySetType,
  type IpsetEntry,
  type IpsetEntryOperation,
  type IpsetListing,
  type IpsetSet,
  type IpsetSetSpec,
  type IpsetSetType,
} from './types.js';
import {
  entryCommandAttributes,
  IPSET_ERR_EXIST,
  IPSET_ERR_FIND_TYPE,
  IPSET_FLAG_LIST_SETNAME,
  IPSET_PROTOCOL,
  IpsetCommand,
  ipsetMessageType,
  setCommandAttributes,
  setPairCommandAttributes,
  typeCommandAttributes,
  type WireSetCommand,
} from './wire.js';

export interface IpsetOpenOptions extends ConnectionOptions {
  /** The newest protocol to offer; 6 speaks to the kernel as ipset tools before 7.0 did. */
  readonly maxProtocol?: number;
}

export interface IpsetWriteOptions {
  /**
   * Refuse instead of ignore: adding an entry that is there or deleting one that is not answers
   * IPSET_ERR_EXIST, creating a set that exists answers EEXIST, destroying a missing one ENOENT.
   * The kernel ignores these unless the request carries NLM_F_EXCL (ip_set_core.c, flag_exist()).
   */
  readonly strict?: boolean;
}

/**
 * The newest revision of each type whose create and entry attributes kipvs knows: those of ipset
 * 7.17. A set of a newer revision than the installed ipset tool knows cannot be listed by it, so
 * kipvs, like the tool, creates the newest revision both it and the kernel support.
 */
const KNOWN_REVISIONS: Record<IpsetSetType, number> = {
  'hash:ip': 6,
  'hash:ip,port': 7,
  'hash:ip,port,ip': 6,
  'hash:ip,port,net': 8,
  'hash:net': 7,
  'bitmap:port': 3,
};

const moduleOf = (type: IpsetSetType): string => `ip_set_${type.replace(':', '_').replaceAll(',', '')}`;

/** Names ipset's errnos and turns EPERM into an error that says which privilege is missing. */
function explain(error: unknown, kind?: IpsetSetKind): never {
  const named = IpsetRequestError.from(error, kind);
  if (named instanceof NetlinkRequestError && (named.errnoName === 'EPERM' || named.errnoName === 'EACCES')) {
    throw new PermissionError(`${named.operation}: ${named.errnoName}: programming or reading ipsets needs CAP_NET_ADMIN (run as root)`);
  }
  throw named;
}

const EINVAL = 22;

export const listingName = (listing: IpsetListing): string => ('decoded' in listing ? listing.decoded.header.name : listing.undecoded.name);

export class IpsetClient {
  private readonly revisions = new Map<string, number>();

  private constructor(
    private readonly connection: NetlinkConnection,
    /** The ipset protocol version agreed with the kernel (IPSET_ATTR_PROTOCOL of every message). */
    readonly protocol: number,
  ) {}

  /** Opens an nfnetlink socket and agrees on a protocol; KernelUnsupportedError without ipset. */
  static async open(options: IpsetOpenOptions = {}): Promise<IpsetClient> {
    const connection = NetlinkConnection.open(NETLINK_NETFILTER, options);
    try {
      const offered = options.maxProtocol ?? IPSET_PROTOCOL;
      const request: NetlinkRequest = {
        type: ipsetMessageType(IpsetCommand.protocol),
        payload: encodeAttributes(setCommandAttributes, { protocol: offered }, nfgenHeader()),
        describe: () => 'ask the ipset protocol version',
      };
      let replies: NetlinkMessage[];
      try {
        replies = await connection.query(request);
      } catch (error) {
        // nfnetlink answers EINVAL for a subsystem nobody registered (nfnetlink_rcv_msg()).
        if (error instanceof NetlinkRequestError && error.errnoName === 'EINVAL') {
          throw new KernelUnsupportedError('ipset is not available in this kernel: nfnetlink has no ipset subsystem (load it: modprobe ip_set)');
        }
        return explain(error);
      }
      const reply = replies[0];
      if (!reply) throw new KernelUnsupportedError('the kernel did not answer IPSET_CMD_PROTOCOL');
      const attributes = decodeAttributes(setCommandAttributes, decodeIpsetMessage(reply).attributes);
      return new IpsetClient(connection, negotiateProtocol(attributes, offered));
    } catch (error) {
      connection.close();
      throw error;
    }
  }

  close(): void {
    this.connection.close();
  }

  get transportStats(): NetlinkConnection['stats'] {
    return this.connection.stats;
  }

  private request<T extends AttrTable>(command: number, table: T, attributes: Attrs<T>, describe: () => string, flags = 0): NetlinkRequest {
    return { type: ipsetMessageType(command), flags, payload: encodeAttributes(table, attributes, nfgenHeader()), describe };
  }

  private async run(request: NetlinkRequest, kind?: IpsetSetKind): Promise<void> {
    await this.connection.executeOne(request).catch((error: unknown) => explain(error, kind));
  }

  /** The revision to create a set of `type` with: the newest the kernel and kipvs both know. */
  private async revisionFor(type: IpsetSetType, nfproto: number): Promise<number> {
    const key = `${type}/${nfproto}`;
    const cached = this.revisions.get(key);
    if (cached !== undefined) return cached;
    const attributes = { protocol: this.protocol, typeName: type, family: nfproto };
    const request = this.request(IpsetCommand.type, typeCommandAttributes, attributes, () => `look up set type ${type}`);
    let replies: NetlinkMessage[];
    try {
      replies = await this.connection.query(request);
    } catch (error) {
      if (error instanceof NetlinkRequestError && error.errno === IPSET_ERR_FIND_TYPE) {
        throw new KernelUnsupportedError(`set type ${type} is not available in this kernel (load it: modprobe ${moduleOf(type)})`);
      }
      return explain(error, setKindOf(type));
    }
    const reply = replies[0] ? decodeAttributes(typeCommandAttributes, decodeIpsetMessage(replies[0]).attributes) : {};
    const newest = reply.revision;
    if (newest === undefined) throw new NetlinkDecodeError(`IPSET_CMD_TYPE answer for ${type} without IPSET_ATTR_REVISION`);
    const oldest = reply.revisionMin ?? newest;
    if (oldest > KNOWN_REVISIONS[type]) {
      throw new KernelUnsupportedError(`the kernel's ${type} revisions ${oldest}-${newest} are all newer than kipvs knows (${KNOWN_REVISIONS[type]})`);
    }
    const revision = Math.min(newest, KNOWN_REVISIONS[type]);
    this.revisions.set(key, revision);
    return revision;
  }

  /** Creates a set; an identical set of the same name is left as it is unless `strict`. */
  async create(name: string, spec: IpsetSetSpec, options: IpsetWriteOptions = {}): Promise<void> {
    checkSetName(name);
    const wire = encodeCreate(spec);
    const revision = await this.revisionFor(spec.type, wire.family);
    const attributes = { protocol: this.protocol, setName: name, typeName: spec.type, revision, family: wire.family, data: wire.data };
    const describe = (): string => `create set ${name} (${spec.type}${spec.type === 'bitmap:port' ? '' : ` family ${spec.family}`})`;
    const request = this.request(IpsetCommand.create, setCommandAttributes, attributes, describe, options.strict ? NLM_F_EXCL : 0);
    await this.run(request, setKindOf(spec.type));
  }

  /** Destroys a set; a missing set is no error unless `strict`. A set in use answers IPSET_ERR_BUSY. */
  async destroy(name: string, options: IpsetWriteOptions = {}): Promise<void> {
    checkSetName(name);
    const attributes = { protocol: this.protocol, setName: name };
    const flags = options.strict ? NLM_F_EXCL : 0;
    const request = this.request(IpsetCommand.destroy, setCommandAttributes, attributes, () => `destroy set ${name}`, flags);
    try {
      await this.run(request);
    } catch (error) {
      // Kernels from before ip_set_destroy() honoured NLM_F_EXCL (2019) answer ENOENT regardless.
      if (!options.strict && error instanceof NetlinkRequestError && error.errnoName === 'ENOENT') return;
      throw error;
    }
  }

  /** Removes every entry of a set. */
  async flush(name: string): Promise<void> {
    checkSetName(name);
    await this.run(this.request(IpsetCommand.flush, setCommandAttributes, { protocol: this.protocol, setName: name }, () => `flush set ${name}`));
  }

  /** Renames a set; IPSET_ERR_EXIST_SETNAME2 when `to` exists, IPSET_ERR_REFERENCED when in use. */
  async rename(from: string, to: string): Promise<void> {
    checkSetName(from);
    checkSetName(to);
    const attributes = { protocol: this.protocol, setName: from, setName2: to };
    await this.run(this.request(IpsetCommand.rename, setPairCommandAttributes, attributes, () => `rename set ${from} to ${to}`));
  }

  /** Exchanges two sets' contents under their names, atomically for packets in flight. */
  async swap(first: string, second: string): Promise<void> {
    checkSetName(first);
    checkSetName(second);
    const attributes = { protocol: this.protocol, setName: first, setName2: second };
    await this.run(this.request(IpsetCommand.swap, setPairCommandAttributes, attributes, () => `swap sets ${first} and ${second}`));
  }

  private entryRequest(operation: IpsetEntryOperation, setName: string, entry: IpsetEntry, strict: boolean): NetlinkRequest {
    const command = operation === 'add' ? IpsetCommand.add : operation === 'del' ? IpsetCommand.del : IpsetCommand.test;
    const attributes = { protocol: this.protocol, setName, data: encodeEntry(entry) };
    const describe = (): string => describeEntryOperation(operation, setName, entry);
    return this.request(command, entryCommandAttributes, attributes, describe, strict ? NLM_F_EXCL : 0);
  }

  /** Each entry encoded only when its datagram is sent (NetlinkConnection.executeEach). */
  private async writeEntries(operation: 'add' | 'del', setName: string, entries: readonly IpsetEntry[], options: IpsetWriteOptions): Promise<RequestOutcome[]> {
    checkSetName(setName);
    const outcomes = await this.connection.executeEach(entries.length, (index) => {
      const entry = entries[index] as IpsetEntry;
      try {
        return this.entryRequest(operation, setName, entry, options.strict ?? false);
      } catch (error) {
        const operationText = describeEntryOperation(operation, setName, entry);
        return { ok: false, error: new IpsetRequestError(operationText, EINVAL, (error as Error).message) };
      }
    });
    outcomes.forEach((outcome, index) => {
      if (!outcome.ok) outcomes[index] = { ok: false, error: IpsetRequestError.from(outcome.error, setKindOf(entrySetType(entries[index] as IpsetEntry))) };
    });
    return outcomes;
  }

  /**
   * Adds entries, batched; one outcome per entry, in order. An entry that is already there counts
   * as added unless `strict`. An entry that cannot be encoded fails alone, without reaching the kernel.
   */
  add(setName: string, entries: readonly IpsetEntry[], options: IpsetWriteOptions = {}): Promise<RequestOutcome[]> {
    return this.writeEntries('add', setName, entries, options);
  }

  /** Deletes entries, batched; one outcome per entry. A missing entry counts as deleted unless `strict`. */
  del(setName: string, entries: readonly IpsetEntry[], options: IpsetWriteOptions = {}): Promise<RequestOutcome[]> {
    return this.writeEntries('del', setName, entries, options);
  }

  /** Whether the set holds the entry (for hash:net, whether a network of the set contains it). */
  async test(setName: string, entry: IpsetEntry): Promise<boolean> {
    checkSetName(setName);
    try {
      await this.connection.executeOne(this.entryRequest('test', setName, entry, false));
      return true;
    } catch (error) {
      if (error instanceof NetlinkRequestError && error.errno === IPSET_ERR_EXIST) return false;
      return explain(error, setKindOf(entrySetType(entry)));
    }
  }

  private async listing(attributes: WireSetCommand, describe: () => string): Promise<WireSetCommand[]> {
    const messages = await this.connection
      .dump(this.request(IpsetCommand.list, setCommandAttributes, attributes, describe))
      .catch((error: unknown) => explain(error));
    return messages.map((message) => decodeAttributes(setCommandAttributes, decodeIpsetMessage(message).attributes));
  }

  /** One set with its header and members (`ipset list NAME`), or null when there is none. */
  async listSet(name: string): Promise<IpsetSet | null> {
    checkSetName(name);
    let messages: WireSetCommand[];
    try {
      messages = await this.listing({ protocol: this.protocol, setName: name }, () => `list set ${name}`);
    } catch (error) {
      if (error instanceof NetlinkRequestError && error.errnoName === 'ENOENT') return null;
      throw error;
    }
    return decodeSetListing(messages).find((set) => set.header.name === name) ?? null;
  }

  /**
   * One set (`ipset list NAME`), or null when there is none; a set kipvs cannot decode (hash:mac,
   * list:set, a member it cannot read) comes back by name and type instead of failing. Decoded a
   * message at a time, in slices of SLICE_MS between which the event loop runs: a set of
   * 27,000 members decoded in one piece held it for 60–150 ms under UML. With `onMember`, each
   * member goes to it as it is decoded and is not kept: the listing's entries are then empty.
   */
  async readSet(name: string, onMember?: (entry: IpsetEntry) => void): Promise<IpsetListing | null> {
    checkSetName(name);
    let messages: NetlinkMessage[];
    try {
      messages = await this.connection
        .dump(this.request(IpsetCommand.list, setCommandAttributes, { protocol: this.protocol, setName: name }, () => `list set ${name}`))
        .catch((error: unknown) => explain(error));
    } catch (error) {
      if (error instanceof NetlinkRequestError && error.errnoName === 'ENOENT') return null;
      throw error;
    }
    const decoder = new TolerantSetListingDecoder(onMember);
    await forEachPaced(messages, pacer(SLICE_MS, 1), (message) => {
      decoder.push(decodeAttributes(setCommandAttributes, decodeIpsetMessage(message).attributes));
    });
    return decoder.result().find((listing) => listingName(listing) === name) ?? null;
  }

  /** The names of every set of the namespace (`ipset list -n`), whatever their type. */
  async listSetNames(): Promise<string[]> {
    const messages = await this.listing({ protocol: this.protocol, flags: IPSET_FLAG_LIST_SETNAME }, () => 'list set names');
    return [...new Set(messages.flatMap((message) => (message.setName === undefined ? [] : [message.setName])))];
  }
}
