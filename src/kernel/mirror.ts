// What the kernel holds, as of the last full read plus every plan applied since: the agent's
// cache between full reads, so that a sync diffs against it instead of dumping 10,000 virtual
// servers again. It refuses what NetlinkKernel refuses, with the same errno (the sandbox's
// test/kernel/mirror-contract.test.ts holds the two to that), so a refusal here means the mirror
// no longer matches the kernel, and the agent reads the kernel afresh.
import { constants } from 'node:os';
import { NetlinkRequestError } from '../netlink/errors.js';
import { IpsetRequestError, setKindOf } from '../netlink/ipset/errors.js';
import { IPSET_ERR_PROTOCOL } from '../netlink/ipset/wire.js';
import type { IpsetSetSpec } from '../netlink/ipset/types.js';
import type { IpvsDestination, IpvsOperation, IpvsService, IpvsServiceKey } from '../netlink/ipvs/types.js';
import { ipsetEntryKey, realServerKey, sameRealServer, virtualServerKey } from '../model/desired.js';
import { IPVS_SCHEDULERS } from '../model/schedulers.js';
import type { FreshObservedState, KernelOperation, ObservedState, ObservedStateKeys, Plan } from '../reconcile/state.js';
import { describeKernelOperation, type OperationFailure } from './netlink-kernel.js';

/** The schedulers of upstream Linux (net/netfilter/ipvs/ip_vs_*.c); a kernel built without one refuses it too. */
const KERNEL_SCHEDULERS = new Set(IPVS_SCHEDULERS);
const KERNEL_PERSISTENCE_ENGINES = new Set(['sip']);
const { EEXIST, EINVAL, ENODEV, ENOENT, ERANGE, ESRCH } = constants.errno;
/** ipset's default maxelem (ip_set_hash_gen.h), for a set created without one. */
const DEFAULT_MAX_ELEMENTS = 65536;

/**
 * A virtual server as the mirror holds it. `shared`: its real servers are the desired state's own
 * map (see share()), which the mirror never changes: it copies the map before it changes it.
 */
interface HeldVirtualServer {
  service: IpvsService;
  realServers: Map<string, IpvsDestination>;
  shared?: true;
}

export class KernelMirror {
  private constructor(
    private readonly dummyInterface: string,
    private dummyInterfaceExists: boolean,
    private readonly virtualServers: Map<string, HeldVirtualServer>,
    private readonly boundAddresses: FreshObservedState['boundAddresses'],
    private readonly ipsets: FreshObservedState['ipsets'],
    /** kube-proxy-named sets of a type kipvs does not decode (name → type): the diff replaces them. */
    private readonly undecodedIpsets: Map<string, string>,
  ) {}

  /**
   * Takes over the maps of a state nobody else holds (what Kernel.observe() returns) instead of
   * copying 10,000 of them at every full sync.
   */
  static adopt(observed: FreshObservedState, dummyInterface: string): KernelMirror {
    return new KernelMirror(
      dummyInterface,
      observed.dummyInterfaceExists,
      observed.virtualServers,
      observed.boundAddresses,
      observed.ipsets,
      observed.undecodedIpsets ?? new Map<string, string>(),
    );
  }

  /** The state itself, not a copy: for readers that finish before the next apply (the diff). */
  view(): ObservedState {
    return {
      dummyInterfaceExists: this.dummyInterfaceExists,
      virtualServers: this.virtualServers,
      boundAddresses: this.boundAddresses,
      ipsets: this.ipsets,
      // As observe() reports them: the field only when there is one.
      ...(this.undecodedIpsets.size > 0 ? { undecodedIpsets: this.undecodedIpsets } : {}),
    };
  }

  /** A copy that the caller owns, as Kernel.observe() returns. */
  copy(): FreshObservedState {
    const virtualServers: FreshObservedState['virtualServers'] = new Map();
    for (const [key, vs] of this.virtualServers) virtualServers.set(key, { service: vs.service, realServers: new Map(vs.realServers) });
    const ipsets: FreshObservedState['ipsets'] = new Map();
    for (const [name, set] of this.ipsets) ipsets.set(name, { spec: set.spec, entries: new Map(set.entries) });
    return {
      dummyInterfaceExists: this.dummyInterfaceExists,
      virtualServers,
      boundAddresses: new Set(this.boundAddresses),
      ipsets,
      ...(this.undecodedIpsets.size > 0 ? { undecodedIpsets: new Map(this.undecodedIpsets) } : {}),
    };
  }

