// Soak (a): agent restarts under traffic. A daemon programs N Services plus web; a client keeps
// connecting to web's ClusterIP and NodePort and holds one connection open; the agent is stopped
// again and again, alternating SIGTERM and SIGKILL, every third time in the middle of a sync (a
// change that adds or removes one endpoint of every Service). Asserted by the caller: no failed
// request, the held connection answers after every restart, web's connection counter never goes
// back (a flushed and recreated virtual server counts from zero).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openHeld } from '../lab/held-connection.js';
import type { TestNetns } from '../lab/netns.js';
import { startSteadyClient, type TargetTally } from '../lab/steady-client.js';
import { createTopology } from '../lab/topology.js';
import { waitUntil } from '../lab/wait.js';
import { startAgent, type AgentProcess } from './agent.js';
import { realServerLines } from './fingerprint.js';
import { ADDED_PODS_HEX, POD_PORT, WEB_CLUSTER_IP, WEB_NODE_PORT, WEB_PORT, expectedRealServers, workloadWith, writeSource } from './source.js';

export interface RestartOptions {
  readonly services: number;
  readonly restarts: number;
  /** Deadline for each wait (first sync after a start, a sync to land). */
  readonly timeoutMs: number;
  readonly progress: (line: string) => void;
}

export interface RestartResult {
  readonly restarts: number;
  readonly sigterm: number;
  readonly sigkill: number;
  /** Stops meant to land mid-sync, and those that did (the kernel held part of the change). */
  readonly midSyncPlanned: number;
  readonly midSyncCaught: number;
  readonly traffic: readonly TargetTally[];
  readonly heldAnswers: number;
  readonly heldFailure?: string;
  /** Web's ClusterIP connection counter before and after each restart; it must never go back. */
  readonly counterWentBack: readonly string[];
  /** Seconds from each start to its first completed sync. */
  readonly firstSyncSeconds: readonly number[];
  readonly sigtermExitCodes: readonly (number | null)[];
}

const METRICS_PORT = 20249;

function webConnections(node: TestNetns): number {
  const line = node
    .run('ipvsadm', ['-Ln', '--stats', '--exact', '-t', `${WEB_CLUSTER_IP}:${String(WEB_PORT)}`])
    .split('\n')
    .find((l) => l.startsWith('TCP'));
  return Number(line?.trim().split(/\s+/)[2] ?? NaN);
}

export async function restartsUnderTraffic(options: RestartOptions): Promise<RestartResult> {
  const { services, restarts, timeoutMs, progress } = options;
  const topology = createTopology(3);
  const source = mkdtempSync(join(tmpdir(), 'kipvs-soak-a-'));
  const pods = topology.pods.map((pod) => pod.address);
  const node = topology.node;
  const allServices = new Set(Array.from({ length: services }, (_, i) => i));
  let extra = false;
  let agent: AgentProcess | undefined;
  const start = async (): Promise<number> => {
    const started = Date.now();
    const next = startAgent({
      source,
      netns: node.name,
      metricsPort: METRICS_PORT,
      extraArgs: ['--nodeport-addresses', '10.200.0.0/24', '--graceful-termination-timeout', '0'],
    });
    agent = next;
    const want = expectedRealServers(services, extra ? allServices : new Set());
    await waitUntil(
      `the agent's first sync (${String(services)} Services)`,
      async () => (await next.syncs()) >= 1 && realServerLines(node) === want,
      timeoutMs,
      200,
    ).catch((error: unknown) => {
      throw new Error(`${error instanceof Error ? error.message : String(error)}; agent log: ${next.log().slice(-2000)}`);
    });
    return (Date.now() - started) / 1000;
  };
  try {
    await Promise.all(topology.pods.map((pod) => topology.startServer(pod, POD_PORT)));
    writeSource(source, workloadWith(services), pods);
    progress(`(a) programming ${String(services)} Services`);
    const firstSyncSeconds = [await start()];
    const held = await openHeld(topology.client, WEB_CLUSTER_IP, WEB_PORT, 3600);
    const client = await startSteadyClient(topology.client, [
      { host: WEB_CLUSTER_IP, port: WEB_PORT },
      { host: topology.nodeAddress, port: WEB_NODE_PORT },
    ]);
    const moreAnswers = async (count: number): Promise<void> => {
      const before = client.tally().map((t) => t.ok);
      await waitUntil(`${String(count)} more answers from web`, () => client.tally().every((t, i) => t.ok >= (before[i] ?? 0) + count), timeoutMs);
    };
    let sigterm = 0;
    let sigkill = 0;
    let midSyncPlanned = 0;
    let midSyncCaught = 0;
    let heldAnswers = 0;
    let heldFailure: string | undefined;
    const counterWentBack: string[] = [];
    const sigtermExitCodes: (number | null)[] = [];
    for (let i = 0; i < restarts; i++) {
      const signal: NodeJS.Signals = i % 2 === 0 ? 'SIGTERM' : 'SIGKILL';
      await moreAnswers(5);
      const counterBefore = webConnections(node);
      if (i % 3 === 2) {
        midSyncPlanned++;
        const from = realServerLines(node, ADDED_PODS_HEX);
        extra = !extra;
        writeSource(source, workloadWith(services, extra ? allServices : new Set()), pods);
        const to = extra ? expectedRealServers(services, allServices) - expectedRealServers(services) : 0;
        // Stop it once the kernel holds part of the change: some of the added (or removed) real servers.
        await waitUntil('the change to start landing', () => realServerLines(node, ADDED_PODS_HEX) !== from, timeoutMs, 20);
        const partial = realServerLines(node, ADDED_PODS_HEX);
        if (partial !== to) midSyncCaught++;
      }
      const current = agent;
      if (!current) throw new Error('no agent to stop');
      const code = await current.stop(signal);
      if (signal === 'SIGTERM') {
        sigterm++;
        sigtermExitCodes.push(code);
      } else sigkill++;
      firstSyncSeconds.push(await start());
      const counterAfter = webConnections(node);
      if (counterAfter < counterBefore) counterWentBack.push(`restart ${String(i + 1)}: ${String(counterBefore)} → ${String(counterAfter)}`);
      if (heldFailure === undefined) {
        try {
          const answer = await held.echo(`restart ${String(i + 1)}`);
          if (answer === `${held.backend} restart ${String(i + 1)}`) heldAnswers++;
          else heldFailure = `restart ${String(i + 1)}: answered ${answer}`;
        } catch (error) {
          heldFailure = `restart ${String(i + 1)}: ${error instanceof Error ? error.message : String(error)}`;
        }
      }
      progress(
        `(a) restart ${String(i + 1)}/${String(restarts)} (${signal}${i % 3 === 2 ? ', mid-sync' : ''}): synced again in ${(firstSyncSeconds.at(-1) ?? 0).toFixed(1)} s`,
      );
    }
    await moreAnswers(5);
    const traffic = await client.stop();
    held.close();
    return {
      restarts,
      sigterm,
      sigkill,
      midSyncPlanned,
      midSyncCaught,
      traffic,
      heldAnswers,
      ...(heldFailure ? { heldFailure } : {}),
      counterWentBack,
      firstSyncSeconds,
      sigtermExitCodes,
    };
  } finally {
    await agent?.stop('SIGKILL');
    topology.destroy();
    rmSync(source, { recursive: true, force: true });
  }
}
