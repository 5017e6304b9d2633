// Soak (a): agent restarts under traffic. A daemon programs N Services plus web; a client keeps
// connecting to web's ClusterIP and NodePort and holds one connection open; the agent is stopped
// again and again, alternating SIGTERM and SIGKILL, every third time in the middle of a sync (a
// change that adds or removes one endpoint of every Service). Asserted by the caller: no failed
// request, the held connection answers after every restart, web's connection counter never goes
// back (a flushed and recreated virtual server counts from zero), every stop meant to land
// mid-sync did.
//
// A stop mid-sync: the change is written and the agent run in slices (step.ts), the table
// (table-watch.ts) looked at while it is frozen between them, until the first of the change's real
// servers is in. The agent is mid-sync when the kernel then holds part of the change and the agent
// has logged no completed sync since the write (the source is several files: a sync could take
// some of them). Then the signal goes to the frozen agent (SIGTERM is handled once it is thawed).
// Otherwise (the whole change landed in one slice) it is thawed, and the next change (back again)
// is tried.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent, type AgentProcess } from '../lab/agent-process.js';
import { openHeld, type HeldConnection } from '../lab/held-connection.js';
import type { TestNetns } from '../lab/netns.js';
import { startSteadyClient, type SteadyClient, type TargetTally } from '../lab/steady-client.js';
import { createTopology } from '../lab/topology.js';
import { sleep, waitUntil } from '../lab/wait.js';
import { completedSyncs, metricsFlags } from './metrics.js';
import { ADDED_PODS_HEX, POD_PORT, WEB_CLUSTER_IP, WEB_NODE_PORT, WEB_PORT, expectedRealServers, workloadWith, writeSource } from './source.js';
import { stepUntil, thaw } from './step.js';
import { watchTable, type TableWatch } from './table-watch.js';

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
  /** Changes written for the mid-sync stops (more than planned when a change landed before the agent was frozen). */
  readonly midSyncChanges: number;
  /** For each stop that landed mid-sync: the real servers of the change the kernel held, of how many. */
  readonly midSyncHeld: readonly string[];
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
/** Changes tried per mid-sync stop before the run gives up (each one that lands before the freeze is undone by the next). */
const MID_SYNC_TRIES = 10;
/**
 * The longest slice while a change is awaited: about a fifth of the time the change takes to land,
 * 1 to 25 ms. The agent sends a sync's requests in a few datagrams back to back (up to half its
 * receive buffer in flight), each applied whole: a change lands at 40 to 100 real servers a
 * millisecond in UML (5 ms slices let 50 to 550 of 3,600 in), so 360 at 300 Services take 4 to 9
 * ms, and 5 ms slices let all of them in, 9 times out of 10 in one CI run. Until the change starts
 * landing the agent reads and translates the source, in slices between looks at the whole table
 * (36,000 lines at 3,000 Services), where 5 ms slices made a mid-sync stop take 2 to 4 minutes.
 */
const changeSliceMs = (changeSize: number): number => Math.min(25, Math.max(1, Math.round(changeSize / 150)));
/** The held connection's longest quiet spell. */
const HEARTBEAT_SECONDS = 20;
/** How long a frozen agent's last log lines are given to arrive through the pipe. */
const LOG_SETTLE_MS = 300;

function webConnections(node: TestNetns): number {
  const line = node
    .run('ipvsadm', ['-Ln', '--stats', '--exact', '-t', `${WEB_CLUSTER_IP}:${String(WEB_PORT)}`])
    .split('\n')
    .find((l) => l.startsWith('TCP'));
  return Number(line?.trim().split(/\s+/)[2] ?? NaN);
}

/** Sends `signal` to a frozen agent, thaws it and awaits its exit; returns the exit code (null when the signal ended it). */
async function stopFrozen(agent: AgentProcess, signal: NodeJS.Signals, timeoutMs: number): Promise<number | null> {
  // stop() sends the signal before its first await: the frozen agent has it pending when it thaws.
  const stopped = agent.stop(signal, timeoutMs);
  thaw(agent);
  return stopped;
}

