// One sync, top to bottom: translate the cluster into the desired state, read what the kernel
// has, diff, apply. Each step is its own module; this file only wires them and keeps the state
// that lives between syncs (what is draining, what kipvs owns).
import type { Logger } from 'pino';
import { IncrementalTranslator, type ServiceObjects } from '../translate/incremental.js';
import { diff } from '../reconcile/diff.js';
import { withoutRemovalsOfUnknown } from '../reconcile/keep-unknown.js';
import { findDrift, TouchedKeys, withoutTouched, type Drift } from '../reconcile/drift.js';
import { addKeyOf } from '../util/keys-by-name.js';
import { describeKernelOperation, type Kernel, type OperationFailure } from '../kernel/netlink-kernel.js';
import type { NodeFacts, ProxySettings } from '../model/settings.js';
import { EVERYTHING, virtualServerKey, type DesiredState, type DiffScope } from '../model/desired.js';
import type { ObservedState, Plan } from '../reconcile/state.js';
import type { IpvsServiceKey } from '../netlink/ipvs/types.js';
import type { OwnershipStore } from './ownership.js';
import { KernelMirror } from '../kernel/mirror.js';
import type { ClusterChanges } from '../sources/cluster-store.js';

/**
 * One full sync in this many diffs everything, as the first sync does, and reads again, in line,
 * the virtual servers that syncs touched during its read; the others diff only what drifted or
 * changed. Every full sync reads beside the other syncs (proc-assisted-read.ts).
 */
export const WHOLE_READ_EVERY = 32;
export interface SyncResult {
  readonly plan: Plan;
  readonly failures: readonly OperationFailure[];
  /** Live: the next sync changes it in place. */
  readonly desired: DesiredState;
  readonly durationMs: number;
  /** The kernel was read afresh and every object compared. */
  readonly full: boolean;
  /** What this sync took in; `services` are those compared (every one on a full sync). */
  readonly changes: ClusterChanges;
}

/** The cluster as the proxier reads it: the ClusterStore. */
export interface ClusterObjects extends ServiceObjects {
  /** What changed since the last call; the proxier calls it once per sync. */
  takeChanges(): ClusterChanges;
  /** False: the source could not read all its input, so nothing it might define is removed. */
  readonly complete?: boolean;
}

interface Planned {
  readonly plan: Plan;
  readonly desired: DesiredState;
  readonly scope: DiffScope;
  readonly changes: ClusterChanges;
  /** The kernel was read afresh and compared with the cache (or, without one, diffed whole). */
  readonly full: boolean;
}

/** A full read of the kernel, compared with the cache it was read against; syncs went on meanwhile. */
interface Reading {
  readonly cache: KernelMirror;
  /** Only to compare and to copy from: it may share the cache's own objects. */
  readonly kernel: ObservedState;
  readonly drift: Drift;
  /** What syncs touched since the read began; still recording until the full sync takes the reading. */
  readonly touched: TouchedKeys;
}

type ReadOutcome = { readonly reading: Reading } | { readonly error: unknown } | undefined;

export interface ProxierOptions {
  readonly kernel: Kernel;
  readonly node: NodeFacts;
  /** The node's facts as they are now (labels, addresses change while the agent runs); `node` when absent. */
  readonly currentNode?: () => NodeFacts;
  readonly settings: ProxySettings;
  readonly log: Logger;
  readonly ownership: OwnershipStore;
  readonly cluster: ClusterObjects;
  readonly clock?: () => number;
}

