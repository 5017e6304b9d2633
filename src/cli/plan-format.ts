// A plan as --dry-run prints it: one operation a line, in the order they would run.
import { describeKernelOperation } from '../kernel/netlink-kernel.js';
import type { Plan } from '../reconcile/state.js';

export function formatPlan(plan: Plan, dummyInterface: string): string {
  const lines = plan.operations.map((operation) => describeKernelOperation(operation, dummyInterface));
  for (const drain of plan.draining.values()) lines.push(`# draining ${drain.realServer} of ${drain.virtualServer} (weight 0)`);
  if (lines.length === 0) lines.push('# nothing to do: the kernel matches');
  return `${lines.join('\n')}\n`;
}
