// The agent follows its node while it runs: an address added to the node gets NodePort virtual
// servers (and traffic from a client reaches them), a removed one loses them, and the Node
// object's zone label (read from the source files) steers topology hints, all without a restart.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTopology, type Topology } from '../kernel/helpers/topology.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'dist', 'cli', 'main.js');
const NEW_ADDRESS = '10.200.0.77';

async function waitFor(what: string, condition: () => boolean, timeoutMs = 120_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const nodeYaml = (zone: string): string => `apiVersion: v1
kind: Node
metadata:
  name: node-a
  labels: { kubernetes.io/hostname: node-a, topology.kubernetes.io/zone: ${zone} }
spec: { podCIDRs: [10.201.0.0/16] }
status: { addresses: [{ type: InternalIP, address: 10.200.0.1 }] }
`;

// Two pods, each hinted for its own zone, as the EndpointSlice controller writes them for
// trafficDistribution: PreferSameZone.
const webYaml = `apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec:
  type: NodePort
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10]
  trafficDistribution: PreferSameZone
  ports: [{ name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30080 }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-abc, namespace: default, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
ports: [{ name: http, protocol: TCP, port: 8080 }]
endpoints:
  - { addresses: [10.201.0.2], conditions: { ready: true }, nodeName: node-b, zone: zone-a, hints: { forZones: [{ name: zone-a }] } }
  - { addresses: [10.201.1.2], conditions: { ready: true }, nodeName: node-c, zone: zone-b, hints: { forZones: [{ name: zone-b }] } }
`;

describe('kipvs agent follows its node', () => {
  let created: Topology | undefined;
  const topo = (): Topology => {
    if (!created) throw new Error('no topology');
    return created;
  };
  let sourceDir: string;
  let agent: ChildProcess | undefined;
  let logs = '';

  const saved = (): string => topo().node.run('ipvsadm', ['-Sn']);
  /** Real servers of a virtual server that take new connections (weight > 0): field 4 of `-a -t VIP -r RS -m -w N`. */
  const active = (virtual: string): string[] =>
    saved()
      .split('\n')
      .filter((line) => line.startsWith(`-a -t ${virtual} `) && !/ -w 0\b/.test(line))
      .map((line) => line.split(' ')[4] ?? '')
      .sort();
  const writeNode = (zone: string): void => {
    // Written elsewhere and moved into place, as the file source asks.
    writeFileSync(join(sourceDir, '.node.tmp'), nodeYaml(zone));
    renameSync(join(sourceDir, '.node.tmp'), join(sourceDir, 'node.yaml'));
  };

  beforeAll(async () => {
    if (!process.env.KIPVS_SANDBOX) throw new Error('kernel tests run through scripts/sandbox.mjs');
    created = createTopology(2);
    const topology = created;
    await Promise.all(topology.pods.map((pod) => topology.startServer(pod, 8080)));
    sourceDir = mkdtempSync(join(tmpdir(), 'kipvs-node-'));
    writeFileSync(join(sourceDir, 'web.yaml'), webYaml);
    writeNode('zone-a');
    agent = spawn(
      process.execPath,
      [
        cli,
        'agent',
        '--source',
        sourceDir,
        '--netns',
        topology.node.name,
        '--hostname-override',
        'node-a',
        '--ipvs-sync-period',
        '30s',
        '--ipvs-min-sync-period',
        '100ms',
        '--healthz-bind-address',
        '',
        '--metrics-bind-address',
        '',
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    agent.stderr?.on('data', (data: Buffer) => (logs += data.toString()));
    await waitFor('initial sync', () => saved().includes('-A -t 10.200.0.1:30080')).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}; agent log:\n${logs}`);
    });
  }, 600_000);
  afterAll(() => {
    agent?.kill('SIGKILL');
    if (created) spawnSync(process.execPath, [cli, 'cleanup', '--netns', created.node.name]);
    created?.destroy();
    if (sourceDir) rmSync(sourceDir, { recursive: true, force: true });
  });

  it("uses the endpoints hinted for the Node's zone, from the Node object in the source files", () => {
    expect(active('10.96.0.10:80')).toEqual(['10.201.0.2:8080']);
    expect(active('10.200.0.1:30080')).toEqual(['10.201.0.2:8080']);
    expect(topo().request('10.200.0.1', 30080, 4)).toEqual({ answers: { pod0: 4 }, failures: 0 });
  });

  it('gives an address added while it runs NodePort virtual servers, and traffic to it is answered', async () => {
    topo().node.run('ip', ['addr', 'add', `${NEW_ADDRESS}/24`, 'dev', 'to-client']);
    await waitFor('NodePort on the new address', () => saved().includes(`-A -t ${NEW_ADDRESS}:30080`));
    expect(active(`${NEW_ADDRESS}:30080`)).toEqual(['10.201.0.2:8080']);
    expect(topo().request(NEW_ADDRESS, 30080, 4)).toEqual({ answers: { pod0: 4 }, failures: 0 });
    expect(logs).toContain('node addresses changed');
  }, 300_000);

  it("re-selects the endpoints of every Service when the Node's zone label changes", async () => {
    writeNode('zone-b');
    await waitFor(
      'zone-b endpoints',
      () => active('10.96.0.10:80').join() === '10.201.1.2:8080' && active(`${NEW_ADDRESS}:30080`).join() === '10.201.1.2:8080',
    );
    expect(topo().request(NEW_ADDRESS, 30080, 4)).toEqual({ answers: { pod1: 4 }, failures: 0 });
  }, 300_000);

  it('removes the virtual servers of an address removed while it runs, and keeps the others', async () => {
    topo().node.run('ip', ['addr', 'del', `${NEW_ADDRESS}/24`, 'dev', 'to-client']);
    await waitFor('NodePort on the removed address gone', () => !saved().includes(NEW_ADDRESS));
    expect(saved()).toContain('-A -t 10.200.0.1:30080');
    expect(topo().request('10.200.0.1', 30080, 2)).toEqual({ answers: { pod1: 2 }, failures: 0 });
  }, 300_000);
});
