// Soak (b): SIGKILL in the middle of a cold sync, then a start. `kipvs agent --once` programs N
// Services into an empty node namespace and is killed when the kernel holds a given share of the
// real servers (one kill per share, each run starting on what the last left); a last run
// completes. The namespace must then hold exactly what one run programs in a fresh namespace:
// no orphan and no missing virtual server, real server, ipset entry, address, link or rule.
//
// The agent runs in slices (step.ts), the table (table-watch.ts) looked at while it is frozen
// between them; the kill goes to the frozen agent at the first look that sees the share, so the
// kernel holds exactly what that look saw. A kill counts only when real servers were still
// missing; a run that got them all in before (or finished) is no kill mid-sync, and the kills
// start over in a new namespace.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NODE_ADDRESS, NODE_ADDRESS_PREFIX } from '../../bench/workload.js';
import { startAgent, type AgentProcess } from '../lab/agent-process.js';
import { createTestNetns, type TestNetns } from '../lab/netns.js';
import { waitUntil } from '../lab/wait.js';
import { stepUntil } from './step.js';
import { compareKernels, kernelLines, type FingerprintDifference } from './fingerprint.js';
import { expectedRealServers, workloadWith, writeSource } from './source.js';
import { watchTable, type TableWatch } from './table-watch.js';

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
  /** Series of kills made: more than 1 when a run outran the watch and the kills started over. */
  readonly attempts: number;
  readonly completingRunSeconds: number;
  readonly freshRunSeconds: number;
  readonly kernelLines: number;
  readonly difference: FingerprintDifference;
}

/** Series of kills tried before the run gives up. */
const ATTEMPTS = 3;

function nodeNamespace(prefix: string): TestNetns {
  const ns = createTestNetns(prefix);
  try {
    ns.run('ip', ['link', 'add', 'eth0', 'type', 'dummy']);
    ns.run('ip', ['addr', 'add', `${NODE_ADDRESS}/${String(NODE_ADDRESS_PREFIX)}`, 'dev', 'eth0']);
    ns.run('ip', ['link', 'set', 'eth0', 'up']);
  } catch (error) {
    ns.destroy();
    throw error;
  }
  return ns;
}

const once = (ns: TestNetns, source: string): AgentProcess => startAgent(ns, ['--once', '--source', source]);

const tail = (agent: AgentProcess): string => agent.log().trim().split('\n').slice(-5).join('\n');

/** `agent --once` to completion; returns its duration (s). */
async function runToCompletion(source: string, ns: TestNetns, timeoutMs: number): Promise<number> {
  const started = Date.now();
  const agent = once(ns, source);
  try {
    await waitUntil(`agent --once in ${ns.name} to finish`, () => !agent.running, timeoutMs, 100);
  } finally {
    await agent.stop('SIGKILL');
  }
  if (agent.exitCode !== 0) throw new Error(`agent --once in ${ns.name} failed (exit ${String(agent.exitCode)}):\n${tail(agent)}`);
  return (Date.now() - started) / 1000;
}

/**
 * Starts `agent --once`, runs it in slices (step.ts) until the frozen kernel holds `share` of the
 * real servers, and SIGKILLs it there; returns the share held, or undefined when the run got every
 * real server in first (a slice let the rest in, or it finished).
 */
async function killAt(source: string, ns: TestNetns, table: TableWatch, share: number, total: number, timeoutMs: number): Promise<number | undefined> {
  const agent = once(ns, source);
  let seen: number | undefined;
  try {
    seen = await stepUntil(agent, table, `${String(Math.round(share * 100))} % of the real servers`, (count) => count >= share * total, {
      step: Math.max(1, Math.floor(total / 100)),
      timeoutMs,
    });
  } finally {
    // SIGKILL ends a frozen agent too.
    await agent.stop('SIGKILL');
  }
  if (seen === undefined) {
    if (agent.exitCode === 0) return undefined;
    throw new Error(`agent --once in ${ns.name} failed (exit ${String(agent.exitCode)}):\n${tail(agent)}`);
  }
  const held = table.realServers();
  if (held !== seen) throw new Error(`the table changed while the agent was frozen: ${String(seen)} real servers, then ${String(held)}`);
  return held < total ? held / total : undefined;
}

export async function killMidSync(options: KillOptions): Promise<KillResult> {
  const { services, timeoutMs, progress } = options;
  const source = mkdtempSync(join(tmpdir(), 'kipvs-soak-b-'));
  let killed: TestNetns | undefined;
  let table: TableWatch | undefined;
  let fresh: TestNetns | undefined;
  try {
    // The workload alone: no web (no pods to send traffic to).
    writeSource(source, workloadWith(services), []);
    const total = expectedRealServers(services, { pods: 0 });
    let killedAt: number[] = [];
    let attempts = 0;
    while (killedAt.length < options.killAt.length) {
      if (++attempts > ATTEMPTS) throw new Error(`in ${String(ATTEMPTS)} series of kills, a run got every real server in before its kill`);
      table?.close();
      killed?.destroy();
      killed = nodeNamespace('kipvs-killed');
      table = await watchTable(killed);
      killedAt = [];
      for (const share of options.killAt) {
        const at = await killAt(source, killed, table, share, total, timeoutMs);
        if (at === undefined) {
          progress(`(b) the run meant to be killed at ${String(Math.round(share * 100))} % got all ${String(total)} real servers in first: starting over`);
          break;
        }
        killedAt.push(at);
        progress(`(b) SIGKILL at ${String(Math.round(share * 100))} %: the kernel held ${(100 * at).toFixed(1)} % of ${String(total)} real servers`);
      }
    }
    if (!killed) throw new Error('no namespace was killed in');
    const completingRunSeconds = await runToCompletion(source, killed, timeoutMs);
    progress(`(b) a start after the kills converged in ${completingRunSeconds.toFixed(1)} s`);
    fresh = nodeNamespace('kipvs-fresh');
    const freshRunSeconds = await runToCompletion(source, fresh, timeoutMs);
    progress(`(b) a fresh run in a fresh namespace: ${freshRunSeconds.toFixed(1)} s`);
    const reference = kernelLines(fresh);
    return {
      killedAt,
      attempts,
      completingRunSeconds,
      freshRunSeconds,
      kernelLines: reference.length,
      difference: compareKernels(kernelLines(killed), reference),
    };
  } finally {
    table?.close();
    killed?.destroy();
    fresh?.destroy();
    rmSync(source, { recursive: true, force: true });
  }
}
