// An in-memory kernel for unit tests of the reconciler, stricter than the real one (as
// knftables' fake is): it refuses what the kernel refuses — a real server for a missing virtual
// server (ESRCH), a duplicate (EEXIST), an unknown scheduler (ENOENT), an entry for a missing set,
// an address on a missing interface (ENODEV) — so no unit test passes on a plan the kernel would
// reject. Kernel tests confirm the real kernel behaves as this fake says.
import { NetlinkRequestError } from '../netlink/errors.js';
import type { IpvsOperation } from '../netlink/ipvs/types.js';
import { ipsetEntryKey, realServerKey, virtualServerKey } from '../model/desired.js';
import type { FreshObservedState, KernelOperation, ObservedState, Plan } from '../reconcile/state.js';
import { describeKernelOperation, type ApplyResult, type Kernel, type OperationFailure } from './netlink-kernel.js';

const KERNEL_SCHEDULERS = new Set(['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'twos']);
const ERRNO = { EEXIST: 17, ESRCH: 3, ENOENT: 2, ENODEV: 19, EADDRNOTAVAIL: 99 } as const;

export class FakeKernel implements Kernel {
  dummyInterface: string | undefined;
  readonly virtualServers: FreshObservedState['virtualServers'];
  readonly boundAddresses: Set<string>;
  readonly ipsets: FreshObservedState['ipsets'];
  /** Every operation applied successfully, in order, for tests that count kernel work. */
  readonly log: KernelOperation[] = [];
  private keepLog = true;

  constructor(
    readonly dummyInterfaceName = 'kube-ipvs0',
    state: Omit<FreshObservedState, 'dummyInterfaceExists'> = { virtualServers: new Map(), boundAddresses: new Set(), ipsets: new Map() },
  ) {
    this.virtualServers = state.virtualServers;
    this.boundAddresses = state.boundAddresses;
    this.ipsets = state.ipsets;
  }

  /** A fake holding what a real kernel was observed to hold: the agent's cache between full reads. */
  static from(observed: ObservedState, dummyInterfaceName = 'kube-ipvs0'): FakeKernel {
    const kernel = new FakeKernel(dummyInterfaceName);
    if (observed.dummyInterfaceExists) kernel.dummyInterface = dummyInterfaceName;
    for (const [key, vs] of observed.virtualServers) kernel.virtualServers.set(key, { service: vs.service, realServers: new Map(vs.realServers) });
    for (const address of observed.boundAddresses) kernel.boundAddresses.add(address);
    for (const [name, set] of observed.ipsets) kernel.ipsets.set(name, { spec: set.spec, entries: new Map(set.entries) });
    return kernel;
  }

  /**
   * As from(), taking over the maps of a state nobody else holds (what Kernel.observe() returns)
   * instead of copying 10,000 of them at every full sync.
   */
  static adopt(observed: FreshObservedState, dummyInterfaceName = 'kube-ipvs0'): FakeKernel {
    const kernel = new FakeKernel(dummyInterfaceName, observed);
    kernel.keepLog = false; // a cache: nobody reads what it applied, and 169,018 operations add up
    if (observed.dummyInterfaceExists) kernel.dummyInterface = dummyInterfaceName;
    return kernel;
  }

  /** The state itself, not a copy: for readers that finish before the next apply (the diff). */
  view(): ObservedState {
    return { dummyInterfaceExists: this.dummyInterface !== undefined, virtualServers: this.virtualServers, boundAddresses: this.boundAddresses, ipsets: this.ipsets };
  }

  async observe(): Promise<FreshObservedState> {
    const virtualServers: FreshObservedState['virtualServers'] = new Map();
    for (const [key, vs] of this.virtualServers) virtualServers.set(key, { service: vs.service, realServers: new Map(vs.realServers) });
    const ipsets: FreshObservedState['ipsets'] = new Map();
    for (const [name, set] of this.ipsets) ipsets.set(name, { spec: set.spec, entries: new Map(set.entries) });
    return { dummyInterfaceExists: this.dummyInterface !== undefined, virtualServers, boundAddresses: new Set(this.boundAddresses), ipsets };
  }

  async apply(plan: Plan): Promise<ApplyResult> {
    const failures: OperationFailure[] = [];
    for (const operation of plan.operations) {
      const errno = this.applyOne(operation);
      if (errno === undefined) {
        if (this.keepLog) this.log.push(operation);
      } else failures.push({ operation, error: new NetlinkRequestError(describeKernelOperation(operation, this.dummyInterfaceName), errno) });
    }
    return { applied: plan.operations.length - failures.length, failures };
  }

  close(): void {}

  private applyOne(operation: KernelOperation): number | undefined {
    switch (operation.kind) {
      case 'ensureDummyInterface':
        this.dummyInterface = operation.name;
        return undefined;
      case 'createIpset':
        if (!this.ipsets.has(operation.name)) this.ipsets.set(operation.name, { spec: operation.spec, entries: new Map() });
        return undefined;
      case 'bindAddress':
        if (this.dummyInterface === undefined) return ERRNO.ENODEV;
        this.boundAddresses.add(operation.address);
        return undefined;
      case 'unbindAddress':
        return this.boundAddresses.delete(operation.address) ? undefined : ERRNO.EADDRNOTAVAIL;
      case 'addIpsetEntry':
      case 'deleteIpsetEntry': {
        const set = this.ipsets.get(operation.set);
        if (!set) return ERRNO.ENOENT;
        const key = ipsetEntryKey(operation.entry);
        if (operation.kind === 'addIpsetEntry') set.entries.set(key, operation.entry);
        else set.entries.delete(key);
        return undefined; // idempotent, as kipvs sends ipset entries without NLM_F_EXCL
      }
      case 'ipvs':
        return this.applyIpvs(operation.operation);
      case 'deleteUdpFlows':
        // No flows in here: accepted, and logged like every applied operation. The kernel does
        // not refuse it either: a flow deletion that finds nothing deletes nothing.
        return undefined;
    }
  }

  private applyIpvs(operation: IpvsOperation): number | undefined {
    switch (operation.op) {
      case 'addService': {
        const key = virtualServerKey(operation.service.key);
        if (this.virtualServers.has(key)) return ERRNO.EEXIST;
        if (!KERNEL_SCHEDULERS.has(operation.service.scheduler)) return ERRNO.ENOENT;
        this.virtualServers.set(key, { service: operation.service, realServers: new Map() });
        return undefined;
      }
      case 'editService': {
        const vs = this.virtualServers.get(virtualServerKey(operation.service.key));
        if (!vs) return ERRNO.ESRCH;
        if (!KERNEL_SCHEDULERS.has(operation.service.scheduler)) return ERRNO.ENOENT;
        vs.service = operation.service;
        return undefined;
      }
      case 'deleteService':
        return this.virtualServers.delete(virtualServerKey(operation.key)) ? undefined : ERRNO.ESRCH;
      case 'addDestination':
      case 'editDestination': {
        const vs = this.virtualServers.get(virtualServerKey(operation.service));
        if (!vs) return ERRNO.ESRCH;
        const key = realServerKey(operation.destination);
        const exists = vs.realServers.has(key);
        if (operation.op === 'addDestination' && exists) return ERRNO.EEXIST;
        if (operation.op === 'editDestination' && !exists) return ERRNO.ENOENT;
        // Counters are the kernel's: an add starts them at 0, an edit keeps them.
        const { activeConns: _a, inactiveConns: _i, persistConns: _p, stats: _s, ...settable } = operation.destination;
        const existing = vs.realServers.get(key);
        const counters = existing ? { activeConns: existing.activeConns, inactiveConns: existing.inactiveConns, persistConns: existing.persistConns, stats: existing.stats } : { activeConns: 0, inactiveConns: 0, persistConns: 0 };
        vs.realServers.set(key, { ...settable, ...counters });
        return undefined;
      }
      case 'deleteDestination': {
        const vs = this.virtualServers.get(virtualServerKey(operation.service));
        if (!vs) return ERRNO.ESRCH;
        return vs.realServers.delete(realServerKey(operation.destination)) ? undefined : ERRNO.ENOENT;
      }
    }
  }
}
