// Benchmark (not a test): what the daemon keeps between syncs, in-process and on the host (no
// kernel, no sandbox): the workload of bench/workload.ts read by the file source into the store,
// (or, with KIPVS_BENCH_SOURCE=api, listed and watched from the tests' API server in a child
// process), the proxier's first sync against a kernel that keeps nothing (what the real kernel holds is not
// in the daemon's heap; the proxier's mirror of it is), the names record, then endpoint churn.
// After a full collection it prints the heap used and, with KIPVS_BENCH_HEAP=1, a heap snapshot
// summarised by constructor and by what holds each kind of object.
//
//   node --expose-gc --import tsx bench/retained-heap.ts            N = 10,000
//   KIPVS_BENCH_SIZES=1000 KIPVS_BENCH_HEAP=1 node --expose-gc --import tsx bench/retained-heap.ts
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { MemoryOwnershipStore } from '../src/agent/ownership.js';
import { Proxier } from '../src/agent/proxier.js';
import { ServiceNamesRecorder } from '../src/agent/service-names.js';
import { DEFAULT_SETTINGS } from '../src/model/settings.js';
import { ClusterStore } from '../src/sources/cluster-store.js';
import { FileSource } from '../src/sources/file-source.js';
import type { KubeSource } from '../src/sources/kube-source.js';
import { ExpectedKernel } from './expected-kernel.js';
import { summariseHeapSnapshot, summariseRetainers } from './heap-summary.js';
import { extraSlice, generateWorkload, NODE, NODE_NAME, spreadServiceIndex, writeWorkload } from './workload.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const sizes = (process.env.KIPVS_BENCH_SIZES ?? '10000').split(',').map(Number);
const churn = Number(process.env.KIPVS_BENCH_CHURN ?? 200);

const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;
function heapUsed(): number {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
}

/** Apart, so that no register of the loop below keeps the generated objects alive. */
function writeFiles(directory: string, size: number): void {
  writeWorkload(directory, generateWorkload(size));
}

/** `kept`: what the snapshot must hold, alive as arguments while it is written. */
function printHeap(file: string, ...kept: unknown[]): void {
  writeHeapSnapshot(file);
  console.log(`${kept.length} parts kept:`);
  console.log(summariseHeapSnapshot(file, 25));
  console.log(summariseRetainers(file, 40));
}

/** Where the store's objects come from: files (the default) or an API server (KIPVS_BENCH_SOURCE=api). */
interface BenchSource {
  /** The first read, or the first lists. */
  fill(store: ClusterStore): Promise<void>;
  /** The n-th endpoint change, to Service `index`, once it is in the store. */
  change(store: ClusterStore, index: number, n: number): Promise<void>;
  stop(): Promise<void>;
  /** What it holds (the file source's last objects, the informers): kept alive for the snapshot. */
  readonly kept: unknown;
}

const nextChange = (store: ClusterStore): Promise<void> => new Promise((resolve) => store.onChange(resolve));

function fileSource(dir: string, size: number): BenchSource {
  writeFiles(join(dir, 'source'), size);
  const files = new FileSource(join(dir, 'source'));
  const take = (store: ClusterStore): void => {
    const read = files.read();
    store.replaceAll(read.services, read.endpointSlices);
  };
  return {
    fill: (store) => {
      take(store);
      return Promise.resolve();
    },
    change: (store, index, n) => {
      const slice = extraSlice(index, n);
      writeFileSync(join(dir, 'source', 'zz-churn.yaml'), `---\n${stringify(slice)}`);
      take(store);
      return Promise.resolve();
    },
    stop: () => Promise.resolve(),
    kept: files,
  };
}

/** The tests' API server in a child process (bench/api-server-child.ts), read by the agent's informers. */
async function apiSource(size: number): Promise<BenchSource> {
  const child = fork(join(import.meta.dirname, 'api-server-child.ts'), [String(size)], { execArgv: ['--import', 'tsx'] });
  const message = (): Promise<Record<string, unknown>> => new Promise((resolve) => child.once('message', (value) => resolve(value as Record<string, unknown>)));
  const { kubeconfig } = (await message()) as { kubeconfig: string };
  // Loaded here, as the agent loads it only for the API source.
  const { KubeSource } = await import('../src/sources/kube-source.js');
  const holder: { source?: KubeSource } = {};
  return {
    fill: async (store) => {
      holder.source = await KubeSource.start({ kubeconfig, nodeName: NODE_NAME, sink: store, log: pino({ level: 'silent' }) });
    },
    change: async (store, index, n) => {
      const changed = nextChange(store);
      child.send({ index, n });
      await changed;
    },
    stop: async () => {
      await holder.source?.stop();
      child.disconnect();
    },
    kept: holder,
  };
}

for (const size of sizes) {
  const dir = mkdtempSync(join(tmpdir(), 'kipvs-heap-'));
  const source = process.env.KIPVS_BENCH_SOURCE === 'api' ? await apiSource(size) : fileSource(dir, size);
  try {
    const floor = heapUsed();
    const store = new ClusterStore();
    await source.fill(store);
    const stored = heapUsed();
    const proxier = new Proxier({
      kernel: new ExpectedKernel(),
      node: NODE,
      settings: DEFAULT_SETTINGS,
      log: pino({ level: 'silent' }),
      ownership: new MemoryOwnershipStore(),
      cluster: store,
    });
    const names = new ServiceNamesRecorder(join(dir, 'names.json'));
    // The plan is dropped here, as the daemon drops it after the sync.
    const { operations, peak, desired, services } = await proxier.sync({ full: true }).then(({ plan, desired, changes }) => ({
      operations: plan.operations.length,
      peak: process.memoryUsage().heapUsed,
      desired,
      services: changes.services,
    }));
    const synced = heapUsed();
    names.record(desired, services, store);
    const recorded = heapUsed();
    console.log(
      `N=${size} (${process.env.KIPVS_BENCH_SOURCE === 'api' ? 'API' : 'file'} source): ${operations} operations; heap used: floor ${mb(floor)}, +store ${mb(stored - floor)}, +proxier ${mb(synced - stored)}, +names record ${mb(recorded - synced)} = ${mb(recorded)} (${mb(peak)} before collecting)`,
    );
    // Churn as the daemon sees it: the source takes a changed slice in, one Service is translated again.
    for (let n = 0; n < churn; n++) {
      await source.change(store, spreadServiceIndex(n, size), n);
      const result = await proxier.sync({ full: false });
      names.record(result.desired, result.changes.services, store);
    }
    console.log(`N=${size}: after ${churn} endpoint changes: heap used ${mb(heapUsed())}`);
    if (process.env.KIPVS_BENCH_HEAP === '1') printHeap(join(dir, 'retained.heapsnapshot'), source.kept, store, proxier, names);
  } finally {
    await source.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
