// The kernel adapter: reads the state kipvs reconciles (observe) and runs plans (apply), through
// the IPVS, ipset, rtnetlink and conntrack clients of one network namespace. No decisions here:
// those are the diff's.
import { IpvsClient, type IpvsServiceWithDestinations } from '../netlink/ipvs/client.js';
import { readProcIpvsTable } from '../netlink/ipvs/proc-table.js';
import { forEachPaced, pacer, SLICE_MS } from '../util/event-loop.js';
import { confirmedRealServers, heldService, ProcConfirmations, type ObserveHint } from './proc-assisted-read.js';
import { ExpectedSetMembers, keyedPaced } from './ipset-assisted-read.js';
import { IpsetClient } from '../netlink/ipset/client.js';
import { LinkClient } from '../netlink/rtnl/client.js';
import { ConntrackClient } from '../netlink/conntrack/client.js';
import { describeUdpFlowDeletion, type UdpFlowTarget } from '../netlink/conntrack/types.js';
import type { RequestOutcome } from '../netlink/connection.js';
import { constants } from 'node:os';
import { NetlinkRequestError, NetlinkTransportError, PermissionError } from '../netlink/errors.js';
import { KipvsError, asError } from '../errors.js';
import { LinkNotFoundError } from '../netlink/rtnl/types.js';
import { describeOperation, type IpvsDestination, type IpvsOperation, type IpvsService, type IpvsServiceKey } from '../netlink/ipvs/types.js';
import { describeEntryOperation } from '../netlink/ipset/types.js';
import { replaceIpset } from './ipset-repair.js';
import { explainRefusal } from './refusal-causes.js';
import { realServerKey, virtualServerKey } from '../model/desired.js';
import type { FreshObservedState, KernelOperation, ObservedState, ObservedVirtualServer, Plan } from '../reconcile/state.js';
import type { IpsetEntry } from '../netlink/ipset/types.js';

export interface KernelOptions {
  readonly netns?: string;
  readonly dummyInterface: string;
  /** The ipsets kipvs manages (kube-proxy's names for the node's families). */
  readonly ipsetNames: readonly string[];
  /** Told, once, that /proc/net/ip_vs could not be read or parsed: full reads then dump every virtual server. */
  readonly onProcUnreadable?: (error: Error) => void;
}

export interface OperationFailure {
  readonly operation: KernelOperation;
  readonly error: Error;
}

export interface ApplyResult {
  readonly applied: number;
  readonly failures: readonly OperationFailure[];
}

/** What the reconciler needs of a kernel; the fake kernel of the unit tests implements it too. */
export interface Kernel {
  /** Everything kipvs reconciles, read afresh; the caller owns the result (KernelMirror.adopt). */
  observe(): Promise<FreshObservedState>;
  /**
   * The same, read to be compared with `hint.expected`: what the kernel's cheap views confirm of
   * the expectation is taken from it (proc-assisted-read.ts), as its own objects, so the result
   * is only to be read, not kept or changed; it differs from a full read only in what those views
   * cannot show.
   */
  observe(hint: ObserveHint): Promise<ObservedState>;
  /**
   * Just these virtual servers as the kernel holds them now (settings, real servers and their
   * counts), by key; one the kernel does not have is absent. The caller owns the result.
   */
  observeVirtualServers(keys: readonly IpvsServiceKey[]): Promise<Map<string, ObservedVirtualServer>>;
  apply(plan: Plan): Promise<ApplyResult>;
  close(): void;
}

export function describeKernelOperation(operation: KernelOperation, dummyInterface: string): string {
  switch (operation.kind) {
    case 'ensureDummyInterface':
      return `create dummy interface ${operation.name}`;
    case 'createIpset':
      if (operation.replacing !== undefined) return `replace ipset ${operation.name} (${operation.replacing}) with a ${operation.spec.type} set`;
      return `create ipset ${operation.name} (${operation.spec.type})`;
    case 'bindAddress':
      return `bind ${operation.address} to ${dummyInterface}`;
    case 'unbindAddress':
      return `unbind ${operation.address} from ${dummyInterface}`;
    case 'addIpsetEntry':
      return describeEntryOperation('add', operation.set, operation.entry);
    case 'deleteIpsetEntry':
      return describeEntryOperation('del', operation.set, operation.entry);
    case 'ipvs':
      return describeOperation(operation.operation);
    case 'deleteUdpFlows':
      return describeUdpFlowDeletion(udpFlowTarget(operation));
  }
}

