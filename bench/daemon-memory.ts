// Benchmark (not a test): the real `kipvs agent` daemon's memory at N Services × 10 endpoints
// (bench/workload.ts), file source (or KIPVS_BENCH_SOURCE=api: the tests' API server), in the
// sandbox kernel, with the image's NODE_OPTIONS (deploy/Dockerfile): VmRSS and VmHWM after the first sync
// and after a window of endpoint churn, and with KIPVS_BENCH_HEAP=1 the V8 heap by constructor (a
// heap snapshot the daemon writes on SIGUSR2, node's --heapsnapshot-signal).
//
//   npm run bench:memory                                  N = 1,000 and 10,000
//   KIPVS_BENCH_SIZES=1000 KIPVS_BENCH_CHURN_S=600 npm run bench:memory
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { extraSlice, generateWorkload, NODE_ADDRESS, NODE_ADDRESS_PREFIX, NODE_NAME, spreadServiceIndex, writeWorkload } from './workload.js';
import { summariseHeapSnapshot } from './heap-summary.js';
import { IMAGE_NODE_OPTIONS } from './image.js';
import { stringify } from 'yaml';
import { runInSandbox } from './sandboxed.js';

const root = resolve(import.meta.dirname, '..');
runInSandbox(import.meta.filename);

const CLI = join(root, 'dist', 'cli', 'main.js');
const sizes = (process.env.KIPVS_BENCH_SIZES ?? '1000,10000')
  .split(',')
  .map(Number)
  .filter((n) => Number.isInteger(n) && n > 0);
/** More node flags for the daemon, to compare (e.g. --trace-gc, whose last full GC line is printed). */
const nodeFlags = (process.env.KIPVS_BENCH_NODE_FLAGS ?? '').split(' ').filter((flag) => flag !== '');
const churnSeconds = Number(process.env.KIPVS_BENCH_CHURN_S ?? 60);
const workDir = join('/tmp', `kipvs-memory-${process.pid}`);
const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));
const mib = (pid: number, field: string): number =>
  Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;

/**
 * Where the resident memory is, from /proc/PID/smaps: mapped files (node's binary and libraries),
 * malloc's heap ([heap]: buffers, the C++ side), and other anonymous memory (V8's heap pages,
 * malloc's mmapped arenas and large blocks).
 */
function residentParts(pid: number): string {
  const parts = { file: 0, heap: 0, anon: 0 };
  let part: keyof typeof parts = 'anon';
  const smaps = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  // KIPVS_BENCH_SMAPS_DIR (a host path): keep each smaps read, to look at mapping by mapping.
  const keep = process.env.KIPVS_BENCH_SMAPS_DIR;
  if (keep !== undefined) {
    mkdirSync(resolve(root, keep), { recursive: true });
    writeFileSync(join(resolve(root, keep), `smaps-${pid}-${Date.now()}`), smaps);
  }
  for (const line of smaps.split('\n')) {
    const mapping = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (mapping) part = mapping[2] === '[heap]' ? 'heap' : mapping[1] !== '0' ? 'file' : 'anon';
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) parts[part] += Number(rss[1]);
  }
  return `files ${(parts.file / 1024).toFixed(0)}, malloc heap ${(parts.heap / 1024).toFixed(0)}, other anonymous ${(parts.anon / 1024).toFixed(0)} MiB`;
}

/** The daemon's own view (prom-client's nodejs_* gauges): V8 heap used and committed, and memory outside it. */
async function heapFigures(): Promise<string> {
  try {
    const text = await (await fetch('http://127.0.0.1:10249/metrics', { signal: AbortSignal.timeout(5_000) })).text();
    const value = (name: string): string => {
      const found = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1];
      return found === undefined ? '?' : (Number(found) / 2 ** 20).toFixed(0);
    };
    return `heap used ${value('nodejs_heap_size_used_bytes')} MiB of ${value('nodejs_heap_size_total_bytes')}, external ${value('nodejs_external_memory_bytes')} MiB`;
  } catch (error) {
    return `no metrics: ${(error as Error).message}`;
  }
}

/** The last full collection the daemon traced (--trace-gc): heap before → after, in MB. */
function lastMarkCompact(dir: string): string {
  const lines = readFileSync(join(dir, 'agent.out'), 'utf8')
    .split('\n')
    .filter((line) => line.includes('Mark-Compact'));
  return lines.length === 0 ? '' : `; last full GC: ${/Mark-Compact[^,]*/.exec(lines[lines.length - 1] ?? '')?.[0] ?? ''}`;
}

