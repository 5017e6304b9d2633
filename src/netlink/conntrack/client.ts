// The conntrack client: one ctnetlink socket per network namespace. kipvs reads the table with a
// dump and filters it here, as kube-proxy does (pkg/proxy/conntrack: list, then delete what its
// filters match), rather than with CTA_FILTER, which kernels before 5.9 do not know. Entries are
// deleted one message each, many messages per datagram, so each gets its own outcome.
import { addressToBytes, afNumber, familyOf, formatAddress, formatHostPort, isAddressFamily, type AddressFamily } from '../../ip.js';
import { missingOutcome, NETLINK_NETFILTER, NetlinkConnection, type ConnectionOptions, type NetlinkRequest } from '../connection.js';
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
  if (family !== undefined && !isAddressFamily(family)) {
    throw new NetlinkEncodeError(`conntrack family ${JSON.stringify(family)}: kipvs reads inet and inet6`);
  }
}

const isPort = (port: unknown): boolean => typeof port === 'number' && Number.isInteger(port) && port >= 0 && port <= 0xffff;

/** Why a target cannot be looked for, or undefined when it can. */
function targetProblem(target: UdpFlowTarget): string | undefined {
  if (!isAddressFamily(target.family)) return `unknown family ${JSON.stringify(target.family)}`;
  for (const address of [target.virtualAddress, target.endpointAddress]) {
    if (typeof address !== 'string' || familyOf(address) !== target.family) return `${JSON.stringify(address)} is not an address of family ${target.family}`;
  }
  for (const port of [target.virtualPort, target.endpointPort]) if (!isPort(port)) return `port ${String(port)} is out of range`;
  return undefined;
}

/** The key a target and the entries it selects share: virtual address:port, endpoint address:port. */
const flowKey = (virtualAddress: string, virtualPort: number | undefined, endpointAddress: string, endpointPort: number | undefined): string =>
  `${formatHostPort(virtualAddress, virtualPort ?? -1)} ${formatHostPort(endpointAddress, endpointPort ?? -1)}`;

/** The key of a target that targetProblem accepts: its addresses in canonical form. */
const targetKey = (target: UdpFlowTarget): string =>
  flowKey(canonical(target.family, target.virtualAddress), target.virtualPort, canonical(target.family, target.endpointAddress), target.endpointPort);

const canonical = (family: AddressFamily, address: string): string => formatAddress(family, addressToBytes(address));

/** Original destination and reply source: for an IPVS masq flow, the virtual server and the real server. */
const entryKey = (entry: ConntrackEntry): string =>
  flowKey(entry.original.destination, entry.original.destinationPort, entry.reply.source, entry.reply.sourcePort);

/** What became of the flows one target selected. */
interface FlowTally {
  flows: number;
  deleted: number;
  readonly failures: NetlinkRequestError[];
}

/** The targets that select the same flows, and what became of those flows. */
interface FlowSelection {
  readonly family: AddressFamily;
  readonly targets: { readonly index: number; readonly target: UdpFlowTarget }[];
  readonly tally: FlowTally;
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
    const outcomes = new Array<ConntrackDeleteOutcome>(entries.length);
    const sent: { readonly index: number; readonly request: NetlinkRequest }[] = [];
    entries.forEach((entry, index) => {
      const describe = (): string => describeEntryDeletion(entry);
      try {
        sent.push({ index, request: { type: conntrackMessageType(ConntrackMessage.delete), payload: encodeDeletion(entry), describe } });
      } catch (error) {
        outcomes[index] = { ok: false, error: new NetlinkRequestError(describe(), EINVAL, (error as Error).message) };
      }
    });
    const answers = await this.connection.execute(sent.map(({ request }) => request));
    sent.forEach(({ index, request }, i) => {
      const outcome = answers[i] ?? missingOutcome(request.describe());
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
    const outcomes = new Array<UdpFlowOutcome>(targets.length);
    // By the key of the flows they select: targets that name the same flows share one tally.
    const wanted = new Map<string, FlowSelection>();
    targets.forEach((target, index) => {
      const problem = targetProblem(target);
      if (problem !== undefined) {
        outcomes[index] = { ok: false, error: new NetlinkRequestError(describeUdpFlowDeletion(target), EINVAL, problem) };
        return;
      }
      const key = `${target.family} ${targetKey(target)}`;
      const selection = wanted.get(key);
      if (selection) selection.targets.push({ index, target });
      else wanted.set(key, { family: target.family, targets: [{ index, target }], tally: { flows: 0, deleted: 0, failures: [] } });
    });
    const families = new Set([...wanted.values()].map(({ family }) => family));
    const matched: { readonly entry: ConntrackEntry; readonly tally: FlowTally }[] = [];
    for (const family of families) {
      for (const entry of await this.list({ family, protocol: IPPROTO_UDP })) {
        const selection = wanted.get(`${family} ${entryKey(entry)}`);
        if (selection) matched.push({ entry, tally: selection.tally });
      }
    }
    const results = await this.deleteFlows(matched.map(({ entry }) => entry));
    matched.forEach(({ entry, tally }, i) => {
      const result = results[i] ?? missingOutcome(describeEntryDeletion(entry));
      tally.flows++;
      if (!result.ok) tally.failures.push(result.error);
      else if (result.deleted) tally.deleted++;
    });
    for (const selection of wanted.values()) {
      for (const { index, target } of selection.targets) outcomes[index] = flowOutcome(target, selection.tally);
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
    const outcome = (await this.deleteUdpFlows([target]))[0] ?? missingOutcome(describeUdpFlowDeletion(target));
    if (!outcome.ok) throw outcome.error;
    return outcome.deleted;
  }
}
