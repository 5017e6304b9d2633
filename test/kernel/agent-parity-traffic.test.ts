// Drop-in parity with kube-proxy's IPVS mode, with real traffic (issue 12): what kube-proxy's
// iptables rules do to packets, for the Service kinds whose rules were only unit-tested so far.
//
// - loadBalancerSourceRanges on the way in: filter INPUT's KUBE-PROXY-FIREWALL sends a packet to a
//   load balancer IP:port in KUBE-LOAD-BALANCER-FW to KUBE-SOURCE-RANGES-FIREWALL, which returns it
//   when its source is in KUBE-LOAD-BALANCER-SOURCE-CIDR (or -SOURCE-IP) and drops it otherwise,
//   before IPVS (LOCAL_IN, after filter) sees it. The Service's ClusterIP and NodePort are not
//   filtered (kube-proxy: "For loadbalancers which direct traffic to service NodePort, the
//   firewall rules will not apply").
// - externalIPs: an external IP is bound on kube-ipvs0, so a packet routed to the node for it is
//   local and IPVS takes it; KUBE-EXTERNAL-IP marks it for masquerade (the pod sees the node),
//   KUBE-EXTERNAL-IP-LOCAL (externalTrafficPolicy Local) does not (the pod sees the client); other
//   ports of the external IP are rejected by KUBE-IPVS-FILTER (kubernetes#72236).
// - KUBE-IPVS-OUT-FILTER (kubernetes#119656): the node's own connection to a load balancer IP
//   bound on kube-ipvs0 never passes filter INPUT (IPVS takes it at LOCAL_OUT and sends it
//   straight to a pod), so the source ranges cannot stop it there; kube-proxy drops it in filter
//   OUTPUT, matched by `-m ipvs --vaddr`, when the ranges leave the node out.
//
// The cluster is the lab's (client 10.200.0.2 → node → pods 10.201.N.2) plus a second client
// namespace behind the node, the outsider (10.202.0.2), whose source is outside every range here.
// Every address is inside namespaces this file makes.
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentProcess } from './helpers/agent-process.js';
import type { TestNetns } from './helpers/netns.js';
import { Teardown } from './helpers/teardown.js';
import type { Topology } from './helpers/topology.js';
import { defined } from '../support/defined.js';

const root = join(import.meta.dirname, '..', '..');
const TCP_CLIENT = join(root, 'scripts', 'lab', 'tcp-client.mjs');
const TCP_FIRST_LINE = join(import.meta.dirname, 'helpers', 'tcp-first-line.mjs');

const OUTSIDER = { address: '10.202.0.2', nodeAddress: '10.202.0.1' };
const OPEN_LB = '203.0.113.20';
const CLOSED_LB = '203.0.113.21';
const EXTERNAL_IP = '203.0.113.30';
const EXTERNAL_IP_LOCAL = '203.0.113.31';

interface ParityService {
  readonly name: string;
  readonly clusterIP: string;
  readonly nodePort?: number;
  readonly loadBalancerIP?: string;
  readonly sourceRanges?: readonly string[];
  readonly externalIPs?: readonly string[];
  readonly localPolicy?: boolean;
}

/** Source ranges that hold the client and the node's address on the client's link (10.200.0.1). */
const open: ParityService = {
  name: 'lb-open',
  clusterIP: '10.96.0.20',
  nodePort: 30020,
  loadBalancerIP: OPEN_LB,
  sourceRanges: ['10.200.0.0/24'],
};
/** Source ranges that hold the client alone: no node address, so KUBE-IPVS-OUT-FILTER drops the node's own connections. */
const closed: ParityService = {
  name: 'lb-closed',
  clusterIP: '10.96.0.21',
  nodePort: 30021,
  loadBalancerIP: CLOSED_LB,
  sourceRanges: ['10.200.0.2/32'],
};
const external: ParityService = { name: 'ext', clusterIP: '10.96.0.30', externalIPs: [EXTERNAL_IP] };
const externalLocal: ParityService = { name: 'ext-local', clusterIP: '10.96.0.31', externalIPs: [EXTERNAL_IP_LOCAL], localPolicy: true };