  /**
   * Takes the kernel's state as just read for the given keys (what a full read found drifted, and
   * the virtual servers whose fresh counts the next diff needs); the rest stays as it is.
   */
  patch(kernel: ObservedState, keys: ObservedStateKeys): void {
    if (keys.dummyInterface) this.dummyInterfaceExists = kernel.dummyInterfaceExists;
    for (const key of keys.virtualServers) {
      const read = kernel.virtualServers.get(key);
      if (read) this.virtualServers.set(key, { service: read.service, realServers: new Map(read.realServers) });
      else this.virtualServers.delete(key);
    }
    for (const address of keys.addresses) {
      if (kernel.boundAddresses.has(address)) this.boundAddresses.add(address);
      else this.boundAddresses.delete(address);
    }
    for (const name of keys.ipsets) {
      const read = kernel.ipsets.get(name);
      if (read) this.ipsets.set(name, { spec: read.spec, entries: new Map(read.entries) });
      else this.ipsets.delete(name);
      const undecoded = kernel.undecodedIpsets?.get(name);
      if (undecoded === undefined) this.undecodedIpsets.delete(name);
      else this.undecodedIpsets.set(name, undecoded);
    }
    for (const [name, entryKeys] of keys.ipsetEntries) {
      const held = this.ipsets.get(name);
      const read = kernel.ipsets.get(name);
      if (!held) continue;
      for (const entryKey of entryKeys) {
        const entry = read?.entries.get(entryKey);
        if (entry) held.entries.set(entryKey, entry);
        else held.entries.delete(entryKey);
      }
    }
  }

  /**
   * For each of `keys` whose real servers here are the desired ones, as the kernel holds them and
   * the diff compares them (the same settings under the same keys; the kernel's counters, which
   * only a fresh read makes worth anything, aside), holds the desired state's map itself instead
   * of a copy: at 10,000 Services, 12,000 maps and 120,000 keys fewer. The desired state never
   * changes a map it has handed out (a translation makes new ones).
   */
  share(desired: ReadonlyMap<string, { readonly realServers: ReadonlyMap<string, IpvsDestination> }>, keys: Iterable<string>): void {
    for (const key of keys) {
      const held = this.virtualServers.get(key);
      const wanted = desired.get(key)?.realServers;
      if (!held || !wanted || held.realServers === wanted || held.realServers.size !== wanted.size) continue;
      let same = true;
      for (const [realKey, destination] of wanted) {
        const current = held.realServers.get(realKey);
        if (current !== destination && (current === undefined || !heldAsDesired(current, destination))) {
          same = false;
          break;
        }
      }
      if (same) this.virtualServers.set(key, { service: held.service, realServers: wanted as Map<string, IpvsDestination>, shared: true });
    }
  }

  /** The virtual server's real servers, its own to change (a shared map copied first). */
  private ownRealServers(held: HeldVirtualServer): Map<string, IpvsDestination> {
    if (held.shared) {
      held.realServers = new Map(held.realServers);
      delete held.shared;
    }
    return held.realServers;
  }

  /** Runs the plan in order, as NetlinkKernel does: a refused operation changes nothing and the others still run. */
  apply(plan: Plan): OperationFailure[] {
    const failures: OperationFailure[] = [];
    for (const operation of plan.operations) {
      const error = this.applyOperation(operation);
      if (error) failures.push({ operation, error });
    }
    return failures;
  }

  /** One operation: undefined when applied, else the kernel's refusal. */
  applyOperation(operation: KernelOperation): NetlinkRequestError | undefined {
    const errno = this.refusalOrApply(operation);
    if (errno === undefined) return undefined;
    const description = describeKernelOperation(operation, this.dummyInterface);
    if (operation.kind === 'createIpset') return new IpsetRequestError(description, errno, undefined, setKindOf(operation.spec.type));
    if (operation.kind === 'addIpsetEntry' || operation.kind === 'deleteIpsetEntry') return new IpsetRequestError(description, errno);
    return new NetlinkRequestError(description, errno);
  }

