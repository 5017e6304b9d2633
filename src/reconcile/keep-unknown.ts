// A plan for an incomplete cluster view (a source file broken since the agent started): what it
// removes — virtual servers, ipset entries, addresses that no known Service wants — may belong
// to a Service in the unreadable input. Those removals wait until the input reads; everything
// else (new Services, and the real servers of known ones) goes ahead.
import type { KernelOperation, Plan } from './state.js';

const removesUnknown = (operation: KernelOperation): boolean =>
  operation.kind === 'unbindAddress' || operation.kind === 'deleteIpsetEntry' || (operation.kind === 'ipvs' && operation.operation.op === 'deleteService');

export function withoutRemovalsOfUnknown(plan: Plan): Plan {
  const operations = plan.operations.filter((operation) => !removesUnknown(operation));
  return operations.length === plan.operations.length ? plan : { operations, draining: plan.draining };
}
