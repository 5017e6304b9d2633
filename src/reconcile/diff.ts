// The pure diff: desired state against what the kernel has, to the smallest ordered plan.
// Only what kipvs owns is ever changed: virtual servers it wants, and those ownership.ts says it may
// delete (bound on its dummy interface, made before, or a NodePort kube-proxy's sets record); never
// one inside --ipvs-exclude-cidrs. Someone else's virtual servers, ipsets and
// addresses are left as they are.
import { cidrContains } from '../ip.js';
import { isFwmarkKey, sameServiceSettings, type IpvsDestination, type IpvsService } from '../netlink/ipvs/types.js';
import type { IpsetSetSpec } from '../netlink/ipset/types.js';
import { EVERYTHING, sameRealServer, type DesiredState, type DesiredVirtualServer, type DiffScope } from '../model/desired.js';
import { mayDelete, recordedNodePorts, type OwnershipFacts } from './ownership.js';
import { drainKey, type DrainingRealServer, type KernelOperation, type ObservedState, type ObservedVirtualServer, type Plan } from './state.js';

export interface DiffContext {
  readonly dummyInterface: string;
  readonly excludeCidrs: readonly string[];
  /** How long a removed TCP/SCTP real server drains at weight 0 before it is deleted; 0 deletes at once. */
  readonly gracefulTerminationMs: number;
  readonly now: number;
  readonly draining: ReadonlyMap<string, DrainingRealServer>;
  /** Virtual servers kipvs programmed before (across restarts, from its state file). */
  readonly previouslyOwned: ReadonlySet<string>;
  /** The node's addresses: a NodePort virtual server on one, at a port kube-proxy's sets record, is ours to delete. */
  readonly nodeAddresses?: ReadonlySet<string>;
  /**
   * The connection counts were read from the kernel for this diff (not a cache from the last full
   * read): a removed real server with none is deleted at once, as kube-proxy does. Without fresh
   * counts a removed real server only drains (weight 0) until a full read or its timeout.
   */
  readonly freshCounters?: boolean;
  /**
   * Virtual servers whose counts are not fresh although `freshCounters` says so: a sync changed
   * them while the kernel was being read, after the read saw them.
   */
  readonly staleCounters?: ReadonlySet<string>;
}

function excluded(service: IpvsService, excludeCidrs: readonly string[]): boolean {
  return !isFwmarkKey(service.key) && excludeCidrs.some((cidr) => cidrContains(cidr, (service.key as { address: string }).address));
}

/** UDP has no connection to drain: a removed UDP real server goes at once (kube-proxy does the same). */
const drains = (service: IpvsService): boolean => isFwmarkKey(service.key) || service.key.protocol !== 'UDP';

interface PlanBuilder {
  readonly creations: KernelOperation[];
  readonly deletions: KernelOperation[];
  readonly draining: Map<string, DrainingRealServer>;
}

function diffRealServers(
  key: string,
  desired: DesiredVirtualServer,
  observed: ObservedVirtualServer | undefined,
  context: DiffContext,
  plan: PlanBuilder,
): void {
  const serviceKey = desired.service.key;
  for (const [realKey, destination] of desired.realServers) {
    const current = observed?.realServers.get(realKey);
    if (!current) plan.creations.push({ kind: 'ipvs', operation: { op: 'addDestination', service: serviceKey, destination } });
    else if (!sameRealServer(current, destination))
      plan.creations.push({ kind: 'ipvs', operation: { op: 'editDestination', service: serviceKey, destination } });
  }
  for (const [realKey, current] of observed?.realServers ?? []) {
    if (desired.realServers.has(realKey)) continue;
    removeRealServer(key, realKey, desired.service, current, context, plan);
  }
}

function removeRealServer(key: string, realKey: string, service: IpvsService, current: IpvsDestination, context: DiffContext, plan: PlanBuilder): void {
  const deleteIt = (): void => {
    plan.deletions.push({ kind: 'ipvs', operation: { op: 'deleteDestination', service: service.key, destination: current } });
    // The conntrack entries of its UDP flows still name the deleted real server, and a UDP flow
    // never closes: every datagram renews its entry's timeout. Cleared right after, as kube-proxy does.
    if (!isFwmarkKey(service.key) && service.key.protocol === 'UDP') {
      plan.deletions.push({ kind: 'deleteUdpFlows', virtualServer: service.key, endpoint: { address: current.address, port: current.port } });
    }
  };
  if (!drains(service) || context.gracefulTerminationMs <= 0) {
    deleteIt();
    return;
  }
  const id = drainKey(key, realKey);
  const since = context.draining.get(id)?.since ?? context.now;
  const connections = (current.activeConns ?? 0) + (current.inactiveConns ?? 0);
  // No connection left (active or TIME_WAIT), as kube-proxy's graceful termination. Only counts
  // just read from the kernel say so: the cache's are from the last full read (or 0 for a real
  // server added since), so between full reads a draining real server waits for the next one.
  const drained = connections === 0 && context.freshCounters === true && context.staleCounters?.has(key) !== true;
  if (drained || context.now - since >= context.gracefulTerminationMs) {
    deleteIt();
    return;
  }
  if (current.weight !== 0) {
    plan.creations.push({ kind: 'ipvs', operation: { op: 'editDestination', service: service.key, destination: { ...current, weight: 0 } } });
  }
  plan.draining.set(id, { virtualServer: key, realServer: realKey, since });
}