  private refusalOrApply(operation: KernelOperation): number | undefined {
    switch (operation.kind) {
      case 'ensureDummyInterface':
        if (operation.name === this.dummyInterface) this.dummyInterfaceExists = true;
        return undefined;
      case 'createIpset':
        return this.createIpset(operation.name, operation.spec, operation.replacing !== undefined);
      case 'bindAddress':
      case 'unbindAddress':
        if (!this.dummyInterfaceExists) return ENODEV;
        // Sent tolerating EEXIST and EADDRNOTAVAIL: binding twice or unbinding what is gone succeeds.
        if (operation.kind === 'bindAddress') this.boundAddresses.add(operation.address);
        else this.boundAddresses.delete(operation.address);
        return undefined;
      case 'addIpsetEntry':
      case 'deleteIpsetEntry': {
        const set = this.ipsets.get(operation.set);
        // A set of a type kipvs does not decode (hash:mac, list:set) lacks the attributes of an
        // ip,port or port entry: its type's uadt() answers IPSET_ERR_PROTOCOL.
        if (!set) return this.undecodedIpsets.has(operation.set) ? IPSET_ERR_PROTOCOL : ENOENT;
        // Sent without NLM_F_EXCL, so with IPSET_FLAG_EXIST: adding what is there (a new comment
        // replaces the old) or deleting what is not succeeds (ip_set_core.c, call_ad()).
        const key = ipsetEntryKey(operation.entry);
        if (operation.kind === 'addIpsetEntry') set.entries.set(key, operation.entry);
        else set.entries.delete(key);
        return undefined;
      }
      case 'ipvs':
        return this.applyIpvs(operation.operation);
      case 'deleteUdpFlows':
        // No flows in here, and the kernel does not refuse it either: a deletion that finds nothing deletes nothing.
        return undefined;
    }
  }

  /**
   * Sent without NLM_F_EXCL: creating a set that exists succeeds when it is the same set, and is
   * EEXIST otherwise (ip_set_create(): same type and family, and the type's same_set(), which
   * compares maxelem and extensions and ignores the hash size, which grows with the set).
   * `replacing`: the set of that name is unusable and is swapped for a new, empty one (see NetlinkKernel).
   */
  private createIpset(name: string, spec: IpsetSetSpec, replacing: boolean): number | undefined {
    if (replacing) this.undecodedIpsets.delete(name);
    // A set of a type kipvs does not decode is never the same set as one it makes.
    else if (this.undecodedIpsets.has(name)) return EEXIST;
    const existing = this.ipsets.get(name);
    if (!existing || replacing) {
      this.ipsets.set(name, { spec, entries: new Map() });
      return undefined;
    }
    return sameSet(existing.spec, spec) ? undefined : EEXIST;
  }

  /** In the order of ip_vs_genl_set_cmd(): the service lookup, the destination's family, then the command's own checks. */
  private applyIpvs(operation: IpvsOperation): number | undefined {
    if (operation.op === 'addService') return this.addService(operation.service);
    const vs = this.virtualServers.get(
      virtualServerKey(operation.op === 'deleteService' ? operation.key : operation.op === 'editService' ? operation.service.key : operation.service),
    );
    if (!vs) return ESRCH;
    switch (operation.op) {
      case 'editService': {
        const refusal = serviceRefusal(operation.service);
        if (refusal === undefined) vs.service = asHeldService(operation.service);
        return refusal;
      }
      case 'deleteService':
        this.virtualServers.delete(virtualServerKey(operation.key));
        return undefined;
      case 'addDestination':
      case 'editDestination': {
        const refusal = destinationRefusal(vs.service.key, operation.destination);
        if (refusal !== undefined) return refusal;
        const key = realServerKey(operation.destination);
        const existing = vs.realServers.get(key);
        if (operation.op === 'addDestination' && existing) return EEXIST;
        if (operation.op === 'editDestination' && !existing) return ENOENT;
        this.ownRealServers(vs).set(key, asHeldRealServer(operation.destination, existing));
        return undefined;
      }
      case 'deleteDestination': {
        const key = realServerKey(operation.destination);
        return vs.realServers.has(key) && this.ownRealServers(vs).delete(key) ? undefined : ENOENT;
      }
    }
  }

  private addService(service: IpvsService): number | undefined {
    const key = virtualServerKey(service.key);
    if (this.virtualServers.has(key)) return EEXIST;
    const refusal = serviceRefusal(service);
    if (refusal === undefined) this.virtualServers.set(key, { service: asHeldService(service), realServers: new Map() });
    return refusal;
  }
}

/**
 * A real server the kernel holds (`held`, with the counters of the last read, or as a plan made it)
 * that is the desired one as far as the kernel and the diff tell: family, forwarding, weight,
 * thresholds and tunnel settings (the key is the address and port).
 */
