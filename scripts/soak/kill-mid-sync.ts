// Soak (b): SIGKILL in the middle of a cold sync, then a start. `kipvs agent --once` programs N
// Services into an empty node namespace and is killed when the kernel holds a given share of the
// real servers (one kill per share, each run starting on what the last left); a last run
// completes. The namespace must then hold exactly what one run programs in a fresh namespace:
// no orphan and no missing virtual server, real server, ipset entry, address, link or rule.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NODE_ADDRESS, NODE_ADDRESS_PREFIX } from '../../bench/workload.js';
import { createTestNetns, type TestNetns } from '../lab/netns.js';
import { waitUntil } from '../lab/wait.js';
import { compareKernels, kernelLines, realServerLines, type FingerprintDifference } from './fingerprint.js';
import { expectedRealServers, workloadWith, writeSource } from './source.js';

const cli = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');

export interface KillOptions {
  readonly services: number;
  /** Shares of the real servers (0..1) at which a run is killed, in order. */
  readonly killAt: readonly number[];
  readonly timeoutMs: number;
  readonly progress: (line: string) => void;
}

export interface KillResult {
  /** Share of the real servers the kernel held when each kill landed. */
  readonly killedAt: readonly number[];
  readonly completingRunSeconds: number;
  readonly freshRunSeconds: number;
  readonly kernelLines: number;
  readonly difference: FingerprintDifference;
}

function nodeNamespace(prefix: string): TestNetns {
  const ns = createTestNetns(prefix);
  ns.run('ip', ['link', 'add', 'eth0', 'type', 'dummy']);
  ns.run('ip', ['addr', 'add', `${NODE_ADDRESS}/${String(NODE_ADDRESS_PREFIX)}`, 'dev', 'eth0']);
  ns.run('ip', ['link', 'set', 'eth0', 'up']);
  return ns;
}

const agentArgs = (source: string, ns: TestNetns): string[] => [
  cli,
  'agent',
  '--once',
  '--source',
  source,
  '--netns',
  ns.name,
  '--hostname-override',
  'node-a',
];

function runToCompletion(source: string, ns: TestNetns): number {
  const started = Date.now();
  const result = spawnSync(process.execPath, agentArgs(source, ns), { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0)
    throw new Error(`kipvs agent --once in ${ns.name} failed (${String(result.status)}): ${result.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return (Date.now() - started) / 1000;
}

/** Starts `agent --once` and SIGKILLs it once the kernel holds `share` of the real servers; returns the share held after the kill. */
async function killAt(source: string, ns: TestNetns, share: number, total: number, timeoutMs: number): Promise<number> {
  const child = spawn(process.execPath, agentArgs(source, ns), { stdio: 'ignore' });
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code) => {
      exitCode = code;
      resolve();
    });
  });
  try {
    await waitUntil(
      `${String(Math.round(share * 100))} % of the real servers`,
      () => exitCode !== undefined || realServerLines(ns) >= share * total,
      timeoutMs,
      10,
    );
  } catch (error) {
    throw new Error(`${error instanceof Error ? error.message : String(error)} (the kernel held ${String(realServerLines(ns))} of ${String(total)})`, {
      cause: error,
    });
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
  if (exitCode !== null)
    throw new Error(
      `the agent finished (exit ${String(exitCode)}) before it held ${String(Math.round(share * 100))} % of the real servers: nothing to kill mid-sync`,
    );
  return realServerLines(ns) / total;
}

export async function killMidSync(options: KillOptions): Promise<KillResult> {
  const { services, timeoutMs, progress } = options;
  const source = mkdtempSync(join(tmpdir(), 'kipvs-soak-b-'));
  const killed = nodeNamespace('kipvs-killed');
  let fresh: TestNetns | undefined;
  try {
    writeSource(source, workloadWith(services), []);
    // The workload alone, plus web's two virtual servers with no endpoints.
    const total = expectedRealServers(services, new Set(), 0);
    const killedAt: number[] = [];
    for (const share of options.killAt) {
      killedAt.push(await killAt(source, killed, share, total, timeoutMs));
      progress(
        `(b) SIGKILL at ${String(Math.round(share * 100))} %: the kernel held ${(100 * (killedAt.at(-1) ?? 0)).toFixed(1)} % of ${String(total)} real servers`,
      );
    }
    const completingRunSeconds = runToCompletion(source, killed);
    progress(`(b) a start after the kills converged in ${completingRunSeconds.toFixed(1)} s`);
    fresh = nodeNamespace('kipvs-fresh');
    const freshRunSeconds = runToCompletion(source, fresh);
    progress(`(b) a fresh run in a fresh namespace: ${freshRunSeconds.toFixed(1)} s`);
    const reference = kernelLines(fresh);
    return { killedAt, completingRunSeconds, freshRunSeconds, kernelLines: reference.length, difference: compareKernels(kernelLines(killed), reference) };
  } finally {
    killed.destroy();
    fresh?.destroy();
    rmSync(source, { recursive: true, force: true });
  }
}
