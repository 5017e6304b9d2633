// The proxy end to end: `kipvs agent` (the built CLI) programs a node namespace from Service and
// EndpointSlice files; real TCP traffic from a client namespace reaches pods in namespaces.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Topology } from './helpers/topology.js';
import { defined } from '../support/defined.js';
import { openHeld, type HeldConnection } from './helpers/held-connection.js';
import { Teardown } from './helpers/teardown.js';
import { GENEROUS_MS, waitUntil } from './helpers/wait.js';

const cli = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
const pods = [
  { name: 'web-0', ip: '10.201.0.2' },
  { name: 'web-1', ip: '10.201.1.2' },
  { name: 'web-2', ip: '10.201.2.2' },
];

interface ServiceOptions {
  readonly name: string;
  readonly clusterIP: string;
  readonly nodePort?: number;
  readonly endpoints: readonly { name: string; ip: string }[];
  readonly annotations?: Record<string, string>;
  readonly affinity?: boolean;
}

function serviceYaml(options: ServiceOptions): string {
  const annotations = Object.entries(options.annotations ?? {})
    .map(([k, v]) => `    ${k}: "${v}"`)
    .join('\n');
  return `apiVersion: v1
kind: Service
metadata:
  name: ${options.name}
  namespace: default
${annotations ? `  annotations:\n${annotations}\n` : ''}spec:
  type: ${options.nodePort ? 'NodePort' : 'ClusterIP'}
  clusterIP: ${options.clusterIP}
  clusterIPs: [${options.clusterIP}]
  ports:
    - { name: http, protocol: TCP, port: 80, targetPort: 8080${options.nodePort ? `, nodePort: ${options.nodePort}` : ''} }
${options.affinity ? '  sessionAffinity: ClientIP\n  sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } }\n' : ''}---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${options.name}-abc
  namespace: default
  labels: { kubernetes.io/service-name: ${options.name} }
addressType: IPv4
ports: [{ name: http, protocol: TCP, port: 8080 }]
endpoints:
${options.endpoints.map((e) => `  - addresses: [${e.ip}]\n    conditions: { ready: true }\n    nodeName: node-a\n    targetRef: { kind: Pod, name: ${e.name}, namespace: default }`).join('\n')}
`;
}

