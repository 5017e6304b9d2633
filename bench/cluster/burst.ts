// 4. Burst: many changes at once, coalesced by the rate-limited sync runner as in the daemon.
import { SyncRunner } from '../../src/agent/runner.js';
import { sum } from '../stats.js';
import { changedSlice, remoteEndpointOf, spreadServiceIndex, virtualServersOf } from '../workload.js';
import { describeOperations, fullSyncClassified, type InProcessAgent } from './in-process-agent.js';
import { profiled } from './profile.js';
import type { Results } from './results.js';
import { log, sleep } from './shared.js';

export const BURST_CHANGES = 1_000;
const BURST_WINDOW_MS = 100;
export const MIN_SYNC_INTERVAL_MS = 1_000;

interface SyncRecord {
  readonly started: number;
  readonly ended: number;
  readonly operations: number;
}

/**
 * BURST_CHANGES endpoint changes within BURST_WINDOW_MS through the agent's SyncRunner (rate
 * limited to MIN_SYNC_INTERVAL_MS): how many syncs it takes and when the kernel has them all.
 */
export async function burst(results: Results, size: number, agent: InProcessAgent): Promise<void> {
  const { store, proxier } = agent;
  const syncs: SyncRecord[] = [];
  const errors: unknown[] = [];
  const runner = new SyncRunner({
    minIntervalMs: MIN_SYNC_INTERVAL_MS,
    maxIntervalMs: 30_000,
    sync: async () => {
      const started = performance.now();
      const result = await proxier.sync({ full: false });
      syncs.push({ started, ended: performance.now(), operations: result.plan.operations.length });
    },
    onError: (error) => errors.push(error),
  });
  store.onChange(() => runner.request());
  // Half the changes add a pod on another node, half take one away: one real server each.
  const changes = Array.from({ length: BURST_CHANGES }, (_, k) => {
    const index = spreadServiceIndex(k, size, 3);
    return k % 2 === 0 ? changedSlice(index, { extra: 100_000 + k }, 1_000 + k) : changedSlice(index, { removed: remoteEndpointOf(index) }, 1_000 + k);
  });
  const expectedOperations = sum(Array.from({ length: BURST_CHANGES }, (_, k) => virtualServersOf(spreadServiceIndex(k, size, 3))));
  runner.start();
  while (syncs.length === 0 && errors.length === 0) await sleep(10);
  // The agent has been idle for longer than the minimum interval when the burst begins.
  await sleep(MIN_SYNC_INTERVAL_MS + 100);
  const before = syncs.length;
  const { feedStarted, lastFedAt, convergedAt } = await profiled(`burst-${size}`, async () => {
    const feedStarted = performance.now();
    const perTick = BURST_CHANGES / BURST_WINDOW_MS;
    for (let tick = 0; tick < BURST_WINDOW_MS; tick++) {
      for (const change of changes.slice(tick * perTick, (tick + 1) * perTick)) store.upsertEndpointSlice(change);
      await sleep(1);
    }
    const lastFedAt = performance.now();
    const deadline = performance.now() + 120_000;
    let covering: SyncRecord | undefined;
    while (!(covering = syncs.find((sync) => sync.started > lastFedAt)) && errors.length === 0 && performance.now() < deadline) await sleep(5);
    return { feedStarted, lastFedAt, convergedAt: covering?.ended };
  });
  await runner.stop();
  if (errors.length > 0 || convergedAt === undefined) {
    results.problems.push(`burst: ${errors.length > 0 ? `sync failed: ${String(errors[0])}` : 'no sync covered the last change within 120 s'}`);
    return;
  }
  const burstSyncs = syncs.slice(before).filter((sync) => sync.started <= convergedAt);
  // Converged: a full sync (reading the whole kernel) has nothing left to do but delete the real
  // servers the burst took away, which have drained (no connections).
  const check = await fullSyncClassified(agent);
  results.burst = {
    syncs: burstSyncs.length,
    convergedMs: convergedAt - feedStarted,
    feedMs: lastFedAt - feedStarted,
    operations: sum(burstSyncs.map((sync) => sync.operations)),
    expectedOperations,
    drainedDeletions: check.drainedDeletions,
    remainingOperations: check.others.length,
  };
  if (results.burst.operations !== expectedOperations)
    results.problems.push(`burst: ${BURST_CHANGES} changes made ${results.burst.operations} kernel operations, not ${expectedOperations}`);
  if (check.others.length > 0)
    results.problems.push(`burst: a full sync afterwards still had ${check.others.length} operations to do: ${describeOperations(check.others)}`);
  log(`N=${size} burst: ${JSON.stringify(results.burst)}`);
}