type DeleteUdpFlows = Extract<KernelOperation, { kind: 'deleteUdpFlows' }>;

/** What the conntrack client looks for, from the plan's operation. */
export function udpFlowTarget(operation: DeleteUdpFlows): UdpFlowTarget {
  return {
    family: operation.virtualServer.family,
    virtualAddress: operation.virtualServer.address,
    virtualPort: operation.virtualServer.port,
    endpointAddress: operation.endpoint.address,
    endpointPort: operation.endpoint.port,
  };
}

export class NetlinkKernel implements Kernel {
  private constructor(
    private readonly ipvs: IpvsClient,
    private readonly ipsets: IpsetClient,
    private readonly links: LinkClient,
    private readonly conntrack: ConntrackClient,
    private readonly options: KernelOptions,
  ) {}

  private procUnreadableTold = false;

  static async open(options: KernelOptions): Promise<NetlinkKernel> {
    const connection = options.netns ? { netns: options.netns } : {};
    const opened: Array<{ close(): void }> = [];
    try {
      const ipvs = await IpvsClient.open(connection);
      opened.push(ipvs);
      const ipsets = await IpsetClient.open(connection);
      opened.push(ipsets);
      const links = LinkClient.open(connection);
      opened.push(links);
      // Opening asks nothing of ctnetlink: a kernel without nf_conntrack_netlink fails only the
      // deleteUdpFlows operations, each reported, not the whole agent.
      const conntrack = ConntrackClient.open(connection);
      return new NetlinkKernel(ipvs, ipsets, links, conntrack, options);
    } catch (error) {
      for (const client of opened) client.close();
      throw error;
    }
  }

  close(): void {
    this.ipvs.close();
    this.ipsets.close();
    this.links.close();
    this.conntrack.close();
  }

  observe(): Promise<FreshObservedState>;
  observe(hint: ObserveHint): Promise<ObservedState>;
  async observe(hint?: ObserveHint): Promise<FreshObservedState | ObservedState> {
    const [virtualServers, link, ipsets] = await Promise.all([
      hint ? this.readIpvsAssisted(hint) : this.readIpvs(),
      this.links.getLink(this.options.dummyInterface),
      this.observeIpsets(hint?.expected),
    ]);
    const boundAddresses = new Set(
      link ? await this.links.listAddresses(this.options.dummyInterface, ({ address }) => (address.startsWith('fe80:') ? undefined : address)) : [],
    );
    return { dummyInterfaceExists: link !== null, virtualServers, boundAddresses, ...ipsets };
  }

  async observeVirtualServers(keys: readonly IpvsServiceKey[]): Promise<Map<string, ObservedVirtualServer>> {
    const services: IpvsService[] = [];
    for (const key of keys) {
      const service = await this.ipvs.getService(key);
      if (service) services.push(service);
    }
    const virtualServers = new Map<string, ObservedVirtualServer>();
    for (const dumped of await this.ipvs.listDestinationsOf(services, { withStats: false })) {
      virtualServers.set(virtualServerKey(dumped.service.key), observedFrom(dumped));
    }
    return virtualServers;
  }

  private async readIpvs(): Promise<FreshObservedState['virtualServers']> {
    const virtualServers: FreshObservedState['virtualServers'] = new Map();
    for (const dumped of await this.ipvs.snapshot({ withStats: false })) virtualServers.set(virtualServerKey(dumped.service.key), observedFrom(dumped));
    return virtualServers;
  }

