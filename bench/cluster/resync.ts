// 3. No-op resync: a full sync (the whole kernel read and diffed) when nothing changed.
import { fullSyncClassified, describeOperations, type InProcessAgent } from './in-process-agent.js';
import { profiled } from './profile.js';
import type { Results } from './results.js';
import { log } from './shared.js';

/** Full resyncs of a kernel that already holds the desired state: each should plan nothing. */
export async function noopResyncs(results: Results, size: number, agent: InProcessAgent): Promise<void> {
  const { proxier } = agent;
  // The first full sync reads the kernel's connection counters and deletes the real servers the
  // change rounds left draining (none has a connection): that is work, not a no-op.
  const settle = await fullSyncClassified(agent);
  results.drainedBeforeNoop = settle.drainedDeletions;
  if (settle.others.length > 0)
    results.problems.push(
      `N=${size}: the full sync after the endpoint changes had ${settle.others.length} operations besides drained real servers: ${describeOperations(settle.others)}`,
    );
  const times: number[] = [];
  let operations = 0;
  await profiled(`noop-${size}`, async () => {
    for (let round = 0; round < 3; round++) {
      const started = performance.now();
      const result = await proxier.sync({ full: true });
      times.push(performance.now() - started);
      operations += result.plan.operations.length;
      if (result.plan.operations.length > 0) results.problems.push(`N=${size} no-op resync: ${describeOperations(result.plan.operations)}`);
    }
  });
  results.noopMs = times;
  results.noopOperations = operations;
  log(`N=${size} no-op full resync: ${times.map((ms) => ms.toFixed(0)).join(', ')} ms, ${operations} operations`);
}
