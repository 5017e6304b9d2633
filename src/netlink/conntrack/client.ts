// The conntrack client: one ctnetlink socket per network namespace. kipvs reads the table with a
// dump and filters it here, as kube-proxy does (pkg/proxy/conntrack: list, then delete what its
// filters match), rather than with CTA_FILTER, which kernels before 5.9 do not know. Entries are
// deleted one message each, many messages per datagram, so each gets its own outcome.
import { afNumber, canonicalAddress, familyOf, formatHostPort, type AddressFamily } from '../../ip.js';
import { NETLINK_NETFILTER, NetlinkConnection, type ConnectionOptions, type NetlinkRequest } from '../connection.js';
import { KernelUnsupportedError, NetlinkEncodeError, NetlinkRequestError, PermissionError } from '../errors.js';
import { decodeEntryMessage, encodeDeletion, nfgenHeader } from './codec.js';
import {
  describeEntryDeletion,
  describeUdpFlowDeletion,
  matchesFilter,
  type ConntrackDeleteOutcome,
  type ConntrackEntry,
  type ConntrackFilter,
  type UdpFlowOutcome,
  type UdpFlowTarget,
} from './types.js';
import { ConntrackMessage, conntrackMessageType, IPPROTO_UDP, NFPROTO_UNSPEC } from './wire.js';

const EINVAL = 22;

/** Names a missing ctnetlink and a missing privilege; any other error goes on unchanged. */
function explain(error: unknown): never {
  if (error instanceof NetlinkRequestError) {
    // nfnetlink answers EINVAL for a subsystem nobody registered (nfnetlink_rcv_msg()).
    if (error.errnoName === 'EINVAL') {
      throw new KernelUnsupportedError(
        `${error.operation}: conntrack over netlink is not available in this kernel: nfnetlink has no ctnetlink subsystem (load it: modprobe nf_conntrack_netlink)`,
      );
    }
    if (error.errnoName === 'EPERM' || error.errnoName === 'EACCES') {
      throw new PermissionError(`${error.operation}: ${error.errnoName}: reading or deleting conntrack entries needs CAP_NET_ADMIN (run as root)`);
    }
  }
  throw error;
}

function checkFamily(family: AddressFamily | undefined): void {
  if (family !== undefined && family !== 'inet' && family !== 'inet6') {
    throw new NetlinkEncodeError(`conntrack family ${JSON.stringify(family)}: kipvs reads inet and inet6`);
  }
}

const isPort = (port: unknown): boolean => typeof port === 'number' && Number.isInteger(port) && port >= 0 && port <= 0xffff;

/** Why a target cannot be looked for, or undefined when it can. */
function targetProblem(target: UdpFlowTarget): string | undefined {
  if (target.family !== 'inet' && target.family !== 'inet6') return `unknown family ${JSON.stringify(target.family)}`;
  for (const address of [target.virtualAddress, target.endpointAddress]) {
    if (typeof address !== 'string' || familyOf(address) !== target.family) return `${JSON.stringify(address)} is not an address of family ${target.family}`;
  }
  for (const port of [target.virtualPort, target.endpointPort]) if (!isPort(port)) return `port ${String(port)} is out of range`;
  return undefined;
}

/** The key a target and the entries it selects share: virtual address:port, endpoint address:port. */
const flowKey = (virtualAddress: string, virtualPort: number | undefined, endpointAddress: string, endpointPort: number | undefined): string =>
  `${formatHostPort(virtualAddress, virtualPort ?? -1)} ${formatHostPort(endpointAddress, endpointPort ?? -1)}`;

const targetKey = (target: UdpFlowTarget): string =>
  flowKey(canonicalAddress(target.virtualAddress)!, target.virtualPort, canonicalAddress(target.endpointAddress)!, target.endpointPort);

/** Original destination and reply source: for an IPVS masq flow, the virtual server and the real server. */
const entryKey = (entry: ConntrackEntry): string =>
  flowKey(entry.original.destination, entry.original.destinationPort, entry.reply.source, entry.reply.sourcePort);

/** What became of the flows one target selected. */
interface FlowTally {
  flows: number;
  deleted: number;
  readonly failures: NetlinkRequestError[];
}

function flowOutcome(target: UdpFlowTarget, tally: FlowTally): UdpFlowOutcome {
  const [first] = tally.failures;
  if (!first) return { ok: true, deleted: tally.deleted };
  const detail = `${tally.failures.length} of ${tally.flows} flows not deleted; first: ${first.message}`;
  return { ok: false, error: new NetlinkRequestError(describeUdpFlowDeletion(target), first.errno, detail) };
}

export class ConntrackClient {
  private constructor(private readonly connection: NetlinkConnection) {}

  /** Opens a ctnetlink socket, in `options.netns` when given. */
  static open(options: ConnectionOptions = {}): ConntrackClient {
    return new ConntrackClient(NetlinkConnection.open(NETLINK_NETFILTER, options));
  }