function serviceYaml(service: ParityService, pods: readonly { name: string; ip: string }[]): string {
  const type = service.loadBalancerIP ? 'LoadBalancer' : service.nodePort ? 'NodePort' : 'ClusterIP';
  const nodePort = service.nodePort ? `, nodePort: ${String(service.nodePort)}` : '';
  const spec = [
    `  type: ${type}`,
    `  clusterIP: ${service.clusterIP}`,
    `  clusterIPs: [${service.clusterIP}]`,
    `  ports: [{ name: http, protocol: TCP, port: 80, targetPort: 8080${nodePort} }]`,
    ...(service.externalIPs ? [`  externalIPs: [${service.externalIPs.join(', ')}]`] : []),
    ...(service.sourceRanges ? [`  loadBalancerSourceRanges: [${service.sourceRanges.join(', ')}]`] : []),
    ...(service.localPolicy ? ['  externalTrafficPolicy: Local'] : []),
  ];
  const status = service.loadBalancerIP ? `status: { loadBalancer: { ingress: [{ ip: ${service.loadBalancerIP} }] } }\n` : '';
  return `apiVersion: v1
kind: Service
metadata: { name: ${service.name}, namespace: default }
spec:
${spec.join('\n')}
${status}---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${service.name}-abc, namespace: default, labels: { kubernetes.io/service-name: ${service.name} } }
addressType: IPv4
ports: [{ name: http, protocol: TCP, port: 8080 }]
endpoints:
${pods.map((pod) => `  - { addresses: [${pod.ip}], conditions: { ready: true }, nodeName: node-a, targetRef: { kind: Pod, name: ${pod.name}, namespace: default } }`).join('\n')}
`;
}

/** `count` TCP connections from `ns` (scripts/lab/tcp-client.mjs: 10 s each at most): answers per backend, and failures. */
function requestFrom(ns: TestNetns, address: string, port: number, count: number): { answers: Record<string, number>; failures: number } {
  return JSON.parse(ns.run(process.execPath, [TCP_CLIENT, address, String(port), String(count)])) as { answers: Record<string, number>; failures: number };
}

/** iptables-save -c of the filter table: the packet counter of the rule that reads `rule` exactly. */
function packetsOf(node: TestNetns, rule: string): number {
  const line = node
    .run('iptables-legacy-save', ['-c', '-t', 'filter'])
    .split('\n')
    .find((l) => l.endsWith(`] ${rule}`));
  return Number(defined(/^\[(\d+):\d+\]/.exec(defined(line, `the rule "${rule}" in iptables-save`))?.[1], `the packet counter of "${rule}"`));
}

const SOURCE_RANGES_DROP = '-A KUBE-SOURCE-RANGES-FIREWALL -j DROP';
/** kube-proxy's KUBE-IPVS-OUT-FILTER rule for closed's load balancer IP and port, as iptables-save prints it. */
const OUT_FILTER_DROP = `-A KUBE-IPVS-OUT-FILTER -s ${CLOSED_LB}/32 -m ipvs --vproto 6 --vaddr ${CLOSED_LB} --vport 80 -j DROP`;

