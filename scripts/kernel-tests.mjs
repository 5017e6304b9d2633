#!/usr/bin/env node
// Runs vitest projects that need a kernel with IPVS (kernel, and soak's short cases) through
// scripts/sandbox.mjs, split over several User-Mode Linux kernels at once. A UML kernel runs on
// one CPU, so on a 2-core machine one sandbox leaves a core idle: two halve the wall time.
// Each shard is a sandbox of its own (its own kernel, network namespaces, /tmp and /run), so the
// shards share nothing but the project's files, which the tests only read.
//
//   node scripts/kernel-tests.mjs --project kernel [--project soak] [vitest file filters...]
//
// Environment: KIPVS_TEST_SHARDS (default: the number of CPUs, at most 2, under UML; 1 when the
// host kernel runs the tests, where they already share one kernel). Every shard's output is
// printed as it comes, each line prefixed with the shard; the run fails when any shard fails.
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { kernelMode } from './kernel-mode.mjs';

const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Where each project's test files are (vitest.config.ts's include). */
const PROJECT_DIRS = { kernel: 'test/kernel', soak: 'test/soak' };

/**
 * Seconds each file took in UML on the 2-core machine (one full run of 2026-12-06, 1,337 s in
 * all, beside other sandboxes), used only to balance the shards: a wrong or missing figure makes
 * the run slower, never wrong. A file not listed counts as DEFAULT_SECONDS.
 */
const MEASURED_SECONDS = {
  'test/kernel/agent-apiserver.test.ts': 78,
  'test/kernel/agent-churn.test.ts': 128,
  'test/kernel/agent-faults.test.ts': 73,
  'test/kernel/agent-health.test.ts': 52,
  'test/kernel/agent-ipv6.test.ts': 40,
  'test/kernel/agent-node.test.ts': 41,
  'test/kernel/agent-ownership.test.ts': 97,
  'test/kernel/agent-parity-traffic.test.ts': 100,
  'test/kernel/agent-traffic.test.ts': 92,
  'test/kernel/agent-watch.test.ts': 58,
  'test/kernel/conntrack-sysctl.test.ts': 6,
  'test/kernel/conntrack.test.ts': 47,
  'test/kernel/differential.test.ts': 19,
  'test/kernel/inspect-cli.test.ts': 41,
  'test/kernel/inspect-ipsets.test.ts': 30,
  'test/kernel/ipset.test.ts': 64,
  'test/kernel/iptables.test.ts': 57,
  'test/kernel/ipvs.test.ts': 18,
  'test/kernel/migrate-from-kube-proxy.test.ts': 86,
  'test/kernel/migrate-from-old-kube-proxy.test.ts': 46,
  'test/kernel/mirror-contract.test.ts': 28,
  'test/kernel/rtnl.test.ts': 52,
  'test/kernel/service-names-metrics.test.ts': 44,
  'test/kernel/sysctl.test.ts': 12,
  'test/kernel/traffic-stats.test.ts': 28,
  // npm run soak:ci's runs of 2026-12-06 (docs/reliability.md), the slower of each.
  'test/soak/soak-kill-mid-sync.test.ts': 46,
  'test/soak/soak-restarts.test.ts': 118,
};
const DEFAULT_SECONDS = 30;

function testFiles(dir) {
  const files = [];
  for (const entry of readdirSync(join(projectRoot, dir))) {
    const path = join(dir, entry);
    if (statSync(join(projectRoot, path)).isDirectory()) files.push(...testFiles(path));
    else if (entry.endsWith('.test.ts')) files.push(path);
  }
  return files;
}

/** Longest first, each to the lightest shard so far (LPT): within a few percent of even for our files. */
function balance(files, shards, secondsOf) {
  const buckets = Array.from({ length: shards }, () => ({ files: [], seconds: 0 }));
  for (const file of [...files].sort((a, b) => secondsOf(b) - secondsOf(a) || a.localeCompare(b))) {
    const lightest = buckets.reduce((min, bucket) => (bucket.seconds < min.seconds ? bucket : min));
    lightest.files.push(file);
    lightest.seconds += secondsOf(file);
  }
  return buckets.filter((bucket) => bucket.files.length > 0);
}

function shardCount() {
  const asked = process.env.KIPVS_TEST_SHARDS;
  if (asked !== undefined) {
    const count = Number(asked);
    if (!Number.isInteger(count) || count < 1) {
      console.error(`kernel-tests: KIPVS_TEST_SHARDS must be a whole number ≥ 1, not ${asked}`);
      process.exit(2);
    }
    return count;
  }
  return kernelMode() === 'direct' ? 1 : Math.min(2, availableParallelism());
}

/** Runs one shard's sandbox; resolves to its exit status, printing its lines with a prefix. */
function runShard(label, vitestArgs) {
  const started = Date.now();
  const child = spawn(process.execPath, [join(projectRoot, 'scripts', 'sandbox.mjs'), '--', 'npx', 'vitest', 'run', ...vitestArgs], {
    cwd: projectRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const [stream, out] of [
    [child.stdout, process.stdout],
    [child.stderr, process.stderr],
  ]) {
    createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => out.write(label === '' ? `${line}\n` : `${label} ${line}\n`));
  }
  return new Promise((resolveStatus) =>
    child.on('exit', (code, signal) => resolveStatus({ label, status: code ?? (signal ? 128 : 1), seconds: (Date.now() - started) / 1000 })),
  );
}

const args = process.argv.slice(2);
const projects = [];
const filters = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--project') projects.push(args[++i]);
  else filters.push(args[i]);
}
if (projects.length === 0 || projects.some((project) => !(project in PROJECT_DIRS))) {
  console.error(`usage: node scripts/kernel-tests.mjs --project ${Object.keys(PROJECT_DIRS).join('|')} [--project ...] [file filters...]`);
  process.exit(2);
}
const projectArgs = projects.flatMap((project) => ['--project', project]);
const files = projects.flatMap((project) => testFiles(PROJECT_DIRS[project])).filter((file) => filters.length === 0 || filters.some((f) => file.includes(f)));
const shards = balance(files, Math.min(shardCount(), Math.max(1, files.length)), (file) => MEASURED_SECONDS[file] ?? DEFAULT_SECONDS);

// A shard whose files list is given explicitly runs exactly those; one shard keeps vitest's own
// file discovery (and its filters), so a single run looks as it always did.
const runs =
  shards.length <= 1
    ? [runShard('', [...projectArgs, ...filters])]
    : shards.map((shard, index) => {
        const label = `[${String(index + 1)}/${String(shards.length)}]`;
        console.log(
          `${label} ${String(shard.files.length)} files, about ${String(Math.round(shard.seconds))} s: ${shard.files.map((f) => relative('test', f)).join(' ')}`,
        );
        return runShard(label, [...projectArgs, ...shard.files]);
      });
const results = await Promise.all(runs);
if (results.length > 1) {
  for (const result of results)
    console.log(
      `kernel-tests: shard ${result.label} ${result.status === 0 ? 'passed' : `FAILED (exit ${String(result.status)})`} in ${result.seconds.toFixed(0)} s`,
    );
}
process.exit(results.find((result) => result.status !== 0)?.status ?? 0);
