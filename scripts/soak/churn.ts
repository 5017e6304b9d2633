// Soak (c): endpoint churn with traffic. A daemon programs N Services plus web; every
// CHANGE_INTERVAL one Kubernetes namespace's file (100 Services) is rewritten with one endpoint
// added to, or taken from, each of its Services, while a client keeps connecting to web. The
// agent's RSS and heap (its own metrics) are sampled every SAMPLE_INTERVAL; after a warm-up (the
// first fifth of the run, two minutes of ten) they must not grow by more than 10 %.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent, type AgentProcess } from '../lab/agent-process.js';
import { startSteadyClient, type SteadyClient, type TargetTally } from '../lab/steady-client.js';
import { createTopology } from '../lab/topology.js';
import { sleep } from '../lab/wait.js';
import { completedSyncs, metricValue, metricsFlags, scrapeMetrics } from './metrics.js';
import { POD_PORT, WEB_CLUSTER_IP, WEB_NODE_PORT, WEB_PORT, expectedRealServers, workloadWith, writeSource } from './source.js';
import { watchTable, type TableWatch } from './table-watch.js';

const METRICS_PORT = 20250;
const CHANGE_INTERVAL_MS = 500;
const SAMPLE_INTERVAL_MS = 5_000;
const SERVICES_PER_FILE = 100;

export interface ChurnOptions {
  readonly services: number;
  readonly durationMs: number;
  readonly timeoutMs: number;
  readonly progress: (line: string) => void;
}

export interface MemorySample {
  readonly atSeconds: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
}

export interface ChurnResult {
  readonly durationSeconds: number;
  readonly changes: number;
  readonly syncs: number;
  readonly traffic: readonly TargetTally[];
  readonly samples: readonly MemorySample[];
  /** The mean of each whole minute's samples (minute 1 is the first). */
  readonly minutes: readonly MemorySample[];
  /** Mean of the samples in the window after warm-up, and of the last window of the same length. */
  readonly rss: { readonly after: number; readonly end: number; readonly growth: number };
  readonly heap: { readonly after: number; readonly end: number; readonly growth: number };
}

const mean = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0) / Math.max(values.length, 1);

function growth(samples: readonly MemorySample[], pick: (s: MemorySample) => number, durationSeconds: number): { after: number; end: number; growth: number } {
  // Warm-up: the first fifth. Windows: a tenth of the run each (a minute of ten), so GC swings average out.
  const warmUp = durationSeconds / 5;
  const window = durationSeconds / 10;
  const after = mean(samples.filter((s) => s.atSeconds >= warmUp && s.atSeconds < warmUp + window).map(pick));
  const end = mean(samples.filter((s) => s.atSeconds >= durationSeconds - window).map(pick));
  return { after, end, growth: after > 0 ? end / after - 1 : NaN };
}

function perMinute(samples: readonly MemorySample[], durationSeconds: number): MemorySample[] {
  const minutes: MemorySample[] = [];
  for (let minute = 1; minute * 60 <= durationSeconds + 1; minute++) {
    const inMinute = samples.filter((s) => s.atSeconds >= (minute - 1) * 60 && s.atSeconds < minute * 60);
    if (inMinute.length === 0) continue;
    minutes.push({ atSeconds: minute * 60, rssBytes: mean(inMinute.map((s) => s.rssBytes)), heapUsedBytes: mean(inMinute.map((s) => s.heapUsedBytes)) });
  }
  return minutes;
}

export async function churnWithTraffic(options: ChurnOptions): Promise<ChurnResult> {
  const { services, durationMs, timeoutMs, progress } = options;
  const topology = createTopology(3);
  const source = mkdtempSync(join(tmpdir(), 'kipvs-soak-c-'));
  const pods = topology.pods.map((pod) => pod.address);
  let agent: AgentProcess | undefined;
  let table: TableWatch | undefined;
  let client: SteadyClient | undefined;
  try {
    const watch = (table = await watchTable(topology.node));
    await Promise.all(topology.pods.map((pod) => topology.startServer(pod, POD_PORT)));
    writeSource(source, workloadWith(services), pods);
    const started = (agent = startAgent(topology.node, [
      '--source',
      source,
      ...metricsFlags(METRICS_PORT),
      '--nodeport-addresses',
      '10.200.0.0/24',
      '--graceful-termination-timeout',
      '0',
    ]));
    const want = expectedRealServers(services);
    await started.waitFor(
      `the agent's first sync (${String(services)} Services, ${String(want)} real servers)`,
      async () => (await completedSyncs(METRICS_PORT)) >= 1 && watch.realServers() === want,
      timeoutMs,
      200,
    );
    progress(`(c) ${String(services)} Services programmed; churning for ${String(Math.round(durationMs / 1000))} s`);
    const traffic = (client = await startSteadyClient(topology.client, [
      { host: WEB_CLUSTER_IP, port: WEB_PORT },
      { host: topology.nodeAddress, port: WEB_NODE_PORT },
    ]));
    const files = Math.ceil(services / SERVICES_PER_FILE);
    const withExtra = new Set<number>();
    const samples: MemorySample[] = [];
    const begin = Date.now();
    let changes = 0;
    let nextSample = begin;
    let nextReport = 60;
    while (Date.now() - begin < durationMs) {
      // One namespace's file: its Services toggle their extra endpoint.
      const file = changes % files;
      const inFile = new Set<number>();
      for (let index = file * SERVICES_PER_FILE; index < Math.min(services, (file + 1) * SERVICES_PER_FILE); index++) {
        inFile.add(index);
        if (withExtra.has(index)) withExtra.delete(index);
        else withExtra.add(index);
      }
      writeSource(source, workloadWith(services, withExtra, changes + 2), pods, inFile);
      changes++;
      if (Date.now() >= nextSample) {
        if (!started.running) throw new Error(`the agent exited (${String(started.exitCode)}) during the churn:\n${started.log().slice(-2000)}`);
        const text = await scrapeMetrics(METRICS_PORT);
        const rssBytes = metricValue(text, 'process_resident_memory_bytes');
        const heapUsedBytes = metricValue(text, 'nodejs_heap_size_used_bytes');
        if (rssBytes !== undefined && heapUsedBytes !== undefined) samples.push({ atSeconds: (Date.now() - begin) / 1000, rssBytes, heapUsedBytes });
        // On a busy machine a loop can take longer than a sample interval: no burst of samples after it.
        nextSample = Math.max(nextSample + SAMPLE_INTERVAL_MS, Date.now());
        const seconds = Math.round((Date.now() - begin) / 1000);
        if (seconds >= nextReport) {
          nextReport += 60;
          progress(
            `(c) ${String(seconds)} s: ${String(changes)} changes, RSS ${((rssBytes ?? 0) / 2 ** 20).toFixed(1)} MiB, heap used ${((heapUsedBytes ?? 0) / 2 ** 20).toFixed(1)} MiB`,
          );
        }
      }
      await sleep(CHANGE_INTERVAL_MS);
    }
    const durationSeconds = (Date.now() - begin) / 1000;
    const syncs = await completedSyncs(METRICS_PORT);
    client = undefined;
    const tally = await traffic.stop();
    return {
      durationSeconds,
      changes,
      syncs,
      traffic: tally,
      samples,
      minutes: perMinute(samples, durationSeconds),
      rss: growth(samples, (s) => s.rssBytes, durationSeconds),
      heap: growth(samples, (s) => s.heapUsedBytes, durationSeconds),
    };
  } finally {
    await client?.stop();
    await agent?.stop('SIGKILL');
    table?.close();
    topology.destroy();
    rmSync(source, { recursive: true, force: true });
  }
}
