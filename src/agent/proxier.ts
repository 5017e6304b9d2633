// One sync, top to bottom: translate the cluster into the desired state, read what the kernel
// has, diff, apply. Each step is its own module; this file only wires them and keeps the state
// that lives between syncs (what is draining, what kipvs owns).
import type { Logger } from 'pino';
import { IncrementalTranslator } from '../translate/incremental.js';
import { diff } from '../reconcile/diff.js';
import { describeKernelOperation, type Kernel, type OperationFailure } from '../kernel/netlink-kernel.js';
import type { ClusterSnapshot } from '../model/kubernetes.js';
import type { NodeFacts, ProxySettings } from '../model/settings.js';
import { virtualServerKey, type DesiredState } from '../model/desired.js';
import type { Plan } from '../reconcile/state.js';
import type { OwnershipStore } from './ownership.js';
import { FakeKernel } from '../kernel/fake-kernel.js';

export interface SyncResult {
  readonly plan: Plan;
  readonly failures: readonly OperationFailure[];
  readonly desired: DesiredState;
  readonly durationMs: number;
}

export interface ProxierOptions {
  readonly kernel: Kernel;
  readonly node: NodeFacts;
  readonly settings: ProxySettings;
  readonly log: Logger;
  readonly ownership: OwnershipStore;
  readonly clock?: () => number;
}

export class Proxier {
  private snapshot: ClusterSnapshot = { services: [], endpointSlices: [] };
  private readonly clock: () => number;
  private reportedProblems = new Set<string>();
  /**
   * What the kernel holds, as of the last full read plus every plan applied since without a
   * failure. Syncs between full reads diff against it instead of dumping 10,000 virtual servers
   * again; a failure, or a full sync (every --ipvs-sync-period), reads the kernel afresh.
   */
  private cache: FakeKernel | undefined;
  private readonly translator = new IncrementalTranslator();

  constructor(private readonly options: ProxierOptions) {
    this.clock = options.clock ?? Date.now;
  }

  setSnapshot(snapshot: ClusterSnapshot): void {
    this.snapshot = snapshot;
  }

  /** Computes the plan without changing anything (--dry-run); `full` reads the kernel afresh. */
  async plan({ full = true }: { full?: boolean } = {}): Promise<{ plan: Plan; desired: DesiredState }> {
    const { kernel, node, settings, ownership } = this.options;
    const desired = this.translator.translate(this.snapshot, node, settings);
    if (full || !this.cache) this.cache = FakeKernel.from(await kernel.observe(), settings.dummyInterface);
    const observed = this.cache.view();
    const plan = diff(desired, observed, {
      dummyInterface: settings.dummyInterface,
      excludeCidrs: settings.excludeCidrs,
      gracefulTerminationMs: settings.gracefulTerminationSeconds * 1000,
      now: this.clock(),
      draining: ownership.load().draining,
      previouslyOwned: ownership.load().owned,
    });
    return { plan, desired };
  }

  /** One sync; `full: false` trusts the cache of the kernel's state (after a change event). */
  async sync({ full = true }: { full?: boolean } = {}): Promise<SyncResult> {
    const started = performance.now();
    const { kernel, log, settings, ownership } = this.options;
    const { plan, desired } = await this.plan({ full });
    this.reportProblems(desired);
    // Recorded before the kernel is touched: an apply that dies half-way (SIGKILL, OOM) must not
    // leave a NodePort virtual server that no later run recognises as its own.
    const previous = ownership.load();
    const newlyOwned = plan.operations.flatMap((o) =>
      o.kind === 'ipvs' && o.operation.op === 'addService' && !previous.owned.has(virtualServerKey(o.operation.service.key)) ? [virtualServerKey(o.operation.service.key)] : [],
    );
    if (newlyOwned.length > 0) ownership.save({ owned: new Set([...previous.owned, ...newlyOwned]), draining: previous.draining });
    let failures: SyncResult['failures'];
    try {
      ({ failures } = await kernel.apply(plan));
    } catch (error) {
      this.cache = undefined; // some of the plan may have landed: read the kernel next time
      throw error;
    }
    await this.updateCache(plan, failures.length);
    const stillThere = failures.flatMap((f) => (f.operation.kind === 'ipvs' && f.operation.operation.op === 'deleteService' ? [virtualServerKey(f.operation.operation.key)] : []));
    const owned = new Set([...desired.virtualServers.keys(), ...stillThere]);
    if (!sameKeys(owned, ownership.load().owned) || !sameKeys(new Set(plan.draining.keys()), new Set(ownership.load().draining.keys()))) {
      ownership.save({ owned, draining: plan.draining });
    }
    for (const failure of failures) {
      log.error({ operation: describeKernelOperation(failure.operation, settings.dummyInterface), err: failure.error.message }, 'kernel refused an operation');
    }
    const durationMs = performance.now() - started;
    if (plan.operations.length > 0 || failures.length > 0) {
      log.info(
        { operations: plan.operations.length, failed: failures.length, draining: plan.draining.size, virtualServers: desired.virtualServers.size, ms: Math.round(durationMs) },
        'synced',
      );
    }
    return { plan, failures, desired, durationMs };
  }

  private async updateCache(plan: Plan, failed: number): Promise<void> {
    if (!this.cache) return;
    const mirrored = failed === 0 ? await this.cache.apply(plan) : undefined;
    // The cache cannot tell which half of a failed plan landed, nor disagree with the kernel.
    if (!mirrored || mirrored.failures.length > 0) this.cache = undefined;
  }

  /** Logs each skipped object once, not at every sync. */
  private reportProblems(desired: DesiredState): void {
    const current = new Set<string>();
    for (const problem of desired.problems) {
      const text = `${problem.object}: ${problem.reason}`;
      current.add(text);
      if (!this.reportedProblems.has(text)) this.options.log.warn({ object: problem.object, reason: problem.reason }, 'skipped');
    }
    this.reportedProblems = current;
  }
}

const sameKeys = (a: ReadonlySet<string>, b: ReadonlySet<string>): boolean => a.size === b.size && [...a].every((key) => b.has(key));