function namespace(size: number): string {
  const name = `kipvs-mem-${size}`;
  const ip = (...args: string[]): void => void spawnSync('ip', ['-n', name, ...args], { stdio: 'inherit' });
  if (spawnSync('ip', ['netns', 'add', name], { stdio: 'inherit' }).status !== 0) throw new Error(`cannot create network namespace ${name}`);
  ip('link', 'set', 'lo', 'up');
  ip('link', 'add', 'eth0', 'type', 'dummy');
  ip('address', 'add', `${NODE_ADDRESS}/${NODE_ADDRESS_PREFIX}`, 'dev', 'eth0');
  ip('link', 'set', 'eth0', 'up');
  return name;
}

function retire(name: string): void {
  spawnSync('ip', ['netns', 'exec', name, 'ipvsadm', '-C'], { stdio: 'ignore' });
  spawnSync('ip', ['-n', name, 'link', 'delete', 'kube-ipvs0'], { stdio: 'ignore' });
  spawnSync('ip', ['netns', 'delete', name], { stdio: 'ignore' });
}

/** The agent's log (pino JSON lines), written to a file and polled: "synced" lines counted. */
function agentLog(file: string, daemon: ChildProcess): { wait(count: number, deadlineMs: number): Promise<void>; syncs(): number } {
  const text = (): string => readFileSync(file, 'utf8');
  return {
    syncs: () => text().split('"msg":"synced"').length - 1,
    async wait(want, deadlineMs) {
      const deadline = performance.now() + deadlineMs;
      for (;;) {
        const now = text();
        if (now.split('"msg":"synced"').length - 1 >= want) return;
        if (daemon.exitCode !== null || daemon.signalCode !== null || performance.now() > deadline) {
          const why = performance.now() > deadline ? `no sync within ${deadlineMs} ms` : `agent exited (${String(daemon.exitCode ?? daemon.signalCode)})`;
          throw new Error(`${why}; its log ends:\n${now.slice(-2000)}`);
        }
        await sleep(200);
      }
    },
  };
}

async function heapSnapshot(daemon: ChildProcess, cwd: string): Promise<string> {
  const before = new Set(readdirSync(cwd));
  daemon.kill('SIGUSR2');
  for (let i = 0; i < 600; i++) {
    await sleep(500);
    const file = readdirSync(cwd).find((name) => name.endsWith('.heapsnapshot') && !before.has(name));
    // Written in one go; wait for the size to stop growing.
    if (file) {
      let size = -1;
      for (;;) {
        const now = readFileSync(join(cwd, file)).length;
        if (now === size && now > 0) {
          // KIPVS_BENCH_HEAP_DIR (a host path such as .sandbox/heap): keep the snapshot to open in DevTools.
          const keep = process.env.KIPVS_BENCH_HEAP_DIR;
          if (keep !== undefined) {
            mkdirSync(resolve(root, keep), { recursive: true });
            copyFileSync(join(cwd, file), join(resolve(root, keep), file));
          }
          return summariseHeapSnapshot(join(cwd, file), 12);
        }
        size = now;
        await sleep(1_000);
      }
    }
  }
  return 'no heap snapshot';
}

console.log(
  `daemon memory: ${process.env.KIPVS_BENCH_SOURCE === 'api' ? 'API' : 'file'} source, sizes ${sizes.join(', ')}, churn ${churnSeconds} s, NODE_OPTIONS=${IMAGE_NODE_OPTIONS} (the image's)${nodeFlags.length > 0 ? `, node flags ${nodeFlags.join(' ')}` : ''}`,
);
/** Where the daemon reads the cluster from, and how the churn changes it. */
interface BenchSource {
  /** The daemon's arguments that name the source. */
  readonly args: readonly string[];
  /** The n-th endpoint change, to Service `index`. */
  change(index: number, n: number): Promise<void>;
  stop(): void;
}

/**
 * Files (the default): the churn is a file of its own holding a second slice of one Service with
 * one pod, which the next write moves to another Service (a real server added to one and taken
 * from the other).
 */
function fileSource(dir: string, size: number): BenchSource {
  const sourceDir = join(dir, 'source');
  writeWorkload(sourceDir, generateWorkload(size));
  const churnFile = join(sourceDir, 'zz-churn.yaml');
  return {
    args: ['--source', sourceDir],
    change: (index, n) => {
      writeFileSync(churnFile + '.tmp', `---\n${stringify(extraSlice(index, n))}`);
      renameSync(churnFile + '.tmp', churnFile);
      return Promise.resolve();
    },
    stop: () => {},
  };
}