  /**
   * The IPVS table from one dump of the services and one read of /proc/net/ip_vs, with GET_DEST
   * dumps only for the virtual servers /proc does not confirm. Compared in slices, so that the
   * event loop (a sync of an endpoint change) runs in between.
   */
  private async readIpvsAssisted(hint: ObserveHint): Promise<Map<string, ObservedVirtualServer>> {
    // /proc is a shortcut, never a condition: unreadable (a container without it) or not parsed
    // (a count printed negative), the read is the whole netlink one, as slow as before and as right.
    // Compared with the expectation as it is read: see ProcConfirmations.
    const shown = new ProcConfirmations(hint.expected);
    const [services, procRead] = await Promise.all([
      this.ipvs.listServices({ withStats: false, keep: (read) => heldService(hint.expected, read) }),
      readProcIpvsTable(shown.add, this.options.netns, SLICE_MS).then(
        () => true,
        (error: unknown) => {
          if (!this.procUnreadableTold) this.options.onProcUnreadable?.(asError(error));
          this.procUnreadableTold = true;
          return false;
        },
      ),
    ]);
    if (!procRead) return this.readIpvs();
    const virtualServers = new Map<string, ObservedVirtualServer>();
    const unconfirmed: IpvsService[] = [];
    await forEachPaced(services, pacer(SLICE_MS), (service) => {
      const realServers = confirmedRealServers(service, shown, hint);
      if (!realServers) {
        unconfirmed.push(service);
        return;
      }
      const key = virtualServerKey(service.key);
      // The expectation's own entry where the read confirmed all of it: no copy to promote.
      const held = hint.expected.virtualServers.get(key);
      virtualServers.set(key, held?.service === service && held.realServers === realServers ? held : { service, realServers });
    });
    for (const dumped of await this.ipvs.listDestinationsOf(unconfirmed, { withStats: false })) {
      virtualServers.set(virtualServerKey(dumped.service.key), observedFrom(dumped));
    }
    return virtualServers;
  }

  /**
   * kube-proxy's sets; one kipvs cannot decode (hash:mac, ...) is reported by type, for the diff to
   * replace. With an expectation, each member is compared with it as it is decoded
   * (ExpectedSetMembers): a set whose members are all expected, as many as expected, is given the
   * expectation's own entries, and no second copy of 27,000 entries is kept meanwhile.
   */
  private async observeIpsets(expected?: ObservedState): Promise<Pick<FreshObservedState, 'ipsets' | 'undecodedIpsets'>> {
    const ipsets: FreshObservedState['ipsets'] = new Map();
    const undecodedIpsets = new Map<string, string>();
    for (const name of this.options.ipsetNames) {
      const held = expected?.ipsets.get(name)?.entries;
      const compared = held ? new ExpectedSetMembers(held) : undefined;
      const listing = await this.ipsets.readSet(name, compared?.add);
      if (!listing) continue;
      if ('undecoded' in listing) {
        undecodedIpsets.set(name, listing.undecoded.type || 'an unknown type');
        continue;
      }
      const set = listing.decoded;
      // Only with an expectation, whose read is only compared (Kernel.observe(hint)).
      const entries = compared ? ((await compared.entries()) as Map<string, IpsetEntry>) : await keyedPaced(set.entries);
      ipsets.set(name, { spec: set.header, entries });
    }
    return undecodedIpsets.size > 0 ? { ipsets, undecodedIpsets } : { ipsets };
  }

  /**
   * Runs the plan in order, batching consecutive operations of one family into one netlink call.
   * A failed operation is reported and the others still run.
   */
  async apply(plan: Plan): Promise<ApplyResult> {
    const operations = plan.operations;
    const outcomes: Array<RequestOutcome | undefined> = new Array<RequestOutcome | undefined>(operations.length);
    for (const batch of batches(operations)) {
      const results = await this.applyBatch(batch);
      batch.indexes.forEach((planIndex, i) => {
        outcomes[planIndex] = results[i];
      });
    }
    const failures: OperationFailure[] = [];
    operations.forEach((operation, index) => {
      const outcome = outcomes[index];
      if (!outcome) throw new KipvsError('KIPVS_INTERNAL', `no outcome for ${describeKernelOperation(operation, this.options.dummyInterface)}`);
      if (!outcome.ok) failures.push({ operation, error: explainRefusal(operation, outcome.error) });
    });
    return { applied: operations.length - failures.length, failures };
  }

  private async applyBatch(batch: Batch): Promise<RequestOutcome[]> {
    switch (batch.kind) {
      case 'ipvs':
        return this.ipvs.apply(batch.operations);
      case 'bindAddress':
      case 'unbindAddress':
        return this.changeAddresses(batch);
      case 'ipsetEntries':
        return this.applyIpsetEntries(batch.operations);
      case 'deleteUdpFlows':
        return this.deleteUdpFlows(batch.operations);
      case 'ensureDummyInterface':
      case 'createIpset':
        return this.runOneByOne(batch.operations);
    }
  }