function heldAsDesired(held: IpvsDestination, desired: IpvsDestination): boolean {
  const tunnelled = desired.forwarding === 'tunnel';
  return (
    held.family === desired.family &&
    sameRealServer(held, desired) &&
    (!tunnelled ||
      ((held.tunnelType ?? 'ipip') === (desired.tunnelType ?? 'ipip') &&
        (held.tunnelPort ?? 0) === (desired.tunnelPort ?? 0) &&
        (held.tunnelFlags ?? 0) === (desired.tunnelFlags ?? 0)))
  );
}

/** ip_vs_add_service() and ip_vs_edit_service(): the scheduler, then the persistence engine, must exist. */
function serviceRefusal(service: IpvsService): number | undefined {
  if (!KERNEL_SCHEDULERS.has(service.scheduler)) return ENOENT;
  if (service.persistenceEngine && !KERNEL_PERSISTENCE_ENGINES.has(service.persistenceEngine)) return ENOENT;
  return undefined;
}

/** ip_vs_genl_set_cmd(), then ip_vs_add_dest() and ip_vs_edit_dest(), before they look the real server up. */
function destinationRefusal(service: IpvsServiceKey, destination: IpvsDestination): number | undefined {
  // A real server of the other family is forwarded only through a tunnel.
  if (destination.family !== service.family && destination.forwarding !== 'tunnel') return EINVAL;
  if (destination.lowerThreshold > destination.upperThreshold) return ERANGE;
  if (destination.forwarding === 'tunnel' && destination.tunnelType === 'gue' && !destination.tunnelPort) return EINVAL;
  return undefined;
}

/** The kernel's same_set(): the same type and family (or range), comments and maxelem; hash sizes grow and do not count. */
export function sameSet(existing: IpsetSetSpec, wanted: IpsetSetSpec): boolean {
  if (existing.type !== wanted.type || (existing.comment ?? false) !== (wanted.comment ?? false)) return false;
  if (existing.type === 'bitmap:port' || wanted.type === 'bitmap:port') {
    return (
      existing.type === 'bitmap:port' && wanted.type === 'bitmap:port' && existing.range.from === wanted.range.from && existing.range.to === wanted.range.to
    );
  }
  return existing.family === wanted.family && (existing.maxElements ?? DEFAULT_MAX_ELEMENTS) === (wanted.maxElements ?? DEFAULT_MAX_ELEMENTS);
}

/** A service as the kernel reads it back: no stats (observe() reads none), no empty engine name. */
function asHeldService(service: IpvsService): IpvsService {
  if (service.stats === undefined && service.persistenceEngine !== '') return service;
  const { stats: _stats, persistenceEngine, ...rest } = service;
  return persistenceEngine ? { ...rest, persistenceEngine } : rest;
}

/**
 * A real server as the kernel reads it back: what was set, tunnel settings only when tunnelled,
 * and the kernel's counters as of the last full read, which an edit keeps. One added since has
 * none (the diff counts them as 0 and trusts only freshly read ones). A real server from the plan
 * that is already in that form is kept as it is: the mirror then shares the desired state's
 * object instead of holding a copy of each of 100,000 real servers.
 */
function asHeldRealServer(destination: IpvsDestination, existing: IpvsDestination | undefined): IpvsDestination {
  const tunnelled = destination.forwarding === 'tunnel';
  const counted = existing?.activeConns !== undefined;
  const asIs =
    !counted &&
    destination.activeConns === undefined &&
    destination.inactiveConns === undefined &&
    destination.persistConns === undefined &&
    destination.stats === undefined &&
    (tunnelled
      ? destination.tunnelType !== undefined && destination.tunnelPort !== undefined && destination.tunnelFlags !== undefined
      : destination.tunnelType === undefined && destination.tunnelPort === undefined && destination.tunnelFlags === undefined);
  if (asIs) return destination;
  const { address, port, family, forwarding, weight, upperThreshold, lowerThreshold } = destination;
  return {
    address,
    port,
    family,
    forwarding,
    weight,
    upperThreshold,
    lowerThreshold,
    ...(counted ? { activeConns: existing.activeConns, inactiveConns: existing.inactiveConns ?? 0, persistConns: existing.persistConns ?? 0 } : {}),
    ...(tunnelled ? { tunnelType: destination.tunnelType ?? 'ipip', tunnelPort: destination.tunnelPort ?? 0, tunnelFlags: destination.tunnelFlags ?? 0 } : {}),
  };
}
