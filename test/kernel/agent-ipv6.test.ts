// Dual stack end to end: one Service with an IPv4 and an IPv6 ClusterIP and a NodePort, with an
// EndpointSlice per family; real TCP traffic over both families from a client namespace.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defined } from '../support/defined.js';
import { Teardown } from './helpers/teardown.js';
import type { Topology } from './helpers/topology.js';

const cli = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');

const slice = (family: 'IPv4' | 'IPv6', addresses: string[]): string => `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-${family.toLowerCase()}, namespace: default, labels: { kubernetes.io/service-name: web } }
addressType: ${family}
ports: [{ name: http, protocol: TCP, port: 8080 }]
endpoints:
${addresses.map((address) => `  - { addresses: ["${address}"], conditions: { ready: true }, nodeName: node-a }`).join('\n')}
`;

describe('dual stack', () => {
  let topology: Topology;
  let sourceDir: string;
  const teardown = new Teardown();

  beforeAll(async () => {
    topology = teardown.createTopology(2, { ipv6: true, kipvsCleanup: true });
    await Promise.all(topology.pods.map((pod) => topology.startServer(pod, 8080)));
    sourceDir = teardown.makeTempDir('kipvs-source-');
    writeFileSync(
      join(sourceDir, 'web.yaml'),
      `apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec:
  type: NodePort
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10, "fd00:96::10"]
  ipFamilies: [IPv4, IPv6]
  ipFamilyPolicy: RequireDualStack
  ports: [{ name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30080 }]
---
${slice('IPv4', ['10.201.0.2', '10.201.1.2'])}---
${slice('IPv6', ['fd00:201:0::2', 'fd00:201:1::2'])}`,
    );
    const result = spawnSync(
      process.execPath,
      [cli, 'agent', '--once', '--source', sourceDir, '--netns', topology.node.name, '--hostname-override', 'node-a'],
      { encoding: 'utf8' },
    );
    if (result.status !== 0) throw new Error(`kipvs agent --once failed: ${result.stderr}`);
  });
  afterAll(() => teardown.run());

  it('programs both families: virtual servers, addresses on kube-ipvs0, KUBE-6- ipsets and ip6tables rules', () => {
    const saved = topology.node.run('ipvsadm', ['-Sn']);
    expect(saved).toContain('-A -t [fd00:96::10]:80 -s rr');
    expect(saved).toContain('-a -t [fd00:96::10]:80 -r [fd00:201::2]:8080 -m -w 1');
    expect(saved).toContain('-A -t [fd00:200::1]:30080 -s rr');
    expect(topology.node.run('ip', ['-6', '-o', 'addr', 'show', 'dev', 'kube-ipvs0'])).toContain('fd00:96::10/128');
    expect(topology.node.run('ipset', ['list', 'KUBE-6-CLUSTER-IP'])).toContain('fd00:96::10,tcp:80');
    expect(topology.node.run('ip6tables-legacy-save', ['-t', 'nat'])).toContain('KUBE-6-CLUSTER-IP');
  });

  it('carries real TCP traffic over IPv6 and IPv4 to the ClusterIPs and the NodePort', () => {
    expect(topology.request('fd00:96::10', 80, 10)).toEqual({ answers: { pod0: 5, pod1: 5 }, failures: 0 });
    expect(topology.request('10.96.0.10', 80, 10)).toEqual({ answers: { pod0: 5, pod1: 5 }, failures: 0 });
    expect(topology.request(defined(topology.nodeAddress6, 'the IPv6 node address'), 30080, 4)).toEqual({ answers: { pod0: 2, pod1: 2 }, failures: 0 });
  });
});
