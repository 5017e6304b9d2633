// The kernel adapter: reads the state kipvs reconciles (observe) and runs plans (apply), through
// the IPVS, ipset, rtnetlink and conntrack clients of one network namespace. No decisions here:
// those are the diff's.
import { IpvsClient } from '../netlink/ipvs/client.js';
import { IpsetClient } from '../netlink/ipset/client.js';
import { LinkClient } from '../netlink/rtnl/client.js';
import { ConntrackClient } from '../netlink/conntrack/client.js';
import { describeUdpFlowDeletion, type UdpFlowTarget } from '../netlink/conntrack/types.js';
import type { RequestOutcome } from '../netlink/connection.js';
import { NetlinkRequestError, NetlinkTransportError, PermissionError } from '../netlink/errors.js';
import { describeOperation } from '../netlink/ipvs/types.js';
import { describeEntryOperation, type IpsetEntry } from '../netlink/ipset/types.js';
import { replaceIpset } from './ipset-repair.js';
import { explainRefusal } from './refusal-causes.js';
import { ipsetEntryKey, realServerKey, virtualServerKey } from '../model/desired.js';
import type { FreshObservedState, KernelOperation, Plan } from '../reconcile/state.js';

export interface KernelOptions {
  readonly netns?: string;
  readonly dummyInterface: string;
  /** The ipsets kipvs manages (kube-proxy's names for the node's families). */
  readonly ipsetNames: readonly string[];
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
  /** Everything kipvs reconciles, read afresh; the caller owns the result (FakeKernel.adopt). */
  observe(): Promise<FreshObservedState>;
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

  async observe(): Promise<FreshObservedState> {
    const [table, link, ipsets] = await Promise.all([this.ipvs.snapshot({ withStats: false }), this.links.getLink(this.options.dummyInterface), this.observeIpsets()]);
    const virtualServers: FreshObservedState['virtualServers'] = new Map();
    for (const { service, destinations } of table) {
      virtualServers.set(virtualServerKey(service.key), { service, realServers: new Map(destinations.map((d) => [realServerKey(d), d])) });
    }
    const boundAddresses = new Set<string>();
    if (link) {
      for (const address of await this.links.listAddresses(this.options.dummyInterface)) {
        if (!address.address.startsWith('fe80:')) boundAddresses.add(address.address);
      }
    }
    return { dummyInterfaceExists: link !== null, virtualServers, boundAddresses, ...ipsets };
  }

  /** kube-proxy's sets; one kipvs cannot decode (hash:mac, ...) is reported by type, for the diff to replace. */
  private async observeIpsets(): Promise<Pick<FreshObservedState, 'ipsets' | 'undecodedIpsets'>> {
    const ipsets: FreshObservedState['ipsets'] = new Map();
    const undecodedIpsets = new Map<string, string>();
    for (const name of this.options.ipsetNames) {
      const listing = await this.ipsets.readSet(name);
      if (!listing) continue;
      if ('undecoded' in listing) {
        undecodedIpsets.set(name, listing.undecoded.type || 'an unknown type');
        continue;
      }
      const set = listing.decoded;
      ipsets.set(name, { spec: set.header, entries: new Map(set.entries.map((entry) => [ipsetEntryKey(entry), entry])) });
    }
    return undecodedIpsets.size > 0 ? { ipsets, undecodedIpsets } : { ipsets };
  }

  /**
   * Runs the plan in order, batching consecutive operations of one family into one netlink call.
   * A failed operation is reported and the others still run.
   */
  async apply(plan: Plan): Promise<ApplyResult> {
    const operations = plan.operations;
    const outcomes: RequestOutcome[] = new Array(operations.length);
    for (const batch of batches(operations)) {
      const results = await this.applyBatch(batch.map((index) => operations[index]!));
      results.forEach((outcome, i) => (outcomes[batch[i]!] = outcome));
    }
    const failures: OperationFailure[] = [];
    outcomes.forEach((outcome, index) => {
      if (!outcome.ok) failures.push({ operation: operations[index]!, error: explainRefusal(operations[index]!, outcome.error) });
    });
    return { applied: operations.length - failures.length, failures };
  }