export async function restartsUnderTraffic(options: RestartOptions): Promise<RestartResult> {
  const { services, restarts, timeoutMs, progress } = options;
  const topology = createTopology(3);
  const source = mkdtempSync(join(tmpdir(), 'kipvs-soak-a-'));
  const pods = topology.pods.map((pod) => pod.address);
  const node = topology.node;
  const allServices = new Set(Array.from({ length: services }, (_, i) => i));
  // The change: every Service's extra endpoint, its real servers in 10.248.0.0/16.
  const changeSize = expectedRealServers(services, { extraFor: allServices }) - expectedRealServers(services);
  let extra = false;
  let agent: AgentProcess | undefined;
  let table: TableWatch | undefined;
  let client: SteadyClient | undefined;
  let held: HeldConnection | undefined;
  const args = [
    '--source',
    source,
    ...metricsFlags(METRICS_PORT),
    // NodePorts on the client's side of the node only (10.200.0.1), not on each pod link.
    '--nodeport-addresses',
    '10.200.0.0/24',
    '--graceful-termination-timeout',
    '0',
  ];
  const start = async (watch: TableWatch): Promise<number> => {
    const started = Date.now();
    const next = startAgent(node, args);
    agent = next;
    const want = expectedRealServers(services, { extraFor: extra ? allServices : new Set() });
    await next.waitFor(
      `the agent's first sync (${String(services)} Services, ${String(want)} real servers)`,
      async () => (await completedSyncs(METRICS_PORT)) >= 1 && watch.realServers() === want,
      timeoutMs,
      200,
    );
    return (Date.now() - started) / 1000;
  };
  /** Writes the change (or its undoing) and freezes the agent while it lands; returns the real servers of it the kernel held, or undefined when it landed whole before the freeze. */
  const freezeMidChange = async (current: AgentProcess, watch: TableWatch): Promise<number | undefined> => {
    const from = watch.realServers(ADDED_PODS_HEX);
    extra = !extra;
    const to = extra ? changeSize : 0;
    const linesBefore = current.lines.length;
    writeSource(source, workloadWith(services, extra ? allServices : new Set()), pods);
    const held = await stepUntil(current, watch, 'the change to start landing', (count) => count !== from, {
      addressPrefixHex: ADDED_PODS_HEX,
      step: Math.max(1, Math.floor(changeSize / 4)),
      maxSliceMs: changeSliceMs(changeSize),
      timeoutMs,
    });
    if (held === undefined) throw new Error(`the agent exited (${String(current.exitCode)}) while a change landed:\n${current.log().slice(-2000)}`);
    await sleep(LOG_SETTLE_MS);
    const syncedSince = current.lines.slice(linesBefore).some((line) => line.msg === 'synced');
    if (held !== to && !syncedSince) return Math.abs(held - from);
    progress(
      `(a) a change missed: ${held === to ? 'it landed whole within one slice' : `a sync completed with ${String(Math.abs(held - from))} of its real servers (the source read in pieces)`}; trying the next`,
    );
    thaw(current);
    await current.waitFor('the change to land', () => watch.realServers(ADDED_PODS_HEX) === to, timeoutMs, 50);
    return undefined;
  };
  try {
    table = await watchTable(node);
    const watch = table;
    await Promise.all(topology.pods.map((pod) => topology.startServer(pod, POD_PORT)));
    writeSource(source, workloadWith(services), pods);
    progress(`(a) programming ${String(services)} Services`);
    const firstSyncSeconds = [await start(watch)];
    // Held for the whole run (bounded: 4 hours), never idle for more than HEARTBEAT_SECONDS: the pod
    // server ends a connection idle for 5 minutes, IPVS forgets one idle for 15 (its TCP timeout),
    // and a mid-sync stop alone took 12 minutes once (three changes on a busy machine).
    const connection = (held = await openHeld(topology.client, WEB_CLUSTER_IP, WEB_PORT, 4 * 3600, HEARTBEAT_SECONDS));
    const traffic = (client = await startSteadyClient(topology.client, [
      { host: WEB_CLUSTER_IP, port: WEB_PORT },
      { host: topology.nodeAddress, port: WEB_NODE_PORT },
    ]));
    const moreAnswers = async (count: number): Promise<void> => {
      const before = traffic.tally().map((t) => t.ok);
      await waitUntil(`${String(count)} more answers from web`, () => traffic.tally().every((t, i) => t.ok >= (before[i] ?? 0) + count), timeoutMs);
    };
    let sigterm = 0;
    let sigkill = 0;
    let midSyncPlanned = 0;
    let midSyncCaught = 0;
    let midSyncChanges = 0;
    const midSyncHeld: string[] = [];
    let heldAnswers = 0;
    let heldFailure: string | undefined;
    const counterWentBack: string[] = [];
    const sigtermExitCodes: (number | null)[] = [];
    for (let i = 0; i < restarts; i++) {
      const signal: NodeJS.Signals = i % 2 === 0 ? 'SIGTERM' : 'SIGKILL';
      const midSync = i % 3 === 2;
      await moreAnswers(5);
      const counterBefore = webConnections(node);
      const current = agent;
      if (!current) throw new Error('no agent to stop');
      let code: number | null;
      let note = '';
      if (midSync) {
        midSyncPlanned++;
        let landed: number | undefined;
        for (let attempt = 1; attempt <= MID_SYNC_TRIES && landed === undefined; attempt++) {
          midSyncChanges++;
          landed = await freezeMidChange(current, watch);
        }
        if (landed === undefined) {
          // Every change landed before the freeze: stopped after the last one, not mid-sync.
          code = await current.stop(signal, timeoutMs);
          note = `, meant mid-sync: ${String(MID_SYNC_TRIES)} changes landed before the freeze`;
        } else {
          midSyncCaught++;
          midSyncHeld.push(`${String(landed)}/${String(changeSize)}`);
          code = await stopFrozen(current, signal, timeoutMs);
          note = `, mid-sync: ${String(landed)} of ${String(changeSize)} changed real servers in`;
        }
      } else code = await current.stop(signal, timeoutMs);
      if (signal === 'SIGTERM') {
        sigterm++;
        sigtermExitCodes.push(code);
      } else sigkill++;
      firstSyncSeconds.push(await start(watch));
      const counterAfter = webConnections(node);
      if (counterAfter < counterBefore) counterWentBack.push(`restart ${String(i + 1)}: ${String(counterBefore)} → ${String(counterAfter)}`);
      if (heldFailure === undefined) {
        try {
          const answer = await connection.echo(`restart ${String(i + 1)}`);
          if (answer === `${connection.backend} restart ${String(i + 1)}`) heldAnswers++;
          else heldFailure = `restart ${String(i + 1)}: answered ${answer}`;
        } catch (error) {
          heldFailure = `restart ${String(i + 1)}: ${error instanceof Error ? error.message : String(error)}`;
        }
      }
      progress(`(a) restart ${String(i + 1)}/${String(restarts)} (${signal}${note}): synced again in ${(firstSyncSeconds.at(-1) ?? 0).toFixed(1)} s`);
    }
    await moreAnswers(5);
    client = undefined;
    const tally = await traffic.stop();
    return {
      restarts,
      sigterm,
      sigkill,
      midSyncPlanned,
      midSyncCaught,
      midSyncChanges,
      midSyncHeld,
      traffic: tally,
      heldAnswers,
      ...(heldFailure ? { heldFailure } : {}),
      counterWentBack,
      firstSyncSeconds,
      sigtermExitCodes,
    };
  } finally {
    held?.close();
    await client?.stop();
    // SIGKILL ends a frozen agent too.
    await agent?.stop('SIGKILL');
    table?.close();
    topology.destroy();
    rmSync(source, { recursive: true, force: true });
  }
}
