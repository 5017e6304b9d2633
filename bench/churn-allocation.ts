// Benchmark (not a test): what the daemon ALLOCATES per endpoint change and per full sync, and
// who allocates it, in-process on the host (no kernel). What outlives a young-generation
// collection (1 MB semi-spaces in the image) is promoted, and the old generation V8 commits for
// it stays committed: the allocation of the churn, not the live heap, is what grows the resident
// size. The daemon's path as bench:memory drives it: the file source reads the workload of
// bench/workload.ts; each change rewrites one file (a slice moved from Service to Service), is
// read by the file source into the store, synced against a kernel mirror, and recorded by the
// observers the daemon runs (metrics, health-check node ports, the names record). A full sync here
// reads a kernel that holds exactly what the mirror expects (the real read's own allocation,
// netlink dumps and /proc/net/ip_vs, is not in it), or with KIPVS_BENCH_KERNEL=sandbox, inside the
// sandbox, the real kernel in a namespace of its own.
//
// V8's sampling heap profiler, with the objects collected by either collection kept in the
// samples (so: every allocation, sampled every KIPVS_BENCH_SAMPLE bytes, default 4096).
//
//   node --import tsx bench/churn-allocation.ts                       N = 10,000, 200 changes, 3 full syncs
//   KIPVS_BENCH_SIZES=1000 KIPVS_BENCH_CHURN=500 node --import tsx bench/churn-allocation.ts
//   KIPVS_BENCH_SAMPLE=0 node --max-semi-space-size=1 --trace-gc-nvp --import tsx bench/churn-allocation.ts   what is promoted
//   node scripts/sandbox.mjs -- env KIPVS_BENCH_KERNEL=sandbox node --import tsx bench/churn-allocation.ts
//   KIPVS_BENCH_SURVIVORS=1 node --max-semi-space-size=1 --import tsx bench/churn-allocation.ts   what is promoted, by who allocated it
//
// KIPVS_BENCH_SURVIVORS=1 drops from the samples what a young-generation collection frees: what
// is left outlived one (promoted, or about to be: at most a semi-space of it), by allocation site.
import { Session } from 'node:inspector/promises';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { MemoryOwnershipStore } from '../src/agent/ownership.js';
import { Proxier } from '../src/agent/proxier.js';
import type { SyncObserver } from '../src/agent/daemon.js';
import { ProxyHealth } from '../src/agent/health-server.js';
import { ProxyMetrics } from '../src/agent/metrics.js';
import { metricsObserver, serviceHealthObserver } from '../src/agent/observers.js';
import { ServiceHealthServer } from '../src/agent/service-health.js';
import { ServiceNamesRecorder, serviceNamesObserver } from '../src/agent/service-names.js';
import { allIpsetNames } from '../src/cli/agent-options.js';
import { NetlinkKernel } from '../src/kernel/netlink-kernel.js';
import { DEFAULT_SETTINGS } from '../src/model/settings.js';
import { ClusterStore } from '../src/sources/cluster-store.js';
import { FileSource } from '../src/sources/file-source.js';
import { ExpectedKernel } from './expected-kernel.js';
import { makeNodeNamespace } from './node-namespace.js';
import { extraSlice, generateWorkload, NODE, spreadServiceIndex, writeWorkload } from './workload.js';

const sizes = (process.env.KIPVS_BENCH_SIZES ?? '10000').split(',').map(Number);
const churn = Number(process.env.KIPVS_BENCH_CHURN ?? 200);
const fullSyncs = Number(process.env.KIPVS_BENCH_FULL_SYNCS ?? 3);
const samplingInterval = Number(process.env.KIPVS_BENCH_SAMPLE ?? 4096);
const shown = Number(process.env.KIPVS_BENCH_TOP ?? 15);
/** KIPVS_BENCH_KERNEL=sandbox: the real NetlinkKernel, in a namespace of its own (run inside the sandbox). */
const inSandbox = process.env.KIPVS_BENCH_KERNEL === 'sandbox';
/** KIPVS_BENCH_SURVIVORS=1: only what outlived a young-generation collection (see the header). */
const survivorsOnly = process.env.KIPVS_BENCH_SURVIVORS === '1';

interface SamplingNode {
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly selfSize: number;
  readonly children: readonly SamplingNode[];
}