  /** One after another, so that the plan's order holds (two creations of one set name, say). */
  private async runOneByOne(operations: ReadonlyArray<OperationOf<'ensureDummyInterface' | 'createIpset'>>): Promise<RequestOutcome[]> {
    const outcomes: RequestOutcome[] = [];
    for (const operation of operations) outcomes.push(await this.runSingle(operation));
    return outcomes;
  }

  /** Addresses on the dummy interface; with no interface, each fails with ENODEV, as the kernel answers for one that vanished. */
  private async changeAddresses(batch: AddressBatch): Promise<RequestOutcome[]> {
    const link = this.options.dummyInterface;
    try {
      if (batch.kind === 'bindAddress') return await this.links.addAddresses(link, batch.addresses, { ignoreExisting: true });
      return await this.links.deleteAddresses(link, batch.addresses, { ignoreMissing: true });
    } catch (error) {
      if (!(error instanceof LinkNotFoundError)) throw error;
      return batch.addresses.map((address) => {
        const operation = describeKernelOperation({ kind: batch.kind, address }, link);
        return { ok: false, error: new NetlinkRequestError(operation, constants.errno.ENODEV, error.message) };
      });
    }
  }

  /** One read of the conntrack table for the whole batch; a failed read fails each operation. */
  private async deleteUdpFlows(batch: readonly DeleteUdpFlows[]): Promise<RequestOutcome[]> {
    try {
      const results = await this.conntrack.deleteUdpFlows(batch.map(udpFlowTarget));
      return results.map((result) => (result.ok ? { ok: true } : result));
    } catch (error) {
      return batch.map((operation) => ({ ok: false, error: this.asRequestError(operation, error) }));
    }
  }

  /**
   * A refusal of this one operation becomes its failure; a broken socket or a missing privilege
   * is no refusal: it fails the whole sync, which then reads the kernel afresh.
   */
  private asRequestError(operation: KernelOperation, error: unknown): NetlinkRequestError {
    if (error instanceof NetlinkRequestError) return error;
    if (error instanceof NetlinkTransportError || error instanceof PermissionError) throw error;
    return new NetlinkRequestError(describeKernelOperation(operation, this.options.dummyInterface), 22, (error as Error).message);
  }

  /**
   * Entries of several sets: one batched call per run of one set and one direction, so that the
   * plan's order holds also for an entry added and then deleted.
   */
  private async applyIpsetEntries(batch: readonly IpsetEntryOperation[]): Promise<RequestOutcome[]> {
    const outcomes: RequestOutcome[] = [];
    for (const run of runsOf(batch, (a, b) => a.kind === b.kind && a.set === b.set)) {
      const [{ kind, set }] = run;
      const entries = run.map((operation) => operation.entry);
      outcomes.push(...(kind === 'addIpsetEntry' ? await this.ipsets.add(set, entries) : await this.ipsets.del(set, entries)));
    }
    return outcomes;
  }

  private async runSingle(operation: OperationOf<'ensureDummyInterface' | 'createIpset'>): Promise<RequestOutcome> {
    try {
      if (operation.kind === 'ensureDummyInterface') await this.links.ensureDummy(operation.name);
      else if (operation.replacing !== undefined) await replaceIpset(this.ipsets, operation.name, operation.spec);
      else await this.ipsets.create(operation.name, operation.spec);
      return { ok: true };
    } catch (error) {
      return { ok: false, error: this.asRequestError(operation, error) };
    }
  }
}

type OperationOf<K extends KernelOperation['kind']> = Extract<KernelOperation, { kind: K }>;
type IpsetEntryOperation = OperationOf<'addIpsetEntry' | 'deleteIpsetEntry'>;
type AddressBatch = { readonly kind: 'bindAddress' | 'unbindAddress'; readonly indexes: number[]; readonly addresses: string[] };

