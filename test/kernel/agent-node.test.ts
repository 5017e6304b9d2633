// The agent follows its node while it runs: an address added to the node gets NodePort virtual
// servers (and traffic from a client reaches them), a removed one loses them, the Node object's
// zone label (read from the source files) steers topology hints, and its spec.podCIDRs the
// NodeCIDR detect-local rule, all without a restart.
// Addresses are read again at every full sync (--ipvs-sync-period), so an address change may take
// one sync period; the Node object is a source file, followed as it changes.
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentProcess } from './helpers/agent-process.js';
import { Teardown } from './helpers/teardown.js';
import type { Topology } from './helpers/topology.js';

const NEW_ADDRESS = '10.200.0.77';
const SYNC_PERIOD_MS = 3_000;
/**
 * What a change may take beyond the sync period: the address read that a full sync starts, the
 * full sync itself (it rewrites the iptables rules), the sync the change then asks for, the poll's
 * ipvsadm, and a busy machine. Measured in UML: 3-4 s for an address, 1.5 s for the zone label.
 */
const MARGIN_MS = 5_000;

const nodeYaml = (zone: string, podCIDR: string): string => `apiVersion: v1
kind: Node
metadata:
  name: node-a
  labels: { kubernetes.io/hostname: node-a, topology.kubernetes.io/zone: ${zone} }
spec: { podCIDRs: [${podCIDR}] }
status: { addresses: [{ type: InternalIP, address: 10.200.0.1 }] }
`;

// Two pods, each hinted for its own zone, as the EndpointSlice controller writes them for
// trafficDistribution: PreferSameZone; two Services on them, so that a zone change is seen to
// re-select the endpoints of each, though neither Service nor slice changed.
const serviceYaml = (name: string, clusterIP: string, nodePort?: number): string => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec:
  type: ${nodePort === undefined ? 'ClusterIP' : 'NodePort'}
  clusterIP: ${clusterIP}
  clusterIPs: [${clusterIP}]
  trafficDistribution: PreferSameZone
  ports: [{ name: http, protocol: TCP, port: 80, targetPort: 8080${nodePort === undefined ? '' : `, nodePort: ${String(nodePort)}`} }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}-abc, namespace: default, labels: { kubernetes.io/service-name: ${name} } }
addressType: IPv4
ports: [{ name: http, protocol: TCP, port: 8080 }]
endpoints:
  - { addresses: [10.201.0.2], conditions: { ready: true }, nodeName: node-b, zone: zone-a, hints: { forZones: [{ name: zone-a }] } }
  - { addresses: [10.201.1.2], conditions: { ready: true }, nodeName: node-c, zone: zone-b, hints: { forZones: [{ name: zone-b }] } }
