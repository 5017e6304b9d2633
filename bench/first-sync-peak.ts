// Probe (not a test): where the first sync's heap peaks, in the sandbox kernel: the workload read
// by the file source into the store, then the proxier's first sync through the real NetlinkKernel
// in a namespace of its own, the V8 heap sampled every millisecond the event loop allows and at
// each step's start. Run inside the sandbox:
//
//   node scripts/sandbox.mjs -- node --expose-gc --max-semi-space-size=1 --import tsx bench/first-sync-peak.ts
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import { pino } from 'pino';
import { MemoryOwnershipStore } from '../src/agent/ownership.js';
import { Proxier } from '../src/agent/proxier.js';
import { allIpsetNames } from '../src/cli/agent-options.js';
import { NetlinkKernel } from '../src/kernel/netlink-kernel.js';
import { KernelMirror } from '../src/kernel/mirror.js';
import { DEFAULT_SETTINGS } from '../src/model/settings.js';
import { ClusterStore } from '../src/sources/cluster-store.js';
import { FileSource } from '../src/sources/file-source.js';
import { IncrementalTranslator } from '../src/translate/incremental.js';
import { makeNodeNamespace } from './node-namespace.js';
import { generateWorkload, NODE, writeWorkload } from './workload.js';

const size = Number(process.env.KIPVS_BENCH_SIZES ?? 10000);
const gc = (globalThis as { gc?: () => void }).gc;
const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);
let phase = 'start';
let peak = { used: 0, total: 0, phase, spaces: '' };
const spaces = (): string =>
  getHeapSpaceStatistics()
    .filter((space) => space.space_used_size > 2 ** 20)
    .map((space) => `${space.space_name} ${mb(space.space_used_size)}/${mb(space.space_size)}`)
    .join(', ');
const sample = (): void => {
  const { used_heap_size: used, total_heap_size: total } = getHeapStatistics();
  if (used > peak.used) peak = { used, total, phase, spaces: spaces() };
};
const marks: string[] = [];
const mark = (name: string): void => {
  sample();
  const { used_heap_size: used, total_heap_size: total } = getHeapStatistics();
  marks.push(`${name}: heap used ${mb(used)} MiB of ${mb(total)}, rss ${mb(process.memoryUsage.rss())} (${spaces()})`);
  phase = name;
};
function wrap<T extends object>(proto: T, method: keyof T & string, label: string): void {
  const original = proto[method] as (...args: unknown[]) => unknown;
  (proto as Record<string, unknown>)[method] = function (this: unknown, ...args: unknown[]): unknown {
    mark(`${label} begins`);
    const result = original.apply(this, args);
    if (result instanceof Promise) return result.finally(() => mark(`${label} ends`));
    mark(`${label} ends`);
    return result;
  };
}
wrap(IncrementalTranslator.prototype, 'update', 'translate');
wrap(NetlinkKernel.prototype, 'observe', 'observe');
wrap(NetlinkKernel.prototype, 'apply', 'apply');
wrap(KernelMirror.prototype, 'apply', 'mirror apply');

const { netns, remove } = makeNodeNamespace('kipvs-peak');
const dir = mkdtempSync(join(tmpdir(), 'kipvs-peak-'));
const kernel = await NetlinkKernel.open({ netns, dummyInterface: DEFAULT_SETTINGS.dummyInterface, ipsetNames: allIpsetNames() });
/** Apart, so that no register keeps the generated objects alive. */
function writeFiles(directory: string): void {
  writeWorkload(directory, generateWorkload(size));
}
try {
  writeFiles(join(dir, 'source'));
  gc?.();
  mark('read begins');
  const sampler = setInterval(sample, 1);
  const store = new ClusterStore();
  const read = new FileSource(join(dir, 'source')).read();
  store.replaceAll(read.services, read.endpointSlices);
  mark('read ends');
  const proxier = new Proxier({
    kernel,
    node: NODE,
    settings: DEFAULT_SETTINGS,
    log: pino({ level: 'silent' }),
    ownership: new MemoryOwnershipStore(),
    cluster: store,
  });
  const operations = await proxier.sync({ full: true }).then(({ plan }) => plan.operations.length);
  mark('sync returned');
  clearInterval(sampler);
  gc?.();
  mark('after gc');
  console.log(`N=${size}: ${operations} operations`);
  for (const line of marks) console.log(`  ${line}`);
  console.log(`  peak: heap used ${mb(peak.used)} MiB of ${mb(peak.total)} committed, during "${peak.phase}" (${peak.spaces})`);
} finally {
  kernel.close();
  remove();
  rmSync(dir, { recursive: true, force: true });
}