/** Operations that go to the kernel together, with their places in the plan (`indexes`, in the batch's order). */
export type Batch =
  | { readonly kind: 'ipvs'; readonly indexes: number[]; readonly operations: IpvsOperation[] }
  | AddressBatch
  | { readonly kind: 'ipsetEntries'; readonly indexes: number[]; readonly operations: IpsetEntryOperation[] }
  | { readonly kind: 'deleteUdpFlows'; readonly indexes: number[]; readonly operations: DeleteUdpFlows[] }
  | { readonly kind: 'ensureDummyInterface'; readonly indexes: number[]; readonly operations: Array<OperationOf<'ensureDummyInterface'>> }
  | { readonly kind: 'createIpset'; readonly indexes: number[]; readonly operations: Array<OperationOf<'createIpset'>> };

function emptyBatchFor(operation: KernelOperation): Batch {
  switch (operation.kind) {
    case 'bindAddress':
    case 'unbindAddress':
      return { kind: operation.kind, indexes: [], addresses: [] };
    case 'addIpsetEntry':
    case 'deleteIpsetEntry':
      return { kind: 'ipsetEntries', indexes: [], operations: [] };
    case 'ipvs':
    case 'deleteUdpFlows':
    case 'ensureDummyInterface':
    case 'createIpset':
      return { kind: operation.kind, indexes: [], operations: [] };
  }
}

/** Adds the operation to the batch if it is of the batch's family; says whether it did. */
function join(batch: Batch, index: number, operation: KernelOperation): boolean {
  if (batch.kind === 'ipvs' && operation.kind === 'ipvs') batch.operations.push(operation.operation);
  else if ((batch.kind === 'bindAddress' || batch.kind === 'unbindAddress') && (operation.kind === 'bindAddress' || operation.kind === 'unbindAddress')) {
    if (batch.kind !== operation.kind) return false;
    batch.addresses.push(operation.address);
  } else if (batch.kind === 'ipsetEntries' && (operation.kind === 'addIpsetEntry' || operation.kind === 'deleteIpsetEntry')) batch.operations.push(operation);
  else if (batch.kind === 'deleteUdpFlows' && operation.kind === 'deleteUdpFlows') batch.operations.push(operation);
  else if (batch.kind === 'ensureDummyInterface' && operation.kind === 'ensureDummyInterface') batch.operations.push(operation);
  else if (batch.kind === 'createIpset' && operation.kind === 'createIpset') batch.operations.push(operation);
  else return false;
  batch.indexes.push(index);
  return true;
}

/**
 * The plan's operations as batches: runs of one family, in plan order. One exception: a run of
 * IPVS operations with UDP flow deletions among them (the diff puts each right after its
 * deleteDestination) goes as two batches, its IPVS operations and then its flow deletions. A flow
 * deletion needs only its real server gone first, so moving it later is safe, and one read of the
 * conntrack table then serves every removed UDP real server instead of one read each.
 */
export function batches(operations: readonly KernelOperation[]): Batch[] {
  const result: Batch[] = [];
  let open: Batch | undefined;
  let ipvs: Batch | undefined;
  let flows: Batch | undefined;
  const close = (): void => {
    for (const batch of [open, ipvs, flows]) if (batch) result.push(batch);
    open = ipvs = flows = undefined;
  };
  operations.forEach((operation, index) => {
    if (operation.kind === 'ipvs' || operation.kind === 'deleteUdpFlows') {
      if (open) close();
      if (operation.kind === 'ipvs') join((ipvs ??= emptyBatchFor(operation)), index, operation);
      else join((flows ??= emptyBatchFor(operation)), index, operation);
      return;
    }
    if (open && join(open, index, operation)) return;
    close();
    open = emptyBatchFor(operation);
    join(open, index, operation);
  });
  close();
  return result;
}

/** Consecutive items that belong together, in order. */
function runsOf<T>(items: readonly T[], together: (a: T, b: T) => boolean): Array<[T, ...T[]]> {
  const runs: Array<[T, ...T[]]> = [];
  let current: [T, ...T[]] | undefined;
  for (const item of items) {
    if (current && together(current[0], item)) current.push(item);
    else runs.push((current = [item]));
  }
  return runs;
}

/** A virtual server as dumped, with its real servers keyed as the diff keys them. */
function observedFrom({ service, destinations }: IpvsServiceWithDestinations): { service: IpvsService; realServers: Map<string, IpvsDestination> } {
  return { service, realServers: new Map(destinations.map((destination) => [realServerKey(destination), destination])) };
}
