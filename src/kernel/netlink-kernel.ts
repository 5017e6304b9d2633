// The kernel adapter: reads the state kipvs reconciles (observe) and runs plans (apply), through
// the IPVS, ipset and rtnetlink clients of one network namespace. No decisions here: those are
// the diff's.
import { IpvsClient } from '../netlink/ipvs/client.js';
import { IpsetClient } from '../netlink/ipset/client.js';
import { LinkClient } from '../netlink/rtnl/client.js';
import type { RequestOutcome } from '../netlink/connection.js';
import { NetlinkRequestError } from '../netlink/errors.js';
import { describeOperation } from '../netlink/ipvs/types.js';
import { describeEntryOperation, type IpsetEntry } from '../netlink/ipset/types.js';
import { ipsetEntryKey, realServerKey, virtualServerKey } from '../model/desired.js';
import type { KernelOperation, ObservedIpset, ObservedState, ObservedVirtualServer, Plan } from '../reconcile/state.js';

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
  observe(): Promise<ObservedState>;
  apply(plan: Plan): Promise<ApplyResult>;
  close(): void;
}

export function describeKernelOperation(operation: KernelOperation, dummyInterface: string): string {
  switch (operation.kind) {
    case 'ensureDummyInterface':
      return `create dummy interface ${operation.name}`;
    case 'createIpset':
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
  }
}

export class NetlinkKernel implements Kernel {
  private constructor(
    private readonly ipvs: IpvsClient,
    private readonly ipsets: IpsetClient,
    private readonly links: LinkClient,
    private readonly options: KernelOptions,
  ) {}

  static async open(options: KernelOptions): Promise<NetlinkKernel> {
    const connection = options.netns ? { netns: options.netns } : {};
    const ipvs = await IpvsClient.open(connection);
    try {
      const ipsets = await IpsetClient.open(connection);
      try {
        return new NetlinkKernel(ipvs, ipsets, LinkClient.open(connection), options);
      } catch (error) {
        ipsets.close();
        throw error;
      }
    } catch (error) {
      ipvs.close();
      throw error;
    }
  }

  close(): void {
    this.ipvs.close();
    this.ipsets.close();
    this.links.close();
  }

  async observe(): Promise<ObservedState> {
    const [table, link, ipsets] = await Promise.all([this.ipvs.snapshot(), this.links.getLink(this.options.dummyInterface), this.observeIpsets()]);
    const virtualServers = new Map<string, ObservedVirtualServer>();
    for (const { service, destinations } of table) {
      virtualServers.set(virtualServerKey(service.key), { service, realServers: new Map(destinations.map((d) => [realServerKey(d), d])) });
    }
    const boundAddresses = new Set<string>();
    if (link) {
      for (const address of await this.links.listAddresses(this.options.dummyInterface)) {
        if (!address.address.startsWith('fe80:')) boundAddresses.add(address.address);
      }
    }
    return { dummyInterfaceExists: link !== null, virtualServers, boundAddresses, ipsets };
  }

  private async observeIpsets(): Promise<Map<string, ObservedIpset>> {
    const result = new Map<string, ObservedIpset>();
    for (const name of this.options.ipsetNames) {
      const set = await this.ipsets.listSet(name);
      if (!set) continue;
      result.set(name, { spec: set.header, entries: new Map(set.entries.map((entry) => [ipsetEntryKey(entry), entry])) });
    }
    return result;
  }

  /**
   * Runs the plan in order, batching consecutive operations of one family into one netlink call.
   * A failed operation is reported and the others still run.
   */
  async apply(plan: Plan): Promise<ApplyResult> {
    const failures: OperationFailure[] = [];
    const operations = plan.operations;
    let index = 0;
    while (index < operations.length) {
      const batchKind = batchFamily(operations[index]!);
      let end = index + 1;
      while (end < operations.length && batchFamily(operations[end]!) === batchKind) end++;
      const batch = operations.slice(index, end);
      const outcomes = await this.applyBatch(batch);
      outcomes.forEach((outcome, i) => {
        if (!outcome.ok) failures.push({ operation: batch[i]!, error: outcome.error });
      });
      index = end;
    }
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
      case 'ensureDummyInterface':
      case 'createIpset':
        return Promise.all(batch.map((operation) => this.runSingle(operation)));
    }
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
      else if (operation.kind === 'createIpset') await this.ipsets.create(operation.name, operation.spec);
      return { ok: true };
    } catch (error) {
      if (error instanceof NetlinkRequestError) return { ok: false, error };
      return { ok: false, error: new NetlinkRequestError(describeKernelOperation(operation, this.options.dummyInterface), 22, (error as Error).message) };
    }
  }
}

function batchFamily(operation: KernelOperation): string {
  return operation.kind === 'addIpsetEntry' || operation.kind === 'deleteIpsetEntry' ? 'ipsetEntries' : operation.kind;
}

export { ipsetEntryKey };