`;

describe('kipvs agent follows its node', () => {
  let topology: Topology;
  let sourceDir: string;
  let agent: AgentProcess;
  const teardown = new Teardown();

  const saved = (): string => topology.node.run('ipvsadm', ['-Sn']);
  /** Real servers of a virtual server that take new connections (weight > 0), in `rules` (`ipvsadm -Sn`, read now when not given). */
  const active = (virtual: string, rules = saved()): string[] =>
    rules
      .split('\n')
      .flatMap((line) => {
        // -a -t 10.96.0.10:80 -r 10.201.0.2:8080 -m -w 1
        const [add, , address, , server, , , weight] = line.split(' ');
        return add === '-a' && address === virtual && weight !== '0' && server !== undefined ? [server] : [];
      })
      .sort();
  const writeNode = (zone: string, podCIDR = '10.201.0.0/16'): void => {
    // Written elsewhere and moved into place, as the file source asks.
    writeFileSync(join(sourceDir, '.node.tmp'), nodeYaml(zone, podCIDR));
    renameSync(join(sourceDir, '.node.tmp'), join(sourceDir, 'node.yaml'));
  };

  beforeAll(async () => {
    topology = teardown.createTopology(2, { kipvsCleanup: true });
    await Promise.all(topology.pods.map((pod) => topology.startServer(pod, 8080)));
    sourceDir = teardown.makeTempDir('kipvs-node-');
    writeFileSync(join(sourceDir, 'web.yaml'), serviceYaml('web', '10.96.0.10', 30080));
    writeFileSync(join(sourceDir, 'api.yaml'), serviceYaml('api', '10.96.0.11'));
    writeNode('zone-a');
    agent = teardown.startAgent(topology.node, [
      '--source',
      sourceDir,
      '--ipvs-sync-period',
      `${String(SYNC_PERIOD_MS)}ms`,
      '--ipvs-min-sync-period',
      '100ms',
      '--detect-local-mode',
      'NodeCIDR',
      '--healthz-bind-address',
      '',
      '--metrics-bind-address',
      '',
    ]);
    await agent.waitFor('initial sync', () => saved().includes('-A -t 10.200.0.1:30080'));
  });
  afterAll(() => teardown.run());

  it("uses the endpoints hinted for the Node's zone, from the Node object in the source files", () => {
    expect(active('10.96.0.10:80')).toEqual(['10.201.0.2:8080']);
    expect(active('10.96.0.11:80')).toEqual(['10.201.0.2:8080']);
    expect(active('10.200.0.1:30080')).toEqual(['10.201.0.2:8080']);
    expect(topology.request('10.200.0.1', 30080, 4)).toEqual({ answers: { pod0: 4 }, failures: 0 });
  });

  it('gives an address added while it runs NodePort virtual servers within a sync period, and traffic to it is answered', async () => {
    topology.node.run('ip', ['addr', 'add', `${NEW_ADDRESS}/24`, 'dev', 'to-client']);
    const ms = await agent.waitFor('NodePort on the new address', () => saved().includes(`-A -t ${NEW_ADDRESS}:30080`));
    expect(ms).toBeLessThan(SYNC_PERIOD_MS + MARGIN_MS);
    expect(active(`${NEW_ADDRESS}:30080`)).toEqual(['10.201.0.2:8080']);
    expect(topology.request(NEW_ADDRESS, 30080, 4)).toEqual({ answers: { pod0: 4 }, failures: 0 });
    const changes = agent.lines.filter((line) => line.msg === 'node addresses changed').map((line) => line.fields?.addresses);
    expect(changes).toContainEqual(expect.arrayContaining([NEW_ADDRESS]));
  });

  it("re-selects the endpoints of every Service when the Node's zone label changes", async () => {
    writeNode('zone-b');
    const ms = await agent.waitFor('zone-b endpoints', () => {
      const rules = saved();
      return ['10.96.0.10:80', '10.96.0.11:80', `${NEW_ADDRESS}:30080`, '10.200.0.1:30080'].every(
        (virtual) => active(virtual, rules).join() === '10.201.1.2:8080',
      );
    });
    // Followed as a source file change; a lost event is caught by the next full sync.
    expect(ms).toBeLessThan(SYNC_PERIOD_MS + MARGIN_MS);
    expect(topology.request(NEW_ADDRESS, 30080, 4)).toEqual({ answers: { pod1: 4 }, failures: 0 });
  });

  it("follows the Node's spec.podCIDRs in the NodeCIDR detect-local rule", async () => {
    /** The source ranges that count as local for ClusterIP traffic (`! -s CIDR`: the rest is masqueraded). */
    const localRanges = (): string[] =>
      topology.node
        .run('iptables-legacy-save', ['-t', 'nat'])
        .split('\n')
        .filter((line) => line.startsWith('-A KUBE-SERVICES ') && line.includes('--match-set KUBE-CLUSTER-IP dst,dst') && line.endsWith('-j KUBE-MARK-MASQ'))
        .map((line) => / ! -s (\S+) /.exec(line)?.[1] ?? 'none');
    expect(localRanges()).toEqual(['10.201.0.0/16']);
    writeNode('zone-b', '10.202.0.0/16');
    const ms = await agent.waitFor('the new podCIDR in the rule', () => localRanges().join() === '10.202.0.0/16');
    expect(ms).toBeLessThan(SYNC_PERIOD_MS + MARGIN_MS);
    writeNode('zone-b');
    await agent.waitFor('the podCIDR back', () => localRanges().join() === '10.201.0.0/16');
  });

  it('removes the virtual servers of an address removed while it runs within a sync period, and keeps the others', async () => {
    topology.node.run('ip', ['addr', 'del', `${NEW_ADDRESS}/24`, 'dev', 'to-client']);
    const ms = await agent.waitFor('NodePort on the removed address gone', () => !saved().includes(NEW_ADDRESS));
    expect(ms).toBeLessThan(SYNC_PERIOD_MS + MARGIN_MS);
    expect(saved()).toContain('-A -t 10.200.0.1:30080');
    expect(topology.request('10.200.0.1', 30080, 2)).toEqual({ answers: { pod1: 2 }, failures: 0 });
  });
});