/**
 * The plan that makes the kernel match `desired`. With a scope (what changed Services touched),
 * only those virtual servers, addresses and ipset entries are compared, and real servers draining
 * elsewhere carry on as they were: the cost of a sync follows the change, not the cluster.
 */
export function diff(desired: DesiredState, observed: ObservedState, context: DiffContext, scope: DiffScope = EVERYTHING): Plan {
  const plan: PlanBuilder = { creations: [], deletions: [], draining: new Map() };
  if (!scope.all) {
    for (const [id, draining] of context.draining) if (!scope.virtualServers.has(draining.virtualServer)) plan.draining.set(id, draining);
  }
  const setup: KernelOperation[] = [];
  if (!observed.dummyInterfaceExists) setup.push({ kind: 'ensureDummyInterface', name: context.dummyInterface });
  const replaced = new Set<string>();
  for (const [name, set] of desired.ipsets) {
    const have = observed.ipsets.get(name);
    const unusable = observed.undecodedIpsets?.get(name) ?? (have && !usableSet(have.spec, set.spec) ? describeSpec(have.spec) : undefined);
    if (unusable !== undefined) {
      setup.push({ kind: 'createIpset', name, spec: set.spec, replacing: unusable });
      replaced.add(name);
    } else if (!have) setup.push({ kind: 'createIpset', name, spec: set.spec });
  }
  const addresses = scope.all ? union(desired.boundAddresses, observed.boundAddresses) : scope.addresses;
  const unbinds: KernelOperation[] = [];
  for (const address of addresses) {
    const wanted = desired.boundAddresses.has(address);
    const bound = observed.boundAddresses.has(address);
    if (wanted && !bound) setup.push({ kind: 'bindAddress', address });
    else if (!wanted && bound) unbinds.push({ kind: 'unbindAddress', address });
  }

  const serviceDeletions: KernelOperation[] = [];
  let nodePorts: Set<string> | undefined;
  const ownership: OwnershipFacts = {
    previouslyOwned: context.previouslyOwned,
    boundAddresses: observed.boundAddresses,
    nodeAddresses: context.nodeAddresses ?? new Set(),
    recordedNodePorts: () => (nodePorts ??= recordedNodePorts(observed.ipsets)),
  };
  const virtualServers = scope.all ? union(desired.virtualServers.keys(), observed.virtualServers.keys()) : scope.virtualServers;
  for (const key of virtualServers) {
    const want = desired.virtualServers.get(key);
    const have = observed.virtualServers.get(key);
    if (want) {
      if (excluded(want.service, context.excludeCidrs)) continue;
      if (!have) plan.creations.push({ kind: 'ipvs', operation: { op: 'addService', service: want.service } });
      else if (!sameServiceSettings(have.service, want.service)) plan.creations.push({ kind: 'ipvs', operation: { op: 'editService', service: want.service } });
      diffRealServers(key, want, have, context, plan);
    } else if (have && !excluded(have.service, context.excludeCidrs) && mayDelete(have.service, ownership)) {
      serviceDeletions.push({ kind: 'ipvs', operation: { op: 'deleteService', key: have.service.key } });
    }
  }

  const entryAdds: KernelOperation[] = [];
  const entryDeletes: KernelOperation[] = [];
  const sets = scope.all ? desired.ipsets.keys() : union(scope.ipsetEntries.keys(), replaced);
  for (const name of sets) {
    const want = desired.ipsets.get(name);
    if (!want) continue;
    // A replaced set starts empty: every entry it should hold is added.
    const have = replaced.has(name) ? undefined : observed.ipsets.get(name);
    const scoped = scope.all || replaced.has(name) ? undefined : scope.ipsetEntries.get(name);
    const keys = scoped ?? union(want.entries.keys(), have?.entries.keys() ?? []);
    for (const entryKey of keys) {
      const wanted = want.entries.get(entryKey);
      const present = have?.entries.get(entryKey);
      if (wanted && !present) entryAdds.push({ kind: 'addIpsetEntry', set: name, entry: wanted });
      else if (!wanted && present) entryDeletes.push({ kind: 'deleteIpsetEntry', set: name, entry: present });
    }
  }
  return {
    operations: [...setup, ...plan.creations, ...entryAdds, ...entryDeletes, ...plan.deletions, ...serviceDeletions, ...unbinds],
    draining: plan.draining,
  };
}

/**
 * Whether a set that exists can hold what kipvs puts in it: the same type and family (or port
 * range), and comments when kipvs writes them. Sizes may differ: kube-proxy's do not matter.
 */
function usableSet(have: IpsetSetSpec, want: IpsetSetSpec): boolean {
  if (want.comment === true && have.comment !== true) return false;
  if (have.type === 'bitmap:port' || want.type === 'bitmap:port') {
    return have.type === 'bitmap:port' && want.type === 'bitmap:port' && have.range.from <= want.range.from && have.range.to >= want.range.to;
  }
  return have.type === want.type && have.family === want.family;
}

const describeSpec = (spec: IpsetSetSpec): string =>
  spec.type === 'bitmap:port' ? `${spec.type} range ${spec.range.from}-${spec.range.to}` : `${spec.type} family ${spec.family}`;

function union<T>(a: Iterable<T>, b: Iterable<T>): Set<T> {
  const all = new Set(a);
  for (const item of b) all.add(item);
  return all;
}