  close(): void {
    this.connection.close();
  }

  get transportStats(): NetlinkConnection['stats'] {
    return this.connection.stats;
  }

  /** The entries of the table (`conntrack -L`) that pass `filter`: of its family only, when it names one. */
  async list(filter: ConntrackFilter = {}): Promise<ConntrackEntry[]> {
    checkFamily(filter.family);
    const nfproto = filter.family === undefined ? NFPROTO_UNSPEC : afNumber(filter.family);
    const request: NetlinkRequest = {
      type: conntrackMessageType(ConntrackMessage.get),
      payload: Buffer.from(nfgenHeader(nfproto)),
      describe: () => `list conntrack entries${filter.family === undefined ? '' : ` of family ${filter.family}`}`,
    };
    const messages = await this.connection.dump(request).catch(explain);
    const entries: ConntrackEntry[] = [];
    for (const message of messages) {
      const entry = decodeEntryMessage(message);
      if (matchesFilter(entry, filter)) entries.push(entry);
    }
    return entries;
  }

  /**
   * Deletes entries by their original tuple (and id), batched; one outcome per entry, in order. An
   * entry that is gone already (expired, deleted by someone else, replaced) counts as done, with
   * `deleted: false`. An entry that cannot be encoded fails alone, without reaching the kernel.
   */
  async deleteFlows(entries: readonly ConntrackEntry[]): Promise<ConntrackDeleteOutcome[]> {
    const outcomes: ConntrackDeleteOutcome[] = new Array(entries.length);
    const requests: NetlinkRequest[] = [];
    const positions: number[] = [];
    entries.forEach((entry, index) => {
      const describe = (): string => describeEntryDeletion(entry);
      try {
        requests.push({ type: conntrackMessageType(ConntrackMessage.delete), payload: encodeDeletion(entry), describe });
        positions.push(index);
      } catch (error) {
        outcomes[index] = { ok: false, error: new NetlinkRequestError(describe(), EINVAL, (error as Error).message) };
      }
    });
    const sent = await this.connection.execute(requests);
    sent.forEach((outcome, i) => {
      const index = positions[i]!;
      if (outcome.ok) outcomes[index] = { ok: true, deleted: true };
      else if (outcome.error.errnoName === 'ENOENT') outcomes[index] = { ok: true, deleted: false };
      else outcomes[index] = outcome;
    });
    return outcomes;
  }

  /**
   * Deletes the UDP flows of many targets with one dump per family and one batch of deletions; one
   * outcome per target, in order. Rejects only when the table cannot be read.
   */
  async deleteUdpFlows(targets: readonly UdpFlowTarget[]): Promise<UdpFlowOutcome[]> {
    const outcomes: UdpFlowOutcome[] = new Array(targets.length);
    const wanted = new Map<string, number[]>();
    targets.forEach((target, index) => {
      const problem = targetProblem(target);
      if (problem !== undefined) {
        outcomes[index] = { ok: false, error: new NetlinkRequestError(describeUdpFlowDeletion(target), EINVAL, problem) };
        return;
      }
      const key = `${target.family} ${targetKey(target)}`;
      wanted.set(key, [...(wanted.get(key) ?? []), index]);
    });
    const tallies = new Map([...wanted.keys()].map((key): [string, FlowTally] => [key, { flows: 0, deleted: 0, failures: [] }]));
    const families = new Set([...wanted.values()].map((indexes) => targets[indexes[0]!]!.family));
    const matched: ConntrackEntry[] = [];
    const matchedKeys: string[] = [];
    for (const family of families) {
      for (const entry of await this.list({ family, protocol: IPPROTO_UDP })) {
        const key = `${family} ${entryKey(entry)}`;
        if (!tallies.has(key)) continue;
        matched.push(entry);
        matchedKeys.push(key);
      }
    }
    (await this.deleteFlows(matched)).forEach((result, i) => {
      const tally = tallies.get(matchedKeys[i]!)!;
      tally.flows++;
      if (!result.ok) tally.failures.push(result.error);
      else if (result.deleted) tally.deleted++;
    });
    for (const [key, indexes] of wanted) {
      for (const index of indexes) outcomes[index] = flowOutcome(targets[index]!, tallies.get(key)!);
    }
    return outcomes;
  }

  /**
   * Deletes the UDP flows through a virtual server to one real server: protocol UDP, original
   * destination the virtual address:port, reply source the endpoint address:port, which is what
   * IPVS masquerading with net.ipv4.vs.conntrack=1 leaves in the table. Returns how many entries
   * the kernel deleted; throws NetlinkRequestError naming the target when some could not be.
   */
  async deleteUdpFlowsTo(target: UdpFlowTarget): Promise<number> {
    const [outcome] = await this.deleteUdpFlows([target]);
    if (!outcome!.ok) throw outcome!.error;
    return outcome!.deleted;
  }
}
