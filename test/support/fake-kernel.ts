// An in-memory kernel for unit tests of the reconciler and the agent: the production KernelMirror
// behind the Kernel interface, so it refuses what the kernel refuses (a real server for a missing
// virtual server, a duplicate, an unknown scheduler, an entry for a missing set, an address on a
// missing interface) and no unit test passes on a plan the kernel would reject. The sandbox's
// mirror contract test holds the mirror to the real kernel. Its maps are public for tests that
// play an administrator changing the kernel behind the agent's back.
import type { IpsetEntry, IpsetSetSpec } from '../../src/netlink/ipset/types.js';
import type { IpvsDestination, IpvsService, IpvsServiceKey } from '../../src/netlink/ipvs/types.js';
import type { FreshObservedState, KernelOperation, ObservedState, ObservedVirtualServer, Plan } from '../../src/reconcile/state.js';
import { virtualServerKey } from '../../src/model/desired.js';
import type { ApplyResult, Kernel, OperationFailure } from '../../src/kernel/netlink-kernel.js';
import { KernelMirror } from '../../src/kernel/mirror.js';
import { defined } from './defined.js';

export class FakeKernel implements Kernel {
  readonly virtualServers = new Map<string, { service: IpvsService; readonly realServers: Map<string, IpvsDestination> }>();
  readonly boundAddresses = new Set<string>();
  readonly ipsets = new Map<string, { readonly spec: IpsetSetSpec; readonly entries: Map<string, IpsetEntry> }>();
  /** kube-proxy-named sets of a type kipvs does not decode (name → type), as `ipset create KUBE-CLUSTER-IP hash:mac` leaves one. */
  readonly undecodedIpsets = new Map<string, string>();
  /** Every operation applied successfully, in order, for tests that count kernel work. */
  readonly log: KernelOperation[] = [];
  private readonly mirror: KernelMirror;

  constructor(readonly dummyInterfaceName = 'kube-ipvs0') {
    const state = {
      dummyInterfaceExists: false,
      virtualServers: this.virtualServers,
      boundAddresses: this.boundAddresses,
      ipsets: this.ipsets,
      undecodedIpsets: this.undecodedIpsets,
    };
    this.mirror = KernelMirror.adopt(state, dummyInterfaceName);
  }

  /** The virtual server under its key ("TCP 10.96.0.10:80"); throws if there is none. */
  virtualServer(key: string): { service: IpvsService; readonly realServers: Map<string, IpvsDestination> } {
    return defined(this.virtualServers.get(key), `virtual server ${key}`);
  }

  /** The state itself, not a copy. */
  view(): ObservedState {
    return this.mirror.view();
  }

  observe(): Promise<FreshObservedState> {
    return Promise.resolve(this.mirror.copy());
  }

  observeVirtualServers(keys: readonly IpvsServiceKey[]): Promise<Map<string, ObservedVirtualServer>> {
    const found = new Map<string, ObservedVirtualServer>();
    for (const key of keys) {
      const vs = this.virtualServers.get(virtualServerKey(key));
      if (vs) found.set(virtualServerKey(key), { service: vs.service, realServers: new Map(vs.realServers) });
    }
    return Promise.resolve(found);
  }

  apply(plan: Plan): Promise<ApplyResult> {
    const failures: OperationFailure[] = [];
    for (const operation of plan.operations) {
      const error = this.mirror.applyOperation(operation);
      if (error) failures.push({ operation, error });
      else this.log.push(operation);
    }
    return Promise.resolve({ applied: plan.operations.length - failures.length, failures });
  }

  close(): void {}
}
