// Benchmark (not a test): kipvs on a cluster of N Services × 10 endpoints (bench/workload.ts; KIPVS_BENCH_ENDPOINTS),
// against the C tools programming the same kernel objects, all in one boot of the sandbox kernel,
// each cold sync in a network namespace of its own. Prints one table; docs/benchmarks.md says
// what each row measures.
//
//   npm run bench                                        N = 1,000, 5,000 and 10,000
//   KIPVS_BENCH_SIZES=1000,5000 npm run bench            other sizes (the largest gets the
//                                                        no-op, burst and memory rows)
//   KIPVS_BENCH_ROUNDS=2 npm run bench                   the cold syncs twice, each side's faster kept
//   KIPVS_BENCH_SIZES=5000 KIPVS_BENCH_ENDPOINTS=50 npm run bench   the 250,000-real-server shape
//   KIPVS_BENCH_SOURCE=file npm run bench                the daemon (last) on the files only; `api`:
//                                                        only through the tests' API server; both
//                                                        by default, at the largest size
//   KIPVS_BENCH_PROFILE=.sandbox/profiles npm run bench  a CPU profile of each measured section
//                                                        (summarise: node bench/profile-top.mjs FILE)
//
// Run on the host, it notes the host's CPU and runs itself in the sandbox kernel
// (scripts/sandbox.mjs), which passes on only KIPVS_* variables.
//
// The measurements, in the order they run, are in bench/cluster/: cold-sync.ts, one-change.ts,
// resync.ts (no-op), changes-during-resync.ts, burst.ts and daemon.ts (the daemon on each source,
// api-server.ts serving it); report.ts prints the table.
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { burst } from './cluster/burst.js';
import { coldSyncs } from './cluster/cold-sync.js';
import { closeAgent, type InProcessAgent } from './cluster/in-process-agent.js';
import { daemonSources, runDaemon } from './cluster/daemon.js';
import { deleteNamespaces } from './cluster/namespaces.js';
import { oneChanges } from './cluster/one-change.js';
import { machine, notes, table } from './cluster/report.js';
import type { Results } from './cluster/results.js';
import { noopResyncs } from './cluster/resync.js';
import { changesDuringResyncs } from './cluster/changes-during-resync.js';
import { log, profileDir } from './cluster/shared.js';
import { warmUp } from './cluster/warm-up.js';
import { generateWorkload, writeWorkload } from './workload.js';
import { runInSandbox } from './sandboxed.js';

// UML shows its guest processes a CPU called "UML": tell it the host's.
runInSandbox('bench/cluster.ts', {
  nodeFlags: ['--expose-gc'],
  env: {
    KIPVS_BENCH_HOST: JSON.stringify({
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      kernel: release(),
    }),
  },
});

function benchSizes(): { sizes: number[]; smallest: number; largest: number } {
  const sizes = (process.env.KIPVS_BENCH_SIZES ?? '1000,5000,10000')
    .split(',')
    .map((text) => Number(text.trim()))
    .filter((n) => Number.isInteger(n) && n > 0)
    .sort((a, b) => a - b);
  const [smallest] = sizes;
  const largest = sizes.at(-1);
  if (smallest === undefined || largest === undefined) throw new Error('KIPVS_BENCH_SIZES: give sizes like 1000,5000');
  return { sizes, smallest, largest };
}

const gc = (): void => (globalThis as { gc?: () => void }).gc?.();

async function main(): Promise<void> {
  const { sizes, smallest, largest } = benchSizes();
  const sources = daemonSources();
  const changeSizes = [...new Set([smallest, largest])];
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const workDir = join('/tmp', `kipvs-bench-${process.pid}`);
  const results: Results = { cold: [], changes: [], daemons: [], problems: [] };
  log(
    `sizes ${sizes.join(', ')}; changes at ${changeSizes.join(', ')}; the daemon on ${sources.join(', ')}${profileDir ? `; CPU profiles in ${profileDir}` : ''}`,
  );
  let agent: InProcessAgent | undefined;
  let calibration: string;
  try {
    calibration = await warmUp();
    for (const [order, size] of sizes.entries()) {
      const workload = generateWorkload(size);
      const sourceDir = join(workDir, `n${size}`);
      writeWorkload(sourceDir, workload);
      agent = await coldSyncs(results, size, workload, sourceDir, order);
      if (changeSizes.includes(size)) await oneChanges(results, size, workload, agent);
      if (size === largest) {
        await noopResyncs(results, size, agent);
        await changesDuringResyncs(results, size, workload, agent);
        await burst(results, size, agent);
        gc();
        results.inProcessHeapMiB = process.memoryUsage().heapUsed / 2 ** 20;
      }
      await closeAgent(agent);
      agent = undefined;
    }
    for (const source of sources) {
      gc();
      await runDaemon(results, largest, source, join(workDir, `n${largest}`));
    }
    log(`kernel memory: ${/^MemAvailable:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? '?'} kB available`);
  } finally {
    agent?.kernel.close();
    deleteNamespaces();
    rmSync(workDir, { recursive: true, force: true });
  }
  console.log(`\n${machine(calibration)}\n\n${table(results, { smallest, largest })}\n\n${notes(results, largest)}`);
  if (results.problems.length > 0) {
    console.log(`\nPROBLEMS (the figures above are not valid where these apply):\n${results.problems.map((problem) => `- ${problem}`).join('\n')}`);
    process.exitCode = 1;
  }
}

await main();