  private async applyBatch(batch: readonly KernelOperation[]): Promise<RequestOutcome[]> {
    const first = batch[0]!;
    switch (first.kind) {
      case 'ipvs':
        return this.ipvs.apply(batch.map((operation) => (operation as Extract<KernelOperation, { kind: 'ipvs' }>).operation));
      case 'bindAddress':
        return this.links.addAddresses(this.options.dummyInterface, batch.map((operation) => (operation as { address: string }).address), { ignoreExisting: true });
      case 'unbindAddress':
        return this.links.deleteAddresses(this.options.dummyInterface, batch.map((operation) => (operation as { address: string }).address), { ignoreMissing: true });
      case 'addIpsetEntry':
      case 'deleteIpsetEntry':
        return this.applyIpsetEntries(batch as ReadonlyArray<Extract<KernelOperation, { kind: 'addIpsetEntry' | 'deleteIpsetEntry' }>>);
      case 'deleteUdpFlows':
        return this.deleteUdpFlows(batch as readonly DeleteUdpFlows[]);
      case 'ensureDummyInterface':
      case 'createIpset':
        return Promise.all(batch.map((operation) => this.runSingle(operation)));
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

  /** Entries of several sets: one batched call per set, outcomes put back in plan order. */
  private async applyIpsetEntries(batch: ReadonlyArray<Extract<KernelOperation, { kind: 'addIpsetEntry' | 'deleteIpsetEntry' }>>): Promise<RequestOutcome[]> {
    const outcomes: RequestOutcome[] = new Array(batch.length);
    const groups = new Map<string, { indexes: number[]; entries: IpsetEntry[] }>();
    batch.forEach((operation, i) => {
      const groupKey = `${operation.kind} ${operation.set}`;
      const group = groups.get(groupKey) ?? { indexes: [], entries: [] };
      group.indexes.push(i);
      group.entries.push(operation.entry);
      groups.set(groupKey, group);
    });
    for (const [groupKey, group] of groups) {
      const [kind, set] = groupKey.split(' ') as [string, string];
      const results = kind === 'addIpsetEntry' ? await this.ipsets.add(set, group.entries) : await this.ipsets.del(set, group.entries);
      results.forEach((outcome, i) => (outcomes[group.indexes[i]!] = outcome));
    }
    return outcomes;
  }

  private async runSingle(operation: KernelOperation): Promise<RequestOutcome> {
    try {
      if (operation.kind === 'ensureDummyInterface') await this.links.ensureDummy(operation.name);
      else if (operation.kind === 'createIpset' && operation.replacing !== undefined) await replaceIpset(this.ipsets, operation.name, operation.spec);
      else if (operation.kind === 'createIpset') await this.ipsets.create(operation.name, operation.spec);
      return { ok: true };
    } catch (error) {
      return { ok: false, error: this.asRequestError(operation, error) };
    }
  }
}

function batchFamily(operation: KernelOperation): string {
  return operation.kind === 'addIpsetEntry' || operation.kind === 'deleteIpsetEntry' ? 'ipsetEntries' : operation.kind;
}

/**
 * The plan's operations as batches of indexes: runs of one family, in plan order. One exception: a
 * run of IPVS operations with UDP flow deletions among them (the diff puts each right after its
 * deleteDestination) goes as two batches, its IPVS operations and then its flow deletions. A flow
 * deletion needs only its real server gone first, so moving it later is safe, and one read of the
 * conntrack table then serves every removed UDP real server instead of one read each.
 */
export function batches(operations: readonly KernelOperation[]): number[][] {
  const result: number[][] = [];
  const ipvsOrFlows = (index: number): boolean => operations[index]!.kind === 'ipvs' || operations[index]!.kind === 'deleteUdpFlows';
  let index = 0;
  while (index < operations.length) {
    const kind = batchFamily(operations[index]!);
    const sameRun = ipvsOrFlows(index) ? ipvsOrFlows : (i: number): boolean => batchFamily(operations[i]!) === kind;
    let end = index + 1;
    while (end < operations.length && sameRun(end)) end++;
    const run = Array.from({ length: end - index }, (_, i) => index + i);
    const ipvs = run.filter((i) => operations[i]!.kind !== 'deleteUdpFlows');
    const flows = run.filter((i) => operations[i]!.kind === 'deleteUdpFlows');
    for (const batch of [ipvs, flows]) if (batch.length > 0) result.push(batch);
    index = end;
  }
  return result;
}

export { ipsetEntryKey };
