// 3b. Endpoint changes while full resyncs run: full syncs back to back, and beside them one
// endpoint change after another, each timed from the store event to the end of its kernel
// operations, over a window that holds at least MIN_FULL_SYNCS full syncs. A change must not wait
// for a full sync's read of the kernel.
import { percentile } from '../stats.js';
import { changedSlice, originalSlice, spreadServiceIndex, virtualServersOf, type Workload } from '../workload.js';
import type { InProcessAgent } from './in-process-agent.js';
import { profiled } from './profile.js';
import type { Results } from './results.js';
import { log, sleep } from './shared.js';

const MIN_FULL_SYNCS = 3;
const MIN_CHANGES = 200;
/** Where changes wait for full syncs (a regression), fewer of them come in: the window ends anyway. */
const MAX_FULL_SYNCS = 12;
/** The pause between one change's sync and the next change: changes keep arriving through each full sync. */
const CHANGE_GAP_MS = 5;

export async function changesDuringResyncs(results: Results, size: number, workload: Workload, { store, proxier }: InProcessAgent): Promise<void> {
  const times: number[] = [];
  const fullMs: number[] = [];
  let unexpected = 0;
  let fullOperations = 0;
  let done = false;
  const started = performance.now();
  await profiled(`resync-changes-${size}`, async () => {
    const fullSyncs = (async () => {
      while (fullMs.length < MIN_FULL_SYNCS || (times.length < MIN_CHANGES && fullMs.length < MAX_FULL_SYNCS)) {
        const began = performance.now();
        const result = await proxier.sync({ full: true });
        fullMs.push(performance.now() - began);
        fullOperations += result.plan.operations.length;
        const [firstFailure] = result.failures;
        if (firstFailure) results.problems.push(`N=${size} full sync during changes: ${firstFailure.error.message}`);
      }
      done = true;
    })();
    // Whole pairs only: a pair cut after its first change would leave its Service changed for the
    // rows after this one (the burst's sync then had one operation more than its changes).
    for (let round = 0; !done || round % 2 === 1; round++) {
      // Pairs on one Service, as in one-change.ts, on other Services than its rounds.
      const index = spreadServiceIndex(round >> 1, size, 3);
      const slice = round % 2 === 0 ? changedSlice(index, { extra: 1000 + (round >> 1) }, 10_000 + round) : originalSlice(workload, index);
      const began = performance.now();
      store.upsertEndpointSlice(slice);
      const result = await proxier.sync({ full: false });
      times.push(performance.now() - began);
      if (result.plan.operations.length !== virtualServersOf(index)) unexpected++;
      const [firstFailure] = result.failures;
      if (firstFailure) results.problems.push(`N=${size} change during full syncs: ${firstFailure.error.message}`);
      await sleep(CHANGE_GAP_MS);
    }
    await fullSyncs;
  });
  // A change taken in by a full sync (its store event came while that sync took the changes) is
  // counted as that full sync's: the change's own sync then has nothing to do.
  if (unexpected > times.length / 10)
    results.problems.push(
      `N=${size}: ${unexpected} of ${times.length} changes during full syncs did not make one kernel operation per virtual server of their Service`,
    );
  results.resyncChanges = { size, times, fullSyncMs: fullMs, windowMs: performance.now() - started, fullOperations, unexpected };
  log(
    `N=${size} changes during ${fullMs.length} full syncs (${fullMs.map((t) => t.toFixed(0)).join(', ')} ms): median ${percentile(times, 0.5).toFixed(2)} ms, p99 ${percentile(times, 0.99).toFixed(2)} ms, max ${Math.max(...times).toFixed(2)} ms of ${times.length}`,
  );
}