const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(2)} MB`;
const frameName = ({ functionName, url, lineNumber }: SamplingNode['callFrame']): string =>
  `${functionName || '(anonymous)'} ${url ? `${relative(process.cwd(), url.replace(/^file:\/\//, ''))}:${lineNumber + 1}` : ''}`.trim();
const ours = (url: string): boolean => /\/(src|bench)\//.test(url) && !url.includes('node_modules');

/** Bytes by allocating function, and by the nearest of our own frames on the stack (src/, bench/). */
function summarise(root: SamplingNode | undefined, per: number, unit: string): string {
  if (!root) return '';
  const bySelf = new Map<string, number>();
  const byOurs = new Map<string, number>();
  let total = 0;
  const walk = (node: SamplingNode, nearestOurs: string): void => {
    const here = ours(node.callFrame.url) ? frameName(node.callFrame) : nearestOurs;
    if (node.selfSize > 0) {
      total += node.selfSize;
      const self = frameName(node.callFrame);
      bySelf.set(self, (bySelf.get(self) ?? 0) + node.selfSize);
      byOurs.set(here, (byOurs.get(here) ?? 0) + node.selfSize);
    }
    for (const child of node.children) walk(child, here);
  };
  walk(root, '(outside src/)');
  const top = (by: Map<string, number>): string =>
    [...by]
      .sort((a, b) => b[1] - a[1])
      .slice(0, shown)
      .map(([name, bytes]) => `  ${mb(bytes / per).padStart(10)} ${((100 * bytes) / total).toFixed(1).padStart(5)}%  ${name}`)
      .join('\n');
  return `${survivorsOnly ? 'outlived a young collection:' : 'allocated'} ${mb(total / per)} per ${unit}\n by allocating function:\n${top(bySelf)}\n by nearest frame of ours:\n${top(byOurs)}`;
}

/** The work's allocation profile; with KIPVS_BENCH_SAMPLE=0, no profile (to read node's --trace-gc-nvp between the lines printed). */
async function profiled(session: Session, work: () => Promise<void>): Promise<SamplingNode | undefined> {
  if (samplingInterval === 0) {
    console.log('(start)');
    await work();
    console.log('(end)');
    return undefined;
  }
  await session.post('HeapProfiler.startSampling', {
    samplingInterval,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: !survivorsOnly,
  });
  await work();
  const { profile } = await session.post('HeapProfiler.stopSampling');
  return profile.head;
}

const session = new Session();
session.connect();
await session.post('HeapProfiler.enable');
for (const size of sizes) {
  const dir = mkdtempSync(join(tmpdir(), 'kipvs-alloc-'));
  const node = inSandbox ? makeNodeNamespace('kipvs-alloc') : undefined;
  const kernel = node
    ? await NetlinkKernel.open({ netns: node.netns, dummyInterface: DEFAULT_SETTINGS.dummyInterface, ipsetNames: allIpsetNames() })
    : new ExpectedKernel();
  try {
    writeWorkload(join(dir, 'source'), generateWorkload(size));
    const files = new FileSource(join(dir, 'source'));
    const store = new ClusterStore();
    const take = (): void => {
      const read = files.read();
      store.replaceAll(read.services, read.endpointSlices);
    };
    take();
    const log = pino({ level: 'silent' });
    const proxier = new Proxier({
      kernel,
      node: NODE,
      settings: DEFAULT_SETTINGS,
      log,
      ownership: new MemoryOwnershipStore(),
      cluster: store,
    });
    const observers: SyncObserver[] = [
      metricsObserver(new ProxyMetrics({ families: NODE.families }), store),
      // The workload has no Service with a health-check node port: computed, none listened on.
      serviceHealthObserver(new ServiceHealthServer({ addresses: [], health: new ProxyHealth({ healthTimeoutMs: 60_000 }), log }), NODE, log),
      serviceNamesObserver(new ServiceNamesRecorder(join(dir, 'names.json'))),
    ];
    const sync = async (full: boolean): Promise<void> => {
      if (full) take(); // the daemon looks at its source again before each full sync
      const result = await proxier.sync({ full });
      for (const observer of observers) observer.synced?.(result, store);
    };
    await sync(true);
    let n = 0;
    const change = async (): Promise<void> => {
      writeFileSync(join(dir, 'source', 'zz-churn.yaml'), `---\n${stringify(extraSlice(spreadServiceIndex(n, size), n))}`);
      n++;
      take();
      await sync(false);
    };
    // Warm: the first change makes the churn file, a full sync makes the mirror it compares.
    await change();
    await sync(true);
    console.log(`N=${size}, ${churn} endpoint changes:`);
    console.log(
      summarise(
        await profiled(session, async () => {
          for (let i = 0; i < churn; i++) await change();
        }),
        churn,
        'endpoint change',
      ),
    );
    console.log(`N=${size}, ${fullSyncs} full syncs:`);
    console.log(
      summarise(
        await profiled(session, async () => {
          for (let i = 0; i < fullSyncs; i++) await sync(true);
        }),
        fullSyncs,
        'full sync',
      ),
    );
  } finally {
    kernel.close();
    node?.remove();
    rmSync(dir, { recursive: true, force: true });
  }
}
session.disconnect();
