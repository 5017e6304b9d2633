// Benchmark (not a test): `kipvs agent --once` at one size, run again and again in one boot of the
// sandbox, as the image runs it (its NODE_OPTIONS) and with node's defaults, alternating: each
// run's time, minor page faults and peak RSS (the child's own process.resourceUsage() at exit),
// and the time between its log lines, which shows where start-up goes (docs/benchmarks.md,
// "Start-up"). `node -e 0` between rounds tells how fast the boot is at that moment.
// KIPVS_BENCH_PROFILE=DIR: each run writes a CPU profile there.
//
//   node --import tsx bench/once-runs.ts                        N = 1,000, 4 rounds
//   KIPVS_BENCH_SIZES=10000 KIPVS_BENCH_ROUNDS=2 node --import tsx bench/once-runs.ts
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deleteNamespaces, freshNamespace, retireNamespace } from './cluster/namespaces.js';
import { childProfileArgs } from './cluster/profile.js';
import { CLI, log } from './cluster/shared.js';
import { IMAGE_NODE_OPTIONS } from './image.js';
import { generateWorkload, NODE_NAME, writeWorkload } from './workload.js';
import { runInSandbox } from './sandboxed.js';

runInSandbox(import.meta.filename);

const size = Number(process.env.KIPVS_BENCH_SIZES ?? 1000);
const rounds = Number(process.env.KIPVS_BENCH_ROUNDS ?? 4);
const work = mkdtempSync('/tmp/kipvs-once-runs-');
const sourceDir = join(work, 'source');
const usageFile = join(work, 'usage.json');
/** Loaded into the child first (a file: NODE_OPTIONS would read the quotes of a data: URL): writes its resource usage when it exits. */
const reportUsage = join(work, 'report-usage.mjs');
writeFileSync(
  reportUsage,
  `import { writeFileSync } from 'node:fs';\nprocess.on('exit', () => writeFileSync(${JSON.stringify(usageFile)}, JSON.stringify(process.resourceUsage())));\n`,
);

type How = 'image' | 'defaults';

/** The time from the start to each log line, and from one line to the next. */
function phases(stderr: string, startedAt: number): string {
  let previous = startedAt;
  const parts: string[] = [];
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    const { time, msg } = JSON.parse(line) as { time?: string; msg?: string };
    const at = time === undefined ? NaN : Date.parse(time);
    if (Number.isNaN(at) || msg === undefined || /sysctl/.test(msg)) continue;
    parts.push(`${msg} +${((at - previous) / 1000).toFixed(2)}`);
    previous = at;
  }
  return parts.join(' | ');
}

async function once(how: How, tag: string): Promise<{ ms: number; faults: number; maxRssMiB: number; phases: string }> {
  const netns = freshNamespace();
  const options = [how === 'image' ? IMAGE_NODE_OPTIONS : '', `--import=${reportUsage}`].join(' ').trim();
  const startedAt = Date.now();
  const started = performance.now();
  const run = spawnSync(
    process.execPath,
    [...childProfileArgs(`once-${how}-${size}-${tag}`), CLI, 'agent', '--once', '--source', sourceDir, '--netns', netns, '--hostname-override', NODE_NAME],
    {
      encoding: 'utf8',
      maxBuffer: 1 << 28,
      env: { ...process.env, NODE_OPTIONS: options },
    },
  );
  const ms = performance.now() - started;
  await retireNamespace(netns);
  if (run.status !== 0) throw new Error(`agent --once (${how}) exited ${run.status}: ${run.stderr.split('\n').slice(-5).join('\n')}`);
  const usage = JSON.parse(readFileSync(usageFile, 'utf8')) as NodeJS.ResourceUsage;
  return { ms, faults: usage.minorPageFault, maxRssMiB: usage.maxRSS / 1024, phases: phases(run.stderr, startedAt) };
}

try {
  writeWorkload(sourceDir, generateWorkload(size));
  // The first run in a boot reads node's and kipvs's files over hostfs: once before measuring.
  await once('image', 'first');
  const times: Record<How, number[]> = { image: [], defaults: [] };
  for (let round = 0; round < rounds; round++) {
    for (const how of round % 2 === 0 ? (['image', 'defaults'] as const) : (['defaults', 'image'] as const)) {
      const run = await once(how, `r${round + 1}`);
      times[how].push(run.ms);
      log(
        `N=${size} round ${round + 1} ${how === 'image' ? "the image's NODE_OPTIONS" : "node's defaults"}: ${(run.ms / 1000).toFixed(2)} s, ${run.faults} minor faults, peak RSS ${run.maxRssMiB.toFixed(0)} MiB; ${run.phases}`,
      );
    }
    const bare = performance.now();
    spawnSync(process.execPath, ['-e', '0']);
    log(`round ${round + 1}: node -e 0 ${((performance.now() - bare) / 1000).toFixed(2)} s`);
  }
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;
  for (const how of ['image', 'defaults'] as const)
    console.log(
      `agent --once at N=${size}, ${how === 'image' ? "the image's NODE_OPTIONS" : "node's defaults"}: median ${(median(times[how]) / 1000).toFixed(2)} s of ${times[how].map((ms) => (ms / 1000).toFixed(2)).join(', ')} s`,
    );
} finally {
  deleteNamespaces();
  rmSync(work, { recursive: true, force: true });
}
