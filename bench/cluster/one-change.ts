// 2. One endpoint change: the time from a changed EndpointSlice to the kernel, sync by sync.
import { PerformanceObserver } from 'node:perf_hooks';
import { percentile, sum } from '../stats.js';
import { changedSlice, originalSlice, spreadServiceIndex, virtualServersOf, type Workload } from '../workload.js';
import type { InProcessAgent } from './in-process-agent.js';
import { profiled } from './profile.js';
import type { Results } from './results.js';
import { log, sleep } from './shared.js';

const CHANGES = 200;

/** CHANGES endpoint changes, one sync each, on the in-process agent: each change's time and kernel operations. */
export async function oneChanges(results: Results, size: number, workload: Workload, { store, proxier }: InProcessAgent): Promise<void> {
  const times: number[] = [];
  const spans: [number, number][] = [];
  const operations: number[] = [];
  let unexpected = 0;
  // Garbage collections during the rounds, to tell a slow change's own work from a GC pause.
  const collections: { start: number; end: number }[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) collections.push({ start: entry.startTime, end: entry.startTime + entry.duration });
  });
  observer.observe({ entryTypes: ['gc'] });
  await profiled(`change-${size}`, async () => {
    for (let round = 0; round < CHANGES; round++) {
      // Pairs on one Service: a pod joins (a new real server), then leaves (its real server goes
      // to weight 0 and drains: gracefulTerminationSeconds is the default 900).
      const index = spreadServiceIndex(round >> 1, size, 1);
      const slice = round % 2 === 0 ? changedSlice(index, { extra: round >> 1 }, round + 1) : originalSlice(workload, index);
      const started = performance.now();
      store.upsertEndpointSlice(slice);
      const result = await proxier.sync({ full: false });
      const ended = performance.now();
      times.push(ended - started);
      spans.push([started, ended]);
      operations.push(result.plan.operations.length);
      // One real server in each virtual server of the Service: its ClusterIP's, and its NodePort's.
      if (result.plan.operations.length !== virtualServersOf(index)) unexpected++;
      const [firstFailure] = result.failures;
      if (firstFailure) results.problems.push(`N=${size} change ${round}: ${firstFailure.error.message}`);
    }
  });
  await sleep(10); // GC entries are delivered asynchronously
  observer.disconnect();
  const gcMs = spans.map(([start, end]) => sum(collections.map((gc) => Math.max(0, Math.min(end, gc.end) - Math.max(start, gc.start)))));
  if (unexpected > 0)
    results.problems.push(`N=${size}: ${unexpected} of ${CHANGES} endpoint changes did not make one kernel operation per virtual server of their Service`);
  results.changes.push({ size, times, operations, gcMs });
  log(`N=${size} one change: median ${percentile(times, 0.5).toFixed(2)} ms, p99 ${percentile(times, 0.99).toFixed(2)} ms`);
}