describe("parity with kube-proxy's IPVS mode, with real traffic", () => {
  let topology: Topology;
  let outsider: TestNetns;
  let sourceDir: string;
  let agent: AgentProcess;
  const pods = [
    { name: 'web-0', ip: '10.201.0.2' },
    { name: 'web-1', ip: '10.201.1.2' },
  ];

  /** Written elsewhere and renamed into place, so the agent never reads half a file. */
  const writeServices = (services: readonly ParityService[]): void => {
    const staging = join(sourceDir, '..', `${sourceDir.split('/').pop() ?? 'source'}.next.yaml`);
    writeFileSync(staging, services.map((service) => serviceYaml(service, pods)).join('---\n'));
    renameSync(staging, join(sourceDir, 'services.yaml'));
  };
  const filterRules = (): string => topology.node.run('iptables-legacy-save', ['-t', 'filter']);
  /** The address a backend saw the connection come from (its answer's second word). */
  const seenBy = (address: string, port: number): string => {
    const output = topology.client.run(process.execPath, [TCP_FIRST_LINE, address, String(port)]).trim();
    return defined(output.split(' ')[1], `the client address in "${output}"`);
  };

  const teardown = new Teardown();

  beforeAll(async () => {
    topology = teardown.createTopology(2, { kipvsCleanup: true });
    outsider = teardown.createTestNetns('kipvs-outsider');
    topology.node.run('ip', ['link', 'add', 'to-outsider', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outsider.name]);
    topology.node.run('ip', ['addr', 'add', `${OUTSIDER.nodeAddress}/24`, 'dev', 'to-outsider']);
    topology.node.run('ip', ['link', 'set', 'to-outsider', 'up']);
    outsider.run('ip', ['addr', 'add', `${OUTSIDER.address}/24`, 'dev', 'eth0']);
    outsider.run('ip', ['link', 'set', 'eth0', 'up']);
    outsider.run('ip', ['route', 'add', 'default', 'via', OUTSIDER.nodeAddress]);
    await Promise.all(topology.pods.map((pod) => topology.startServer(pod, 8080)));
    sourceDir = teardown.makeTempDir('kipvs-parity-');
    writeServices([open, closed, external, externalLocal]);
    // Every rewrite of the chains (kube-proxy's and ours alike: each sync declares them, which
    // zeroes their counters) would reset the drop counters the tests read: no periodic sync
    // during the test, only the syncs for changes.
    agent = teardown.startAgent(topology.node, ['--source', sourceDir, '--ipvs-sync-period', '1h']);
    // Programmed once every frontend is there and the rules written after the sync name closed's LB IP.
    await agent.waitFor('the Services programmed and KUBE-IPVS-OUT-FILTER written', () => {
      const table = topology.node.run('ipvsadm', ['-Sn']);
      const frontends = [OPEN_LB, CLOSED_LB, EXTERNAL_IP, EXTERNAL_IP_LOCAL].map((address) => `${address}:80`);
      return frontends.every((frontend) => table.includes(`-a -t ${frontend} -r 10.201.1.2:8080`)) && filterRules().includes(OUT_FILTER_DROP);
    });
  });
  afterAll(() => teardown.run());

  it('loadBalancerSourceRanges: a client inside the ranges reaches the load balancer IP; one outside is dropped, yet reaches the ClusterIP and NodePort', () => {
    expect(requestFrom(topology.client, OPEN_LB, 80, 4)).toEqual({ answers: { pod0: 2, pod1: 2 }, failures: 0 });
    expect(requestFrom(topology.client, CLOSED_LB, 80, 2).failures).toBe(0);

    const dropped = packetsOf(topology.node, SOURCE_RANGES_DROP);
    expect(requestFrom(outsider, OPEN_LB, 80, 2)).toEqual({ answers: {}, failures: 2 });
    expect(requestFrom(outsider, CLOSED_LB, 80, 1)).toEqual({ answers: {}, failures: 1 });
    // Dropped by the firewall (every SYN and its retransmissions), not lost on the way.
    expect(packetsOf(topology.node, SOURCE_RANGES_DROP)).toBeGreaterThanOrEqual(dropped + 3);

    expect(requestFrom(outsider, open.clusterIP, 80, 2)).toEqual({ answers: { pod0: 1, pod1: 1 }, failures: 0 });
    expect(requestFrom(outsider, OUTSIDER.nodeAddress, defined(open.nodePort, 'the NodePort'), 2).failures).toBe(0);
  });

  it('externalIPs: the Service pods answer on the external IP, masqueraded (and not with externalTrafficPolicy Local); its other ports are rejected', async () => {
    expect(requestFrom(topology.client, EXTERNAL_IP, 80, 4)).toEqual({ answers: { pod0: 2, pod1: 2 }, failures: 0 });
    // KUBE-EXTERNAL-IP → KUBE-MARK-MASQ: the pod sees the node's address on its own link.
    expect(seenBy(EXTERNAL_IP, 80)).toMatch(/^(::ffff:)?10\.201\.[01]\.1$/);
    // KUBE-EXTERNAL-IP-LOCAL: no mark, the client's own address.
    expect(requestFrom(topology.client, EXTERNAL_IP_LOCAL, 80, 2).failures).toBe(0);
    expect(seenBy(EXTERNAL_IP_LOCAL, 80)).toMatch(/^(::ffff:)?10\.200\.0\.2$/);

    // A listener of the node's own (on every address) answers on the node's address but, through
    // KUBE-IPVS-FILTER, not on the external IP bound to kube-ipvs0.
    await topology.startServer({ name: 'node', ns: topology.node, address: topology.nodeAddress }, 8081);
    expect(requestFrom(topology.client, topology.nodeAddress, 8081, 1)).toEqual({ answers: { node: 1 }, failures: 0 });
    expect(requestFrom(topology.client, EXTERNAL_IP, 8081, 1)).toEqual({ answers: {}, failures: 1 });
  });

  it('KUBE-IPVS-OUT-FILTER: the node cannot reach a load balancer IP whose ranges leave it out, and can once they take it in', async () => {
    expect(requestFrom(topology.node, closed.clusterIP, 80, 2).failures).toBe(0);
    expect(requestFrom(topology.node, OPEN_LB, 80, 2).failures).toBe(0);

    const dropped = packetsOf(topology.node, OUT_FILTER_DROP);
    expect(requestFrom(topology.node, CLOSED_LB, 80, 2)).toEqual({ answers: {}, failures: 2 });
    expect(packetsOf(topology.node, OUT_FILTER_DROP)).toBeGreaterThanOrEqual(dropped + 2);

    // The ranges now hold the node's address: the (LB IP, port, LB IP) entry in
    // KUBE-LOAD-BALANCER-SOURCE-IP and no KUBE-IPVS-OUT-FILTER rule, written at the next sync.
    writeServices([open, { ...closed, sourceRanges: ['10.200.0.0/24'] }, external, externalLocal]);
    await agent.waitFor('the KUBE-IPVS-OUT-FILTER rule removed', () => !filterRules().includes('-A KUBE-IPVS-OUT-FILTER'));
    expect(topology.node.run('ipset', ['list', 'KUBE-LOAD-BALANCER-SOURCE-IP'])).toContain(`${CLOSED_LB},tcp:80,${CLOSED_LB}`);
    expect(requestFrom(topology.node, CLOSED_LB, 80, 2).failures).toBe(0);
    expect(requestFrom(outsider, CLOSED_LB, 80, 1).failures).toBe(1);
  });
});
