// Issue 11, failure 2: a source file rewritten 20 times a second for 60 s (always 8 of 10
// endpoints ready) with traffic. The agent keeps syncing throughout, and no new connection
// reaches a removed endpoint later than 2 s after its removal was written.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defined } from '../support/defined.js';
import { Teardown } from './helpers/teardown.js';
import type { Topology } from './helpers/topology.js';
import { GENEROUS_MS } from './helpers/wait.js';

const PODS = 10;
const CHURN_MS = 60_000;
const WRITE_EVERY_MS = 50;
/** Endpoint membership changes every 3 s (two pods out); every write changes the slice. */
const WINDOW_MS = 3_000;
const METRICS = '127.0.0.1:10399';

function objects(removed: ReadonlySet<number>, generation: number): string {
  const endpoints = Array.from({ length: PODS }, (_, i) => i)
    .filter((i) => !removed.has(i))
    .map((i) => `  - addresses: [10.201.${i}.2]\n    conditions: { ready: true, serving: true, terminating: false }\n    nodeName: node-a\n`)
    .join('');
  return (
    `apiVersion: v1\nkind: Service\nmetadata: { name: web, namespace: default }\nspec:\n  clusterIP: 10.96.0.10\n  ports: [{ name: http, protocol: TCP, port: 80, targetPort: 8080 }]\n---\n` +
    `apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-1\n  namespace: default\n  labels: { kubernetes.io/service-name: web, churn: "${generation}" }\n` +
    `addressType: IPv4\nports: [{ name: http, protocol: TCP, port: 8080 }]\nendpoints:\n${endpoints}`
  );
}

const removedAt = (window: number): Set<number> => new Set([(2 * window) % PODS, (2 * window + 1) % PODS]);

async function lastSyncSeconds(): Promise<number | undefined> {
  try {
    const text = await (await fetch(`http://${METRICS}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
    const match = /^kubeproxy_sync_proxy_rules_last_timestamp_seconds\{[^}]*\} (\S+)$/m.exec(text);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

describe('kipvs agent under a stream of source changes', () => {
  let topology: Topology;
  let sourceDir: string;
  const teardown = new Teardown();

  beforeAll(async () => {
    topology = teardown.createTopology(PODS, { kipvsCleanup: true });
    await Promise.all(topology.pods.map((pod) => topology.startServer(pod, 8080)));
    sourceDir = teardown.makeTempDir('kipvs-churn-');
    // Ten pod namespaces and servers: slow in User-Mode Linux on a busy machine.
  }, 600_000);
  afterAll(() => teardown.run());

  it('keeps syncing, and stops sending new connections to a removed endpoint within 2 s', { timeout: 600_000 }, async () => {
    const file = join(sourceDir, 'web.yaml');
    writeFileSync(file, objects(new Set(), 0));
    // Its log goes on to the test's output, as it comes.
    const agent = teardown.startAgent(topology.node, ['--source', sourceDir, '--metrics-bind-address', METRICS, '--healthz-bind-address', ''], { echo: true });
    await agent.waitFor(
      'first sync',
      async () => (await lastSyncSeconds()) !== undefined && topology.node.run('ipvsadm', ['-Ln']).includes('10.201.9.2:8080'),
      GENEROUS_MS,
      200,
    );

    const lines: string[] = [];
    const stream = spawn(
      'ip',
      [
        'netns',
        'exec',
        topology.client.name,
        process.execPath,
        join(import.meta.dirname, 'helpers', 'tcp-stream.mjs'),
        '10.96.0.10',
        '80',
        String(CHURN_MS + 2_000),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    teardown.add(() => stream.kill('SIGKILL'));
    let buffered = '';
    stream.stdout.on('data', (data: Buffer) => {
      buffered += data.toString();
      const complete = buffered.split('\n');
      buffered = complete.pop() ?? '';
      lines.push(...complete.filter(Boolean));
    });
    const trafficDone = new Promise((resolve) => {
      stream.once('exit', resolve);
    });

    // The writer: every 50 ms, the slice with a new label; the removed pair moves every 3 s.
    // removal[pod] = when the write that took it out happened (while it stays out).
    const removal = new Map<number, number>();
    const history: { at: number; removed: Set<number> }[] = [];
    const syncSamples: number[] = [];
    const churnStart = Date.now();
    let generation = 0;
    let nextSample = churnStart;
    while (Date.now() - churnStart < CHURN_MS) {
      const removed = removedAt(Math.floor((Date.now() - churnStart) / WINDOW_MS));
      const at = Date.now();
      writeFileSync(file, objects(removed, ++generation));
      history.push({ at, removed });
      for (const pod of removed) if (!removal.has(pod)) removal.set(pod, at);
      for (const pod of [...removal.keys()]) if (!removed.has(pod)) removal.delete(pod);
      if (Date.now() >= nextSample) {
        nextSample += 1000;
        const last = await lastSyncSeconds();
        if (last !== undefined) syncSamples.push(last);
      }
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, at + WRITE_EVERY_MS - Date.now())));
    }
    const churnEnd = Date.now();
    await trafficDone;

    // Syncs kept happening: the last-sync time moved on through the whole churn.
    const distinct = [...new Set(syncSamples)].sort();
    expect(distinct.length).toBeGreaterThanOrEqual(20);
    const gaps = distinct.slice(1).map((value, i) => value - defined(distinct[i], 'the sync time before'));
    expect(Math.max(...gaps)).toBeLessThan(5);
    expect(defined(distinct.at(-1), 'the last sync time') * 1000).toBeGreaterThan(churnEnd - 5_000);

    // Each connection opened during the churn: where was its backend at that moment?
    const connections = lines.map((line) => JSON.parse(line) as { at: number; name?: string; failed?: string });
    const during = connections.filter((c) => c.at >= churnStart && c.at <= churnEnd);
    expect(during.length).toBeGreaterThan(100);
    const late: string[] = [];
    for (const connection of during) {
      if (connection.name === undefined) continue;
      const pod = Number(connection.name.replace('pod', ''));
      // The write that removed this pod for the stretch that contains `at`, if it was out.
      let removedSince: number | undefined;
      for (const write of history) {
        if (write.at > connection.at) break;
        if (write.removed.has(pod)) removedSince ??= write.at;
        else removedSince = undefined;
      }
      if (removedSince !== undefined && connection.at - removedSince > 2_000) late.push(`${connection.name} at +${connection.at - removedSince} ms`);
    }
    const failed = during.filter((c) => c.failed !== undefined).length;
    console.log(`churn: ${generation} writes, ${distinct.length} syncs seen, ${during.length} connections, ${failed} failed, ${late.length} late`);
    expect(late).toEqual([]);
    expect(failed).toBe(0);
  });
});
