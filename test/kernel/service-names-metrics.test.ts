// Beyond kube-proxy: Service names in `kipvs inspect` (from the agent's record in /run/kipvs, with
// the agent stopped) and per-Service traffic metrics, checked against ipvsadm after real traffic.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runKipvs as kipvs, type AgentProcess } from './helpers/agent-process.js';
import { defined } from '../support/defined.js';
import { Teardown } from './helpers/teardown.js';
import type { Topology } from './helpers/topology.js';
import { GENEROUS_MS, waitUntil } from './helpers/wait.js';
import { parseExposition } from '../support/prometheus.js';

const METRICS = '127.0.0.1:20349';

const SOURCE = `apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  type: NodePort
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10]
  ports: [{ name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30080 }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-abc, namespace: shop, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
ports: [{ name: http, protocol: TCP, port: 8080 }]
endpoints:
  - { addresses: [10.201.0.2], conditions: { ready: true }, nodeName: node-a, targetRef: { kind: Pod, name: web-0, namespace: shop } }
  - { addresses: [10.201.1.2], conditions: { ready: true }, nodeName: node-a, targetRef: { kind: Pod, name: web-1, namespace: shop } }
---
apiVersion: v1
kind: Service
metadata: { name: api, namespace: shop }
spec:
  clusterIP: 10.96.0.20
  clusterIPs: [10.96.0.20]
  ports: [{ protocol: TCP, port: 443, targetPort: 8080 }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: api-abc, namespace: shop, labels: { kubernetes.io/service-name: api } }
addressType: IPv4
ports: [{ protocol: TCP, port: 8080 }]
endpoints:
  - { addresses: [10.201.1.2], conditions: { ready: true }, nodeName: node-a, targetRef: { kind: Pod, name: web-1, namespace: shop } }
`;

interface Counters {
  conns: number;
  inPackets: number;
  outPackets: number;
  inBytes: number;
  outBytes: number;
}