/**
 * KIPVS_BENCH_SOURCE=api: the tests' API server in a process of its own (bench/api-server-child.ts),
 * listed and watched by the daemon; the churn rewrites one Service's slice, every other time
 * without one of its endpoints.
 */
async function apiSource(size: number): Promise<BenchSource> {
  const child = fork(join(import.meta.dirname, 'api-server-child.ts'), [String(size)], { execArgv: ['--import', 'tsx'] });
  const message = (): Promise<unknown> => new Promise((done) => child.once('message', done));
  const { kubeconfig } = (await message()) as { kubeconfig: string };
  return {
    args: ['--kubeconfig', kubeconfig],
    change: (index, n) => {
      const updated = message();
      child.send({ index, n });
      return updated.then(() => undefined);
    },
    stop: () => child.disconnect(),
  };
}

const sourceKind = process.env.KIPVS_BENCH_SOURCE === 'api' ? 'api' : 'file';
for (const size of sizes) {
  const dir = join(workDir, String(size));
  mkdirSync(dir, { recursive: true });
  const source = sourceKind === 'api' ? await apiSource(size) : fileSource(dir, size);
  const netns = namespace(size);
  const started = performance.now();
  const daemon = spawn(
    process.execPath,
    [
      ...nodeFlags,
      '--heapsnapshot-signal=SIGUSR2',
      CLI,
      'agent',
      ...source.args,
      '--netns',
      netns,
      '--hostname-override',
      NODE_NAME,
      '--ipvs-min-sync-period',
      '1s',
    ],
    {
      cwd: dir,
      env: { ...process.env, NODE_OPTIONS: IMAGE_NODE_OPTIONS },
      stdio: ['ignore', openSync(join(dir, 'agent.out'), 'w'), openSync(join(dir, 'agent.log'), 'w')],
    },
  );
  const pid = daemon.pid ?? -1;
  const log = agentLog(join(dir, 'agent.log'), daemon);
  try {
    await log.wait(1, Number(process.env.KIPVS_BENCH_SYNC_DEADLINE_S ?? 900) * 1000);
    const syncedMs = performance.now() - started;
    await sleep(3_000);
    console.log(
      `N=${size}: first sync after ${(syncedMs / 1000).toFixed(1)} s; VmRSS ${mib(pid, 'VmRSS').toFixed(0)} MiB, VmHWM ${mib(pid, 'VmHWM').toFixed(0)} MiB (${residentParts(pid)}); ${await heapFigures()}${lastMarkCompact(dir)}`,
    );
    // KIPVS_BENCH_SETTLE_S: the same figure again after that many seconds without changes (V8's
    // memory reducer gives back what the first sync committed only after some idle seconds).
    const settleSeconds = Number(process.env.KIPVS_BENCH_SETTLE_S ?? 0);
    if (settleSeconds > 0) {
      await sleep(settleSeconds * 1000);
      console.log(
        `N=${size}: ${settleSeconds} s later, no changes: VmRSS ${mib(pid, 'VmRSS').toFixed(0)} MiB (${residentParts(pid)}); ${await heapFigures()}${lastMarkCompact(dir)}`,
      );
    }
    // Churn: one endpoint change per 100 ms (see fileSource and apiSource).
    const churnEnd = performance.now() + churnSeconds * 1000;
    let n = 0;
    const syncsBefore = log.syncs();
    while (performance.now() < churnEnd) {
      await source.change(spreadServiceIndex(n, size), n);
      n++;
      await sleep(100);
    }
    await sleep(5_000);
    console.log(
      `N=${size}: after ${churnSeconds} s of churn (${n} writes, ${log.syncs() - syncsBefore} syncs): VmRSS ${mib(pid, 'VmRSS').toFixed(0)} MiB, VmHWM ${mib(pid, 'VmHWM').toFixed(0)} MiB (${residentParts(pid)}); ${await heapFigures()}${lastMarkCompact(dir)}`,
    );
    // Last: writing a snapshot costs the process memory of its own.
    if (process.env.KIPVS_BENCH_HEAP === '1') console.log(await heapSnapshot(daemon, dir));
  } finally {
    daemon.kill('SIGTERM');
    if (daemon.exitCode === null && daemon.signalCode === null) await new Promise((done) => daemon.once('exit', done));
    retire(netns);
    source.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
