// One sync, top to bottom: translate the cluster into the desired state, read what the kernel
// has, diff, apply. Each step is its own module; this file only wires them and keeps the state
// that lives between syncs (what is draining, what kipvs owns).
import type { Logger } from 'pino';
import { translate } from '../translate/translate.js';
import { diff } from '../reconcile/diff.js';
import { describeKernelOperation, type Kernel, type OperationFailure } from '../kernel/netlink-kernel.js';
import type { ClusterSnapshot } from '../model/kubernetes.js';
import type { NodeFacts, ProxySettings } from '../model/settings.js';
import type { DesiredState } from '../model/desired.js';
import type { Plan } from '../reconcile/state.js';
import type { OwnershipStore } from './ownership.js';

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

  constructor(private readonly options: ProxierOptions) {
    this.clock = options.clock ?? Date.now;
  }

  setSnapshot(snapshot: ClusterSnapshot): void {
    this.snapshot = snapshot;
  }

  /** Computes the plan without changing anything (--dry-run). */
  async plan(): Promise<{ plan: Plan; desired: DesiredState }> {
    const { kernel, node, settings, ownership } = this.options;
    const desired = translate(this.snapshot, node, settings);
    const observed = await kernel.observe();
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

  async sync(): Promise<SyncResult> {
    const started = performance.now();
    const { kernel, log, settings, ownership } = this.options;
    const { plan, desired } = await this.plan();
    this.reportProblems(desired);
    const { failures } = await kernel.apply(plan);
    ownership.save({ owned: new Set(desired.virtualServers.keys()), draining: plan.draining });
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