/** `ipvsadm -Ln --stats --exact`, the virtual server lines: the independent oracle. */
function ipvsadmStats(topology: Topology): Map<string, Counters> {
  const stats = new Map<string, Counters>();
  for (const line of topology.node.run('ipvsadm', ['-Ln', '--stats', '--exact']).split('\n')) {
    const match = /^TCP {2}(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/.exec(line);
    if (!match) continue;
    const [, frontend, conns, inPackets, outPackets, inBytes, outBytes] = match.map(String);
    stats.set(defined(frontend, 'the virtual server of a stats line'), {
      conns: Number(conns),
      inPackets: Number(inPackets),
      outPackets: Number(outPackets),
      inBytes: Number(inBytes),
      outBytes: Number(outBytes),
    });
  }
  return stats;
}

describe('Service names and per-Service traffic', () => {
  let topology: Topology;
  let sourceDir: string;
  let agent: AgentProcess;
  const teardown = new Teardown();

  beforeAll(async () => {
    topology = teardown.createTopology(2);
    await Promise.all(topology.pods.map((pod) => topology.startServer(pod, 8080)));
    sourceDir = teardown.makeTempDir('kipvs-source-');
    writeFileSync(join(sourceDir, 'services.yaml'), SOURCE);
    agent = teardown.startAgent(topology.node, [
      '--source',
      sourceDir,
      '--healthz-bind-address',
      '',
      '--metrics-bind-address',
      METRICS,
      '--metrics-per-endpoint',
    ]);
    await agent.waitFor('the first sync', () => topology.node.run('ipvsadm', ['-Ln']).includes('10.96.0.20:443'), GENEROUS_MS, 200);
  });
  afterAll(() => teardown.run());

  it('counts the traffic of each Service port as ipvsadm --stats does, summed over its virtual servers', async () => {
    expect(topology.request('10.96.0.10', 80, 6).failures).toBe(0);
    expect(topology.request(topology.nodeAddress, 30080, 4).failures).toBe(0);
    expect(topology.request('10.96.0.20', 443, 3).failures).toBe(0);
    const webFrontends = (stats: Map<string, Counters>): Counters[] =>
      [...stats].filter(([frontend]) => frontend === '10.96.0.10:80' || frontend.endsWith(':30080')).map(([, c]) => c);
    const sum = (list: Counters[]): Counters =>
      list.reduce((a, b) => ({
        conns: a.conns + b.conns,
        inPackets: a.inPackets + b.inPackets,
        outPackets: a.outPackets + b.outPackets,
        inBytes: a.inBytes + b.inBytes,
        outBytes: a.outBytes + b.outBytes,
      }));
    // The kernel folds its per-CPU counters into the totals every 2 s (the estimator): wait for every connection.
    await waitUntil(
      'the counters include every connection',
      () => sum(webFrontends(ipvsadmStats(topology))).conns === 10 && ipvsadmStats(topology).get('10.96.0.20:443')?.conns === 3,
      GENEROUS_MS,
      200,
    );
    // And the packets of their last FINs: the counters stay the same across two estimator ticks.
    let seen = JSON.stringify([...ipvsadmStats(topology)]);
    let unchangedSince = Date.now();
    await waitUntil(
      'the counters stop changing for 4.5 s',
      () => {
        const now = JSON.stringify([...ipvsadmStats(topology)]);
        if (now !== seen) [seen, unchangedSince] = [now, Date.now()];
        return Date.now() - unchangedSince >= 4_500;
      },
      GENEROUS_MS,
      250,
    );
    const before = ipvsadmStats(topology);
    const response = await fetch(`http://${METRICS}/metrics`);
    const families = parseExposition(await response.text());
    const after = ipvsadmStats(topology);
    expect(after, 'the kernel counted nothing more meanwhile').toEqual(before);
    const value = (name: string, labels: Record<string, string>): number | undefined =>
      families.get(name)?.samples.find((sample) => Object.entries(labels).every(([k, v]) => sample.labels[k] === v))?.value;
    const web = { namespace: 'shop', service: 'web', port: 'http', protocol: 'TCP' };
    const api = { namespace: 'shop', service: 'api', port: '443', protocol: 'TCP' };
    for (const [labels, expected] of [
      [web, sum(webFrontends(before))],
      [api, defined(before.get('10.96.0.20:443'), 'the stats of 10.96.0.20:443')],
    ] as const) {
      expect({
        conns: value('kipvs_service_connections_total', labels),
        inPackets: value('kipvs_service_in_packets_total', labels),
        outPackets: value('kipvs_service_out_packets_total', labels),
        inBytes: value('kipvs_service_in_bytes_total', labels),
        outBytes: value('kipvs_service_out_bytes_total', labels),
      }).toEqual(expected);
    }
    expect(families.get('kipvs_service_connections_total')?.type).toBe('counter');
    // Per endpoint: the connections IPVS holds (closed ones wait in TIME_WAIT: inactive), as ipvsadm -Ln shows them.
    const held = (endpoint: string): number =>
      topology.node
        .run('ipvsadm', ['-Ln'])
        .split('\n')
        .filter((line) => line.includes(`-> ${endpoint}`))
        .reduce((total, line) => total + Number(line.trim().split(/\s+/)[4]) + Number(line.trim().split(/\s+/)[5]), 0);
    const gauges = (endpoint: string): number =>
      ['kipvs_service_endpoint_active_connections', 'kipvs_service_endpoint_inactive_connections']
        .flatMap((name) => families.get(name)?.samples.filter((sample) => sample.labels.endpoint === endpoint) ?? [])
        .reduce((total, sample) => total + sample.value, 0);
    expect(gauges('10.201.0.2:8080')).toBe(held('10.201.0.2:8080'));
    expect(gauges('10.201.1.2:8080')).toBe(held('10.201.1.2:8080'));
    expect(gauges('10.201.0.2:8080')).toBeGreaterThan(0);
  });

  it('names each virtual server and real server from the agent’s record, with the agent stopped', async () => {
    await agent.stop('SIGTERM');
    const plain = kipvs('inspect', '--netns', topology.node.name);
    expect(plain).toBe(topology.node.run('ipvsadm', ['-Ln']));
    const named = kipvs('inspect', '--netns', topology.node.name, '--names');
    expect(named).toMatch(/^TCP {2}10\.96\.0\.10:80 rr {2}shop\/web:http$/m);
    expect(named).toMatch(new RegExp(`^TCP {2}${topology.nodeAddress.replaceAll('.', '\\.')}:30080 rr {2}shop/web:http$`, 'm'));
    expect(named).toMatch(/^TCP {2}10\.96\.0\.20:443 rr {2}shop\/api:443$/m);
    expect(named).toMatch(/^ {2}-> 10\.201\.0\.2:8080 .* {2}shop\/web-0$/m);
    expect(named).toMatch(/\nNames from the agent's record \/run\/kipvs\/service-names-[0-9a-f]{12}\.json, written \d{4}-\d\d-\d\dT[\d:.]+Z\.\n$/);
  });

  it('shows one Service: its virtual servers with their pods and counters, and its ipset entries', () => {
    const text = kipvs('inspect', '--netns', topology.node.name, '--service', 'shop/web', '--stats');
    expect(text).not.toContain('10.96.0.20');
    const frontends = text.split('\n').filter((line) => line.startsWith('TCP'));
    expect(frontends.length).toBeGreaterThanOrEqual(2);
    expect(frontends.every((line) => line.endsWith('  shop/web:http'))).toBe(true);
    expect(text).toMatch(/^ {2}-> 10\.201\.1\.2:8080 .* {2}shop\/web-1$/m);
    const entries = text
      .slice(text.indexOf('ipset entries:\n'))
      .split('\n')
      .slice(1)
      .filter((line) => line.startsWith('add '));
    expect(entries).toEqual(
      expect.arrayContaining([
        'add KUBE-CLUSTER-IP 10.96.0.10,tcp:80',
        'add KUBE-IPVS-IPS 10.96.0.10',
        'add KUBE-NODE-PORT-TCP 30080',
        'add KUBE-LOOP-BACK 10.201.0.2,tcp:8080,10.201.0.2',
      ]),
    );
    expect(entries.some((line) => line.includes('10.96.0.20'))).toBe(false);
    // Every entry it shows is in the kernel's sets.
    const saved = new Set(topology.node.run('ipset', ['save']).split('\n'));
    expect(entries.filter((line) => !saved.has(line))).toEqual([]);
  });
});