describe('kipvs agent with real traffic', () => {
  let topology: Topology;
  let sourceDir: string;

  const writeServices = (services: readonly ServiceOptions[]): void => {
    writeFileSync(join(sourceDir, 'services.yaml'), services.map(serviceYaml).join('---\n'));
  };
  const agentOnce = (...extra: string[]): string => {
    const result = spawnSync(
      process.execPath,
      [cli, 'agent', '--once', '--source', sourceDir, '--netns', topology.node.name, '--hostname-override', 'node-a', ...extra],
      {
        encoding: 'utf8',
      },
    );
    if (result.status !== 0) throw new Error(`kipvs agent --once failed (${result.status}): ${result.stderr}`);
    return result.stderr;
  };
  const ipvsadm = (...args: string[]): string => topology.node.run('ipvsadm', args);

  const teardown = new Teardown();

  beforeAll(async () => {
    if (!process.env.KIPVS_SANDBOX) throw new Error('kernel tests run through scripts/sandbox.mjs');
    topology = teardown.createTopology(3);
    await Promise.all(topology.pods.map((pod) => topology.startServer(pod, 8080)));
    sourceDir = teardown.makeTempDir('kipvs-source-');
  });
  afterAll(() => teardown.run());

  it('spreads requests to a ClusterIP exactly evenly with rr, and reaches the NodePort from outside', () => {
    writeServices([{ name: 'web', clusterIP: '10.96.0.10', nodePort: 30080, endpoints: pods }]);
    agentOnce('--scheduler', 'rr');
    expect(topology.request('10.96.0.10', 80, 30)).toEqual({ answers: { pod0: 10, pod1: 10, pod2: 10 }, failures: 0 });
    expect(topology.request(topology.nodeAddress, 30080, 9)).toEqual({ answers: { pod0: 3, pod1: 3, pod2: 3 }, failures: 0 });
  });

  it('follows endpoint weights with wrr', () => {
    writeServices([
      {
        name: 'web',
        clusterIP: '10.96.0.10',
        endpoints: pods.slice(0, 2),
        annotations: { 'kipvs.io/scheduler': 'wrr', 'kipvs.io/weights': 'web-0=3,web-1=1' },
      },
    ]);
    agentOnce();
    expect(ipvsadm('-Ln', '-t', '10.96.0.10:80')).toMatch(/10\.201\.0\.2:8080\s+Masq\s+3/);
    expect(topology.request('10.96.0.10', 80, 40)).toEqual({ answers: { pod0: 30, pod1: 10 }, failures: 0 });
  });

  it('keeps a client on one backend with sessionAffinity ClientIP', () => {
    writeServices([{ name: 'web', clusterIP: '10.96.0.10', endpoints: pods, affinity: true }]);
    agentOnce();
    expect(ipvsadm('-Sn')).toContain('-A -t 10.96.0.10:80 -s rr -p 600');
    const result = topology.request('10.96.0.10', 80, 20);
    expect(result.failures).toBe(0);
    expect(Object.values(result.answers)).toEqual([20]);
  });

  it('prefers the idle backend with lc', async () => {
    writeServices([{ name: 'web', clusterIP: '10.96.0.10', endpoints: pods.slice(0, 2), annotations: { 'kipvs.io/scheduler': 'lc' } }]);
    agentOnce();
    // Hold two connections open: lc puts them on different backends; then, with pod0's closed,
    // every new connection goes to the now idle pod0 while pod1 still has one.
    const held = await Promise.all([openHeld(topology.client, '10.96.0.10', 80), openHeld(topology.client, '10.96.0.10', 80)]);
    expect(held.map((h) => h.backend).sort()).toEqual(['pod0', 'pod1']);
    const heldTo = (backend: string): HeldConnection => {
      const connection = held.find((h) => h.backend === backend);
      if (!connection) throw new Error(`no held connection to ${backend}`);
      return connection;
    };
    heldTo('pod0').close();
    await waitUntil('pod0 idle again', () => /10\.201\.0\.2:8080\s+Masq\s+1\s+0\s/.test(ipvsadm('-Ln', '-t', '10.96.0.10:80')), GENEROUS_MS, 200);
    const next = await openHeld(topology.client, '10.96.0.10', 80);
    expect(next.backend).toBe('pod0');
    next.close();
    heldTo('pod1').close();
  });

  it('drains a removed endpoint: its established connection keeps working, new ones go elsewhere, and an agent restart changes nothing', async () => {
    writeServices([{ name: 'web', clusterIP: '10.96.0.10', endpoints: pods.slice(0, 2) }]);
    agentOnce();
    const held = await openHeld(topology.client, '10.96.0.10', 80);
    const victim = defined(pods[Number(held.backend.slice(3))], `the pod behind ${held.backend}`);
    writeServices([{ name: 'web', clusterIP: '10.96.0.10', endpoints: pods.slice(0, 2).filter((p) => p !== victim) }]);
    agentOnce();
    expect(ipvsadm('-Ln', '-t', '10.96.0.10:80')).toMatch(new RegExp(`${victim.ip.replaceAll('.', '\\.')}:8080\\s+Masq\\s+0\\s+1`));
    const stays = defined(
      pods.slice(0, 2).find((p) => p !== victim),
      'the pod that stays',
    );
    const survivor = `pod${String(pods.indexOf(stays))}`;
    expect(topology.request('10.96.0.10', 80, 6)).toEqual({ answers: { [survivor]: 6 }, failures: 0 });
    expect(await held.echo('still there?')).toBe(`${held.backend} still there?`);
    agentOnce(); // a restart: adopts, keeps draining
    expect(await held.echo('after restart')).toBe(`${held.backend} after restart`);
    held.close();
  });
});
