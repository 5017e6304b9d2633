// Switching a node that ran kube-proxy ≤ 1.21 in IPVS mode. Those versions also made a NodePort
// virtual server on 127.0.0.1 (and ::1) for every NodePort: its NodeIPs() took every local
// address (kubernetes#96879; they never carried traffic, and 1.22 stopped making them). kipvs
// recognises them as kube-proxy's, by the port its KUBE-NODE-PORT-* sets record, and removes them;
// a loopback virtual server at a port no set records is someone else's and stays. kube-ipvs0 stays
// down, as kube-proxy left it.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defined } from '../support/defined.js';
import { Teardown } from './helpers/teardown.js';
import type { Topology } from './helpers/topology.js';

const cli = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');

const SOURCE = `apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec:
  type: NodePort
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10]
  ports: [{ name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30080 }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-abc, namespace: default, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
ports: [{ name: http, protocol: TCP, port: 8080 }]
endpoints:
  - { addresses: [10.201.0.2], conditions: { ready: true }, nodeName: node-a, targetRef: { kind: Pod, name: web-0, namespace: default } }
`;

describe('switching from kube-proxy ≤ 1.21', () => {
  let topology: Topology;
  let sourceDir: string;
  const ipvsadmRules = (): string[] =>
    topology.node
      .run('ipvsadm', ['-Sn'])
      .split('\n')
      .filter((line) => line.startsWith('-A'))
      .sort();

  const teardown = new Teardown();

  beforeAll(async () => {
    topology = teardown.createTopology(1);
    await topology.startServer(defined(topology.pods[0], 'pod0'), 8080);
    sourceDir = teardown.makeTempDir('kipvs-source-');
    writeFileSync(join(sourceDir, 'services.yaml'), SOURCE);
    // What kube-proxy 1.21 left: kube-ipvs0 (never set up), the NodePort's set entry, and its
    // virtual servers on the ClusterIP, the node address and 127.0.0.1.
    const { node, nodeAddress } = topology;
    node.run('ip', ['link', 'add', 'kube-ipvs0', 'type', 'dummy']);
    node.run('ip', ['addr', 'add', '10.96.0.10/32', 'dev', 'kube-ipvs0']);
    node.run('ipset', ['restore'], 'create KUBE-NODE-PORT-TCP bitmap:port range 0-65535\nadd KUBE-NODE-PORT-TCP 30080\n');
    const frontends = ['10.96.0.10:80', `${nodeAddress}:30080`, '127.0.0.1:30080'];
    const rules = frontends.flatMap((frontend) => [`-A -t ${frontend} -s rr`, `-a -t ${frontend} -r 10.201.0.2:8080 -m -w 1`]);
    // Not kube-proxy's: no set records port 9999.
    rules.push('-A -t 127.0.0.1:9999 -s rr');
    node.run('ipvsadm', ['-R'], `${rules.join('\n')}\n`);
  });
  afterAll(() => teardown.run());

  it("removes kube-proxy's NodePort virtual server on 127.0.0.1, keeps the others, and leaves kube-ipvs0 down", () => {
    const { node, nodeAddress } = topology;
    const ifindex = node.run('ip', ['-o', 'link', 'show', 'kube-ipvs0']).split(':')[0];
    // NodePorts on the node address only (the node's address on the pods' side would get them too).
    const result = spawnSync(
      process.execPath,
      [cli, 'agent', '--once', '--source', sourceDir, '--netns', node.name, '--hostname-override', 'node-a', '--nodeport-addresses', `${nodeAddress}/32`],
      {
        encoding: 'utf8',
      },
    );
    expect(result.status, result.stderr).toBe(0);
    expect(ipvsadmRules()).toEqual([`-A -t ${nodeAddress}:30080 -s rr`, '-A -t 10.96.0.10:80 -s rr', '-A -t 127.0.0.1:9999 -s rr'].sort());
    const link = node.run('ip', ['-o', 'link', 'show', 'kube-ipvs0']);
    expect(link.split(':')[0]).toBe(ifindex);
    expect(link).not.toMatch(/[<,]UP[,>]/);
    // Down, it still serves: the kernel keeps the local routes of a down link's addresses.
    expect(topology.request('10.96.0.10', 80, 2)).toEqual({ answers: { pod0: 2 }, failures: 0 });
    expect(topology.request(nodeAddress, 30080, 2)).toEqual({ answers: { pod0: 2 }, failures: 0 });
  });

  it('creates kube-ipvs0 down on a fresh node too, as kube-proxy does, and serves through it', () => {
    const { node } = topology;
    node.run('ip', ['link', 'del', 'kube-ipvs0']);
    const result = spawnSync(process.execPath, [cli, 'agent', '--once', '--source', sourceDir, '--netns', node.name, '--hostname-override', 'node-a'], {
      encoding: 'utf8',
    });
    expect(result.status, result.stderr).toBe(0);
    const link = node.run('ip', ['-o', 'link', 'show', 'kube-ipvs0']);
    expect(link).not.toMatch(/[<,]UP[,>]/);
    expect(node.run('ip', ['-o', '-4', 'addr', 'show', 'dev', 'kube-ipvs0'])).toContain('10.96.0.10/32');
    expect(topology.request('10.96.0.10', 80, 2)).toEqual({ answers: { pod0: 2 }, failures: 0 });
  });
});
