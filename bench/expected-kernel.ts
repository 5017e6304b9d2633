// A kernel for in-process benchmarks (bench/retained-heap.ts, bench/churn-allocation.ts): it holds
// nothing of its own, so the heap measured is the agent's alone.
import type { ApplyResult, Kernel } from '../src/kernel/netlink-kernel.js';
import type { ObserveHint } from '../src/kernel/proc-assisted-read.js';
import type { FreshObservedState, ObservedState, ObservedVirtualServer, Plan } from '../src/reconcile/state.js';

/** Empty at the first read (every plan lands); afterwards it holds what the caller expects. */
export class ExpectedKernel implements Kernel {
  observe(): Promise<FreshObservedState>;
  observe(hint: ObserveHint): Promise<ObservedState>;
  observe(hint?: ObserveHint): Promise<FreshObservedState | ObservedState> {
    if (hint) return Promise.resolve(hint.expected);
    return Promise.resolve({ dummyInterfaceExists: false, virtualServers: new Map(), boundAddresses: new Set(), ipsets: new Map() });
  }
  observeVirtualServers(): Promise<Map<string, ObservedVirtualServer>> {
    return Promise.resolve(new Map<string, ObservedVirtualServer>());
  }
  apply(plan: Plan): Promise<ApplyResult> {
    return Promise.resolve({ applied: plan.operations.length, failures: [] });
  }
  close(): void {}
}
