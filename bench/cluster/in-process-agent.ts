// The agent run inside the bench process: the store, the proxier and the netlink kernel, on a
// namespace of its own; and how a full sync of it is judged.
import { pino } from 'pino';
import { MemoryOwnershipStore } from '../../src/agent/ownership.js';
import { Proxier } from '../../src/agent/proxier.js';
import { allIpsetNames } from '../../src/cli/agent.js';
import { describeKernelOperation, NetlinkKernel } from '../../src/kernel/netlink-kernel.js';
import { realServerKey, virtualServerKey } from '../../src/model/desired.js';
import { drainKey, type KernelOperation } from '../../src/reconcile/state.js';
import { ClusterStore } from '../../src/sources/cluster-store.js';
import { NODE } from '../workload.js';
import { retireNamespace } from './namespaces.js';
import { DUMMY, SETTINGS } from './shared.js';

export interface InProcessAgent {
  readonly netns: string;
  readonly store: ClusterStore;
  readonly proxier: Proxier;
  readonly kernel: NetlinkKernel;
  readonly ownership: MemoryOwnershipStore;
}

export async function openAgent(netns: string): Promise<InProcessAgent> {
  const kernel = await NetlinkKernel.open({ netns, dummyInterface: DUMMY, ipsetNames: allIpsetNames() });
  const store = new ClusterStore();
  const ownership = new MemoryOwnershipStore();
  const proxier = new Proxier({ kernel, node: NODE, settings: SETTINGS, log: pino({ level: 'warn' }), ownership, cluster: store });
  return { netns, store, proxier, kernel, ownership };
}

export async function closeAgent(agent: InProcessAgent): Promise<void> {
  agent.kernel.close();
  await retireNamespace(agent.netns);
}

/**
 * A full sync, its plan split into the deletions of real servers that were draining (removed
 * endpoints: at weight 0 and without connections, their draining is over) and everything else
 * (which should be nothing).
 */
export async function fullSyncClassified({ proxier, ownership }: InProcessAgent): Promise<{ drainedDeletions: number; others: KernelOperation[] }> {
  const draining = ownership.load().draining;
  const { plan } = await proxier.sync({ full: true });
  const others = plan.operations.filter(
    (o) =>
      !(
        o.kind === 'ipvs' &&
        o.operation.op === 'deleteDestination' &&
        draining.has(drainKey(virtualServerKey(o.operation.service), realServerKey(o.operation.destination)))
      ),
  );
  return { drainedDeletions: plan.operations.length - others.length, others };
}

/** The first three operations, for a problem line. */
export const describeOperations = (operations: readonly KernelOperation[]): string =>
  operations
    .slice(0, 3)
    .map((o) => describeKernelOperation(o, DUMMY))
    .join('; ');