export class Proxier {
  private readonly clock: () => number;
  private reportedProblems = new Set<string>();
  /**
   * What the kernel holds, as of the last full read plus every plan applied since without a
   * failure. Syncs between full reads diff against it instead of dumping 10,000 virtual servers
   * again; a failure, or a full sync (every --ipvs-sync-period), reads the kernel afresh.
   */
  private cache: KernelMirror | undefined;
  private readonly translator = new IncrementalTranslator();
  private nodeAddresses: { readonly of: NodeFacts; readonly set: ReadonlySet<string> };
  /** The full read under way or done, not yet taken by a full sync. */
  private reading: Promise<ReadOutcome> | undefined;
  /** Recording what plans touch, one per read in flight. */
  private readonly recorders = new Set<TouchedKeys>();
  private readRound = 0;
  /**
   * A plan left removals out (an incomplete source): the cache then holds what the desired state
   * does not, outside any change's scope, and the next full sync diffs everything.
   */
  private wholeDiffDue = false;
  /** Full syncs so far, to make every WHOLE_READ_EVERY-th one a whole read. */
  private fullSyncs = 0;
  /** Syncs run one at a time (the read of a full one does not count: it runs beside them). */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: ProxierOptions) {
    this.clock = options.clock ?? Date.now;
    this.nodeAddresses = { of: options.node, set: new Set(options.node.addresses) };
  }

  /** Computes the plan without changing anything (--dry-run); `full` reads the kernel afresh. */
  async plan({ full = true }: { full?: boolean } = {}): Promise<{ plan: Plan; desired: DesiredState }> {
    const { plan, desired } = await this.planSync(full);
    return { plan, desired };
  }

  private async planSync(full: boolean): Promise<Planned> {
    const { kernel, settings, cluster } = this.options;
    const outcome = full ? await this.takeReading() : undefined;
    if (outcome && 'error' in outcome) throw outcome.error;
    // A new NodeFacts object makes the translator translate every Service again.
    const node = this.options.currentNode?.() ?? this.options.node;
    if (this.nodeAddresses.of !== node) this.nodeAddresses = { of: node, set: new Set(node.addresses) };
    const changes = cluster.takeChanges();
    let scope = this.translator.update(cluster, changes.services, node, settings);
    const reading = outcome?.reading;
    // Every WHOLE_READ_EVERY-th full sync diffs everything, as a restart would, so that what an
    // audited sync trusts to the cache (a virtual server some sync touched during each of its
    // reads) and the ownership decisions that depend on other objects (an address bound since)
    // are looked at again. Its read ran beside the other syncs as every full read does; only the
    // virtual servers they touched meanwhile (a few, at the rate of changes) are read in line.
    const wholeDiff = full && ++this.fullSyncs % WHOLE_READ_EVERY === 0;
    if (reading && reading.cache === this.cache) {
      return wholeDiff ? this.planAudited(reading, EVERYTHING, changes, await this.readTouchedAgain(reading)) : this.planAudited(reading, scope, changes);
    }
    // Without a cache (first sync, or after a failure) nobody knows what the kernel has.
    const fresh = full || !this.cache;
    if (fresh) {
      this.cache = undefined;
      scope = EVERYTHING;
    }
    const cache = (this.cache ??= KernelMirror.adopt(await kernel.observe(), settings.dummyInterface));
    return this.planScoped(cache, scope, changes, { fresh, full: fresh });
  }

  /**
   * A full sync against a full read: the cache takes what the read found drifted (and the fresh
   * counts of the virtual servers the diff looks at), and the diff looks at what drifted, what
   * changed, and what drains. Everywhere else the cache already held the desired state.
   */
  private planAudited(reading: Reading, scope: DiffScope, changes: ClusterChanges, touchedAsNow?: ObservedState): Planned {
    const { cache, kernel } = reading;
    // Read again since: no longer touched, their counts fresh.
    const touched = touchedAsNow ? new TouchedKeys() : reading.touched;
    const drift = withoutTouched(reading.drift, reading.touched);
    const untouched = (key: string): boolean => !touched.virtualServers.has(key);
    const draining = [...this.options.ownership.load().draining.values()].map((entry) => entry.virtualServer);
    if (this.wholeDiffDue) scope = EVERYTHING;
    const counted = scope.all ? [...kernel.virtualServers.keys()] : [...scope.virtualServers, ...draining];
    const entries = new Map<string, Set<string>>();
    for (const name of drift.ipsets)
      entries.set(name, new Set([...(cache.view().ipsets.get(name)?.entries.keys() ?? []), ...(kernel.ipsets.get(name)?.entries.keys() ?? [])]));
    cache.patch(kernel, { ...drift, virtualServers: new Set([...drift.virtualServers, ...counted.filter(untouched)]) });
    if (touchedAsNow)
      cache.patch(touchedAsNow, { dummyInterface: false, virtualServers: reading.touched.virtualServers, addresses: [], ipsets: [], ipsetEntries: new Map() });
    if (scope.all) return this.planScoped(cache, EVERYTHING, changes, { fresh: true, full: true, stale: touched.virtualServers });
    for (const [name, keys] of [...scope.ipsetEntries, ...drift.ipsetEntries]) for (const key of keys) addKeyOf(entries, name, key);
    const audited: DiffScope = {
      all: false,
      virtualServers: new Set([...scope.virtualServers, ...drift.virtualServers, ...draining.filter(untouched)]),
      addresses: new Set([...scope.addresses, ...drift.addresses]),
      ipsetEntries: entries,
    };
    return this.planScoped(cache, audited, changes, { fresh: true, full: true, stale: touched.virtualServers });
  }

  private planScoped(
    cache: KernelMirror,
    scope: DiffScope,
    changes: ClusterChanges,
    read: { readonly fresh: boolean; readonly full: boolean; readonly stale?: ReadonlySet<string> },
  ): Planned {
    const { settings, ownership, cluster } = this.options;
    const desired = this.translator.desired;
    const diffed = diff(
      desired,
      cache.view(),
      {
        dummyInterface: settings.dummyInterface,
        excludeCidrs: settings.excludeCidrs,
        gracefulTerminationMs: settings.gracefulTerminationSeconds * 1000,
        now: this.clock(),
        draining: ownership.load().draining,
        previouslyOwned: ownership.load().owned,
        nodeAddresses: this.nodeAddresses.set,
        freshCounters: read.fresh,
        ...(read.stale && read.stale.size > 0 ? { staleCounters: read.stale } : {}),
      },
      scope,
    );
    const plan = cluster.complete === false ? withoutRemovalsOfUnknown(diffed) : diffed;
    if (plan !== diffed) this.wholeDiffDue = true;
    else if (scope.all) this.wholeDiffDue = false;
    // Every Service compared: a full sync, or one that translated every Service again (a new node).
    const whole = read.full || scope.all;
    return { plan, desired, scope, changes: whole ? { ...changes, services: new Set(cluster.serviceIds()) } : changes, full: whole };
  }

  /**
   * The slow half of a full sync: reads the kernel (through the cheap views, against the cache)
   * and compares. Other syncs run meanwhile; the full sync that follows takes the result. Never
   * rejects: a failed read fails that sync. Without a cache there is nothing to read against: the
   * full sync then reads everything itself.
   */
  prepareFullSync(): Promise<void> {
    this.reading ??= this.readAgainstCache();
    return this.reading.then(() => undefined);
  }

  private async readAgainstCache(): Promise<ReadOutcome> {
    const cache = this.cache;
    if (!cache) return undefined;
    const touched = new TouchedKeys();
    this.recorders.add(touched);
    try {
      const kernel = await this.options.kernel.observe({ expected: cache.view(), round: this.readRound++ });
      if (this.cache !== cache) {
        this.recorders.delete(touched);
        return undefined;
      }
      return { reading: { cache, kernel, drift: await findDrift(kernel, cache.view(), touched), touched } };
    } catch (error) {
      this.recorders.delete(touched);
      return { error };
    }
  }

  /**
   * The virtual servers syncs touched while `reading` was read, as the kernel holds them now (in
   * line: no sync runs meanwhile). Those both the cache and the desired state lack are not looked
   * for; the cache holds them absent.
   */
  private readTouchedAgain(reading: Reading): Promise<ObservedState> {
    const held = reading.cache.view().virtualServers;
    const desired = this.translator.desired.virtualServers;
    const keys: IpvsServiceKey[] = [];
    for (const key of reading.touched.virtualServers) {
      const service = held.get(key)?.service ?? desired.get(key)?.service;
      if (service) keys.push(service.key);
    }
    return this.options.kernel
      .observeVirtualServers(keys)
      .then((virtualServers) => ({ dummyInterfaceExists: true, virtualServers, boundAddresses: new Set<string>(), ipsets: new Map() }));
  }

  private async takeReading(): Promise<ReadOutcome> {
    const pending = this.reading;
    this.reading = undefined;
    const outcome = await pending;
    if (outcome && 'reading' in outcome) this.recorders.delete(outcome.reading.touched);
    return outcome;
  }

  /** One sync; `full: false` trusts the cache of the kernel's state and compares only what changed. */
  async sync({ full = true }: { full?: boolean } = {}): Promise<SyncResult> {
    if (full) await this.prepareFullSync();
    return this.oneAtATime(() => this.syncGuarded(full));
  }

  private oneAtATime<T>(run: () => Promise<T>): Promise<T> {
    const result = this.queue.then(run);
    // Settled to nothing: a queue that resolved to the last result would keep its plan (169,018
    // operations after a first sync at 10,000 Services) until the next sync.
    this.queue = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  private async syncGuarded(full: boolean): Promise<SyncResult> {
    try {
      return await this.syncOnce(full);
    } catch (error) {
      // The changes this sync took are in the translator but maybe not in the kernel, and some of
      // its plan may have landed: the next sync reads the kernel and compares everything. A throw
      // inside translation may have left it half-updated: it starts afresh too.
      this.cache = undefined;
      this.translator.reset();
      throw error;
    }
  }

  private async syncOnce(full: boolean): Promise<SyncResult> {
    const started = performance.now();
    const { kernel, log, settings, ownership } = this.options;
    const { plan, desired, scope, changes, full: compared } = await this.planSync(full);
    this.reportProblems(desired);
    // Recorded before the kernel is touched: an apply that dies half-way (SIGKILL, OOM) must not
    // leave a NodePort virtual server that no later run recognises as its own.
    const previous = ownership.load();
    const added = plan.operations.flatMap((o) => (o.kind === 'ipvs' && o.operation.op === 'addService' ? [virtualServerKey(o.operation.service.key)] : []));
    const newlyOwned = added.filter((key) => !previous.owned.has(key));
    if (newlyOwned.length > 0) ownership.save({ owned: new Set([...previous.owned, ...newlyOwned]), draining: previous.draining });
    const { failures } = await kernel.apply(plan);
    this.updateCache(plan, failures.length, desired, scope);
    this.recordOwnership(plan, failures, desired, scope);
    for (const failure of failures) {
      log.error({ operation: describeKernelOperation(failure.operation, settings.dummyInterface), err: failure.error.message }, 'kernel refused an operation');
    }
    // Someone's set under kube-proxy's name was destroyed or swapped out, with its entries: said
    // once, when it happens (a refused replacement is among the failures above).
    const refused = new Set(failures.map((failure) => failure.operation));
    for (const operation of plan.operations) {
      if (operation.kind === 'createIpset' && operation.replacing !== undefined && !refused.has(operation)) {
        log.warn({ operation: describeKernelOperation(operation, settings.dummyInterface) }, 'replaced an ipset kipvs could not use');
      }
    }
    const durationMs = performance.now() - started;
    if (plan.operations.length > 0 || failures.length > 0) {
      log.info(
        {
          full: compared,
          operations: plan.operations.length,
          failed: failures.length,
          draining: plan.draining.size,
          virtualServers: desired.virtualServers.size,
          ms: Math.round(durationMs),
        },
        'synced',
      );
    }
    return { plan, failures, desired, durationMs, full: compared, changes };
  }

  /**
   * The virtual servers kipvs owns after the plan: after a full sync exactly those desired (and
   * those it failed to delete); after a partial one, the previous set with this plan's additions
   * and deletions, so that an endpoint change does not walk 10,000 keys.
   */
  private recordOwnership(plan: Plan, failures: readonly OperationFailure[], desired: DesiredState, scope: DiffScope): void {
    const { ownership } = this.options;
    const before = ownership.load();
    const stillThere = new Set(
      failures.flatMap((f) =>
        f.operation.kind === 'ipvs' && f.operation.operation.op === 'deleteService' ? [virtualServerKey(f.operation.operation.key)] : [],
      ),
    );
    let owned: ReadonlySet<string> = before.owned;
    // While removals wait (an incomplete source), what is kept stays owned: counted as a partial plan.
    if (scope.all && this.options.cluster.complete !== false) {
      const all = new Set([...desired.virtualServers.keys(), ...stillThere]);
      if (!sameKeys(all, before.owned)) owned = all;
    } else {
      const added: string[] = [];
      const deleted: string[] = [];
      for (const operation of plan.operations) {
        if (operation.kind !== 'ipvs') continue;
        const op = operation.operation;
        if (op.op === 'addService' && !before.owned.has(virtualServerKey(op.service.key))) added.push(virtualServerKey(op.service.key));
        if (op.op === 'deleteService' && !stillThere.has(virtualServerKey(op.key))) deleted.push(virtualServerKey(op.key));
      }
      if (added.length > 0 || deleted.length > 0) {
        const next = new Set(before.owned);
        for (const key of added) next.add(key);
        for (const key of deleted) next.delete(key);
        owned = next;
      }
    }
    const drainingChanged = !sameKeys(new Set(plan.draining.keys()), new Set(before.draining.keys()));
    if (owned !== before.owned || drainingChanged) ownership.save({ owned, draining: plan.draining });
  }

  private updateCache(plan: Plan, failed: number, desired: DesiredState, scope: DiffScope): void {
    for (const touched of this.recorders) touched.record(plan);
    if (!this.cache) return;
    const refused = failed === 0 ? this.cache.apply(plan) : undefined;
    // The cache cannot tell which half of a failed plan landed, nor disagree with the kernel.
    if (!refused || refused.length > 0) {
      this.cache = undefined;
      return;
    }
    // What the diff compared now matches the desired state: the cache holds its maps rather than copies.
    this.cache.share(desired.virtualServers, scope.all ? desired.virtualServers.keys() : scope.virtualServers);
  }

  /** Logs each problem once, not at every sync; its reason says what was done (ignored, default used, ...). */
  private reportProblems(desired: DesiredState): void {
    const current = new Set<string>();
    for (const problem of desired.problems) {
      const text = `${problem.object}: ${problem.reason}`;
      current.add(text);
      if (!this.reportedProblems.has(text)) this.options.log.warn({ object: problem.object, reason: problem.reason }, 'translation problem');
    }
    this.reportedProblems = current;
  }
}

const sameKeys = (a: ReadonlySet<string>, b: ReadonlySet<string>): boolean => a.size === b.size && [...a].every((key) => b.has(key));
