// Switching a node from kube-proxy's IPVS mode to kipvs. The node namespace starts with what
// kube-proxy 1.3x leaves behind (written with the C tools from kube-proxy's own layout, below), and
// kubelet's chains; kipvs then starts on the same Services while a client keeps connecting. It must
// adopt kube-proxy's objects as they are (no request fails, nothing is recreated), end in its own
// layout, follow the next change, and leave kube-proxy able to take the node back.
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runKipvs as kipvs, type AgentProcess } from './helpers/agent-process.js';
import { defined } from '../support/defined.js';
import { createTestNetns, type TestNetns } from './helpers/netns.js';
import type { Topology } from './helpers/topology.js';
import { openHeld, type HeldConnection } from './helpers/held-connection.js';
import { startSteadyClient, type SteadyClient, type TargetTally } from './helpers/steady-client.js';
import { Teardown } from './helpers/teardown.js';
import { GENEROUS_MS, waitUntil } from './helpers/wait.js';

const CLUSTER_CIDR = '10.201.0.0/16';

// ---- what kube-proxy writes (pkg/proxy/ipvs/proxier.go and ipset.go, Kubernetes 1.3x) ----

/** ipsetInfo: name, type and the comment its iptables rules carry; IPv4, created even when empty. */
const KUBE_PROXY_SETS: readonly (readonly [name: string, type: string, comment: string])[] = [
  ['KUBE-LOOP-BACK', 'hash:ip,port,ip', 'Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose'],
  ['KUBE-CLUSTER-IP', 'hash:ip,port', 'Kubernetes service cluster ip + port for masquerade purpose'],
  ['KUBE-EXTERNAL-IP', 'hash:ip,port', 'Kubernetes service external ip + port for masquerade and filter purpose'],
  ['KUBE-EXTERNAL-IP-LOCAL', 'hash:ip,port', 'Kubernetes service external ip + port with externalTrafficPolicy=local'],
  ['KUBE-LOAD-BALANCER', 'hash:ip,port', 'Kubernetes service lb portal'],
  ['KUBE-LOAD-BALANCER-FW', 'hash:ip,port', 'Kubernetes service load balancer ip + port for load balancer with sourceRange'],
  ['KUBE-LOAD-BALANCER-LOCAL', 'hash:ip,port', 'Kubernetes service load balancer ip + port with externalTrafficPolicy=local'],
  ['KUBE-LOAD-BALANCER-SOURCE-IP', 'hash:ip,port,ip', 'Kubernetes service load balancer ip + port + source IP for packet filter purpose'],
  ['KUBE-LOAD-BALANCER-SOURCE-CIDR', 'hash:ip,port,net', 'Kubernetes service load balancer ip + port + source cidr for packet filter purpose'],
  ['KUBE-NODE-PORT-TCP', 'bitmap:port', 'Kubernetes nodeport TCP port for masquerade purpose'],
  ['KUBE-NODE-PORT-LOCAL-TCP', 'bitmap:port', 'Kubernetes nodeport TCP port with externalTrafficPolicy=local'],
  ['KUBE-NODE-PORT-UDP', 'bitmap:port', 'Kubernetes nodeport UDP port for masquerade purpose'],
  ['KUBE-NODE-PORT-LOCAL-UDP', 'bitmap:port', 'Kubernetes nodeport UDP port with externalTrafficPolicy=local'],
  ['KUBE-NODE-PORT-SCTP-HASH', 'hash:ip,port', "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'"],
  ['KUBE-NODE-PORT-LOCAL-SCTP-HASH', 'hash:ip,port', "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'"],
  ['KUBE-HEALTH-CHECK-NODE-PORT', 'bitmap:port', 'Kubernetes health check node port'],
  ['KUBE-IPVS-IPS', 'hash:ip', 'Addresses on the ipvs interface'],
];
const comment = (set: string): string => {
  const [, , text] = defined(
    KUBE_PROXY_SETS.find(([name]) => name === set),
    `kube-proxy's set ${set}`,
  );
  return `-m comment --comment "${text}"`;
};

/** ipset/ipset.go createSet: the arguments after the name, with kube-proxy's defaults. */
const createArgs = (type: string): string[] =>
  type === 'bitmap:port' ? [type, 'range', '0-65535'] : [type, 'family', 'inet', 'hashsize', '1024', 'maxelem', '65536'];

/** ipsetWithIptablesChain: [set, table, from chain, target, match flags, protocol]. */
const SET_RULES: readonly (readonly [string, 'nat' | 'filter', string, string, string, string])[] = [
  ['KUBE-LOOP-BACK', 'nat', 'KUBE-POSTROUTING', 'MASQUERADE', 'dst,dst,src', ''],
  ['KUBE-LOAD-BALANCER', 'nat', 'KUBE-SERVICES', 'KUBE-LOAD-BALANCER', 'dst,dst', ''],
  ['KUBE-LOAD-BALANCER-LOCAL', 'nat', 'KUBE-LOAD-BALANCER', 'RETURN', 'dst,dst', ''],
  ['KUBE-NODE-PORT-LOCAL-TCP', 'nat', 'KUBE-NODE-PORT', 'RETURN', 'dst', 'tcp'],
  ['KUBE-NODE-PORT-TCP', 'nat', 'KUBE-NODE-PORT', 'KUBE-MARK-MASQ', 'dst', 'tcp'],
  ['KUBE-NODE-PORT-LOCAL-UDP', 'nat', 'KUBE-NODE-PORT', 'RETURN', 'dst', 'udp'],
  ['KUBE-NODE-PORT-UDP', 'nat', 'KUBE-NODE-PORT', 'KUBE-MARK-MASQ', 'dst', 'udp'],
  ['KUBE-NODE-PORT-LOCAL-SCTP-HASH', 'nat', 'KUBE-NODE-PORT', 'RETURN', 'dst,dst', 'sctp'],
  ['KUBE-NODE-PORT-SCTP-HASH', 'nat', 'KUBE-NODE-PORT', 'KUBE-MARK-MASQ', 'dst,dst', 'sctp'],
  ['KUBE-LOAD-BALANCER-FW', 'filter', 'KUBE-PROXY-FIREWALL', 'KUBE-SOURCE-RANGES-FIREWALL', 'dst,dst', ''],
  ['KUBE-LOAD-BALANCER-SOURCE-CIDR', 'filter', 'KUBE-SOURCE-RANGES-FIREWALL', 'RETURN', 'dst,dst,src', ''],
  ['KUBE-LOAD-BALANCER-SOURCE-IP', 'filter', 'KUBE-SOURCE-RANGES-FIREWALL', 'RETURN', 'dst,dst,src', ''],
];

/** iptablesJumpChain, in its order; EnsureRule(Prepend) puts each at the top of its chain. */
const KUBE_PROXY_JUMPS: readonly (readonly [table: string, from: string, to: string, comment: string])[] = [
  ['nat', 'OUTPUT', 'KUBE-SERVICES', 'kubernetes service portals'],
  ['nat', 'PREROUTING', 'KUBE-SERVICES', 'kubernetes service portals'],
  ['nat', 'POSTROUTING', 'KUBE-POSTROUTING', 'kubernetes postrouting rules'],
  ['filter', 'FORWARD', 'KUBE-FORWARD', 'kubernetes forwarding rules'],
  ['filter', 'INPUT', 'KUBE-NODE-PORT', 'kubernetes health check rules'],
  ['filter', 'INPUT', 'KUBE-PROXY-FIREWALL', 'kube-proxy firewall rules'],
  ['filter', 'FORWARD', 'KUBE-PROXY-FIREWALL', 'kube-proxy firewall rules'],
  ['filter', 'INPUT', 'KUBE-IPVS-FILTER', 'kubernetes ipvs access filter'],
  ['filter', 'OUTPUT', 'KUBE-IPVS-OUT-FILTER', 'kubernetes ipvs access filter'],
];

/**
 * The iptables-restore --noflush input of one kube-proxy sync (createAndLinkKubeChain,
 * writeIptablesRules), with --cluster-cidr and the default masquerade bit 14 (formatted "%#08x"
 * as kube-proxy does), MASQUERADE --random-fully (any iptables >= 1.6.2). kube-proxy writes a
 * set's rules only while the set has entries: `nonEmpty` says which have.
 */
function kubeProxyRules(nonEmpty: ReadonlySet<string>, options: { jumps: boolean }): string {
  const mark = '0x004000';
  const nat = [':KUBE-SERVICES - [0:0]', ':KUBE-POSTROUTING - [0:0]', ':KUBE-NODE-PORT - [0:0]', ':KUBE-LOAD-BALANCER - [0:0]', ':KUBE-MARK-MASQ - [0:0]'];
  const filter = [
    ':KUBE-FORWARD - [0:0]',
    ':KUBE-NODE-PORT - [0:0]',
    ':KUBE-PROXY-FIREWALL - [0:0]',
    ':KUBE-SOURCE-RANGES-FIREWALL - [0:0]',
    ':KUBE-IPVS-FILTER - [0:0]',
    ':KUBE-IPVS-OUT-FILTER - [0:0]',
  ];
  nat.push('-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN');
  for (const [set, table, from, to, match, protocol] of SET_RULES) {
    if (!nonEmpty.has(set)) continue;
    (table === 'nat' ? nat : filter).push(`-A ${from}${protocol ? ` -p ${protocol}` : ''} ${comment(set)} -m set --match-set ${set} ${match} -j ${to}`);
  }
  if (nonEmpty.has('KUBE-CLUSTER-IP')) {
    nat.push(`-A KUBE-SERVICES ${comment('KUBE-CLUSTER-IP')} -m set --match-set KUBE-CLUSTER-IP dst,dst ! -s ${CLUSTER_CIDR} -j KUBE-MARK-MASQ`);
  }
  for (const set of ['KUBE-EXTERNAL-IP', 'KUBE-EXTERNAL-IP-LOCAL']) {
    if (!nonEmpty.has(set)) continue;
    const match = `-A KUBE-SERVICES ${comment(set)} -m set --match-set ${set} dst,dst`;
    if (set === 'KUBE-EXTERNAL-IP') nat.push(`${match} -j KUBE-MARK-MASQ`);
    nat.push(`${match} -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT`, `${match} -m addrtype --dst-type LOCAL -j ACCEPT`);
  }
  nat.push('-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT', '-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ');
  filter.push('-A KUBE-SOURCE-RANGES-FIREWALL -j DROP');
  // acceptIPVSTraffic
  for (const set of ['KUBE-CLUSTER-IP', 'KUBE-LOAD-BALANCER']) if (nonEmpty.has(set)) nat.push(`-A KUBE-SERVICES -m set --match-set ${set} dst,dst -j ACCEPT`);
  filter.push(
    `-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark ${mark}/${mark} -j ACCEPT`,
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    `-A KUBE-NODE-PORT ${comment('KUBE-HEALTH-CHECK-NODE-PORT')} -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j ACCEPT`,
    '-A KUBE-IPVS-FILTER -m set --match-set KUBE-LOAD-BALANCER dst,dst -j RETURN',
    '-A KUBE-IPVS-FILTER -m set --match-set KUBE-CLUSTER-IP dst,dst -j RETURN',
    '-A KUBE-IPVS-FILTER -m set --match-set KUBE-EXTERNAL-IP dst,dst -j RETURN',
    '-A KUBE-IPVS-FILTER -m set --match-set KUBE-EXTERNAL-IP-LOCAL dst,dst -j RETURN',
    '-A KUBE-IPVS-FILTER -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j RETURN',
    '-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst -j REJECT',
  );
  nat.push(
    `-A KUBE-POSTROUTING -m mark ! --mark ${mark}/${mark} -j RETURN`,
    `-A KUBE-POSTROUTING -j MARK --xor-mark ${mark}`,
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    `-A KUBE-MARK-MASQ -j MARK --or-mark ${mark}`,
  );
  if (options.jumps) {
    for (const [table, from, to, text] of KUBE_PROXY_JUMPS) (table === 'nat' ? nat : filter).push(`-I ${from} 1 -m comment --comment "${text}" -j ${to}`);
  }
  return `*nat\n${nat.join('\n')}\nCOMMIT\n*filter\n${filter.join('\n')}\nCOMMIT\n`;
}

/**
 * kubelet's chains (pkg/kubelet/kubelet_network_linux.go): the backend hint and canaries, and
 * KUBE-FIREWALL against martian localhost packets. KUBE-MARK-DROP is what kubelets before 1.28
 * wrote and nobody removes: a stale KUBE-* chain that kipvs must leave alone.
 */
const KUBELET_RULES = `*mangle
:KUBE-IPTABLES-HINT - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
COMMIT
*nat
:KUBE-KUBELET-CANARY - [0:0]
:KUBE-MARK-DROP - [0:0]
-A KUBE-MARK-DROP -j MARK --or-mark 0x8000
COMMIT
*filter
:KUBE-FIREWALL - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
-I INPUT 1 -j KUBE-FIREWALL
-I OUTPUT 1 -j KUBE-FIREWALL
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
COMMIT
`;

interface KubeProxyService {
  readonly name: string;
  readonly clusterIP: string;
  readonly port: number;
  readonly portName: string;
  readonly nodePort?: number;
  readonly endpoints: readonly { readonly name: string; readonly ip: string }[];
}
const TARGET_PORT = 8080;

/** The node as kube-proxy left it: sysctls, kube-ipvs0, ipsets, virtual servers, rules. */
function writeKubeProxyState(node: TestNetns, services: readonly KubeProxyService[], nodeAddresses: readonly string[]): void {
  for (const sysctl of ['net.ipv4.vs.conntrack=1', 'net.ipv4.vs.expire_nodest_conn=1', 'net.ipv4.vs.expire_quiescent_template=1', 'net.ipv4.ip_forward=1']) {
    node.run('sysctl', ['-qw', sysctl]);
  }
  // EnsureDummyDevice adds it and never sets it up; EnsureAddressBind adds each address as a /32.
  node.run('ip', ['link', 'add', 'kube-ipvs0', 'type', 'dummy']);
  for (const service of services) node.run('ip', ['addr', 'add', `${service.clusterIP}/32`, 'dev', 'kube-ipvs0']);

  const entries: string[] = [];
  const ipvs: string[] = [];
  for (const service of services) {
    entries.push(`add KUBE-CLUSTER-IP ${service.clusterIP},tcp:${service.port}`, `add KUBE-IPVS-IPS ${service.clusterIP}`);
    // Every endpoint here is on this node (nodeName node-a): hairpin entries for each.
    for (const endpoint of service.endpoints) entries.push(`add KUBE-LOOP-BACK ${endpoint.ip},tcp:${TARGET_PORT},${endpoint.ip}`);
    const frontends = [`${service.clusterIP}:${service.port}`];
    if (service.nodePort) {
      entries.push(`add KUBE-NODE-PORT-TCP ${service.nodePort}`);
      frontends.push(...nodeAddresses.map((address) => `${address}:${service.nodePort}`));
    }
    for (const frontend of frontends) {
      ipvs.push(`-A -t ${frontend} -s rr`, ...service.endpoints.map((e) => `-a -t ${frontend} -r ${e.ip}:${TARGET_PORT} -m -w 1`));
    }
  }
  const creates = KUBE_PROXY_SETS.map(([name, type]) => `create ${name} ${createArgs(type).join(' ')}`);
  node.run('ipset', ['restore', '-exist'], `${[...creates, ...new Set(entries)].join('\n')}\n`);
  node.run('ipvsadm', ['-R'], `${ipvs.join('\n')}\n`);
  const nonEmpty = new Set(entries.map((line) => defined(line.split(' ')[1], `the set of "${line}"`)));
  node.run('iptables-legacy-restore', ['--noflush'], kubeProxyRules(nonEmpty, { jumps: true }));
}

// ---- the cluster objects kipvs reads ----

function sourceYaml(services: readonly KubeProxyService[]): string {
  return services
    .map(
      (s) => `apiVersion: v1
kind: Service
metadata: { name: ${s.name}, namespace: default }
spec:
  type: ${s.nodePort ? 'NodePort' : 'ClusterIP'}
  clusterIP: ${s.clusterIP}
  clusterIPs: [${s.clusterIP}]
  ports:
    - { name: ${s.portName}, protocol: TCP, port: ${s.port}, targetPort: ${TARGET_PORT}${s.nodePort ? `, nodePort: ${s.nodePort}` : ''} }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${s.name}-abc
  namespace: default
  labels: { kubernetes.io/service-name: ${s.name} }
addressType: IPv4
ports: [{ name: ${s.portName}, protocol: TCP, port: ${TARGET_PORT} }]
endpoints:
${s.endpoints.map((e) => `  - addresses: [${e.ip}]\n    conditions: { ready: true }\n    nodeName: node-a\n    targetRef: { kind: Pod, name: ${e.name}, namespace: default }`).join('\n')}
`,
    )
    .join('---\n');
}

/** Written elsewhere and renamed into place, as the README asks. */
function writeSource(directory: string, services: readonly KubeProxyService[]): void {
  const staging = join(directory, '..', `${directory.split('/').pop()}.next.yaml`);
  writeFileSync(staging, sourceYaml(services));
  renameSync(staging, join(directory, 'services.yaml'));
}

// ---- reading the node ----

const withoutCounters = (text: string): string => text.replace(/^#.*\n/gm, '').replace(/\[\d+:\d+\]/g, '[0:0]');

type KernelState = Record<'ipvs' | 'ipsets' | 'links' | 'addresses' | 'mangle' | 'nat' | 'filter', string>;

function kernelState(node: TestNetns): KernelState {
  return {
    ipvs: node.run('ipvsadm', ['-Sn']),
    ipsets: node.run('ipset', ['save']),
    links: node.run('ip', ['-o', 'link', 'show']).replace(/\s+link\/ether \S+ brd \S+/g, ''),
    addresses: node.run('ip', ['-o', 'addr', 'show']).replace(/ tentative/g, ''),
    mangle: withoutCounters(node.run('iptables-legacy-save', ['-t', 'mangle'])),
    nat: withoutCounters(node.run('iptables-legacy-save', ['-t', 'nat'])),
    filter: withoutCounters(node.run('iptables-legacy-save', ['-t', 'filter'])),
  };
}

/** `Conns` of a virtual server: the kernel's count of connections since it was created. */
function connectionsSinceCreated(node: TestNetns, frontend: string): number {
  const line = node
    .run('ipvsadm', ['-Ln', '--stats', '--exact', '-t', frontend])
    .split('\n')
    .find((l) => l.startsWith('TCP'));
  return Number(defined(line, `the stats line of ${frontend}`).trim().split(/\s+/)[2]);
}

const sortedLines = (text: string): string[] => text.split('\n').filter(Boolean).sort();
const ipsetEntries = (node: TestNetns): string[] => sortedLines(node.run('ipset', ['save'])).filter((line) => line.startsWith('add '));
const ipsetCreates = (node: TestNetns): string[] => sortedLines(node.run('ipset', ['save'])).filter((line) => line.startsWith('create '));

/**
 * What iptables-save prints for a ruleset: restored into a scratch namespace (with the sets its
 * rules match) and saved, so expectations are written as kube-proxy writes them.
 */
function canonicalTables(restoreInputs: readonly string[]): Record<'mangle' | 'nat' | 'filter', string> {
  const scratch = createTestNetns('kipvs-canon');
  try {
    scratch.run('ipset', ['restore'], `${KUBE_PROXY_SETS.map(([name, type]) => `create ${name} ${createArgs(type).join(' ')}`).join('\n')}\n`);
    for (const input of restoreInputs) scratch.run('iptables-legacy-restore', ['--noflush'], input);
    const save = (table: string): string => withoutCounters(scratch.run('iptables-legacy-save', ['-t', table]));
    return { mangle: save('mangle'), nat: save('nat'), filter: save('filter') };
  } finally {
    scratch.destroy();
  }
}

const ruleLines = (save: string): string[] => save.split('\n').filter((line) => line.startsWith('-A '));
const duplicates = (lines: readonly string[]): string[] => lines.filter((line, index) => lines.indexOf(line) !== index);

// ---- traffic ----

/**
 * The steady client (scripts/lab/steady-client.mjs: a connection every ~20 ms, alternating targets,
 * each bounded to 10 s, counted as the answers come, so the test can wait for traffic rather than
 * sleep) runs 300 s at the most.
 */
const STEADY_CLIENT_SECONDS = 300;

async function waitFor(what: string, condition: () => boolean, timeoutMs = GENEROUS_MS): Promise<void> {
  await waitUntil(what, condition, timeoutMs, 200);
}

/**
 * Waits until the steady client has `count` more answers from every target than it had at the call;
 * with `agent`, fails at once (with its log) if the agent exits meanwhile.
 */
async function moreAnswers(client: SteadyClient, count: number, what: string, agent?: AgentProcess): Promise<void> {
  const answered = (): number[] => client.tally().map((target) => target.ok);
  const before = answered();
  const more = (): boolean => answered().every((n, index) => n >= defined(before[index], `the answers of target ${String(index)}`) + count);
  const description = `${String(count)} more answers from every target (${what})`;
  await (agent ? agent.waitFor(description, more, GENEROUS_MS, 200) : waitFor(description, more));
}

/** The node's addresses kube-proxy serves NodePorts on: all but loopback addresses and kube-ipvs0's. */
function nodeAddressesOf(node: TestNetns): string[] {
  return node
    .run('ip', ['-4', '-o', 'addr', 'show'])
    .split('\n')
    .filter((line) => line && !line.includes('kube-ipvs0'))
    .map((line) => defined(/inet (\S+)\//.exec(line)?.[1], `an address in "${line}"`))
    .filter((address) => !address.startsWith('127.'));
}

// ---- the switch ----

describe('switching a node from kube-proxy (IPVS mode) to kipvs', () => {
  let topology: Topology;
  let node: TestNetns;
  let sourceDir: string;
  let nodeAddresses: string[];
  let foundState: KernelState;
  let beforeSwitch: { ipvs: string[]; ipsetCreates: string[]; dummyLink: string; clusterIpConns: number; nodePortConns: number };
  let agent: AgentProcess | undefined;
  let steady: TargetTally[] = [];
  let held: HeldConnection | undefined;
  /** Connections the test made to web's frontends before the switch, which the kernel's counters must include. */
  const made = { clusterIp: 0, nodePort: 0 };

  const pods = [
    { name: 'web-0', ip: '10.201.0.2' },
    { name: 'web-1', ip: '10.201.1.2' },
    { name: 'web-2', ip: '10.201.2.2' },
  ];
  const web: KubeProxyService = { name: 'web', clusterIP: '10.96.0.10', port: 80, portName: 'http', nodePort: 30080, endpoints: pods };
  const api: KubeProxyService = { name: 'api', clusterIP: '10.96.0.1', port: 443, portName: 'https', endpoints: pods.slice(0, 2) };
  const webFrontends = (): string[] => [`${web.clusterIP}:80`, ...nodeAddresses.map((address) => `${address}:30080`)];

  const teardown = new Teardown();

  beforeAll(async () => {
    topology = teardown.createTopology(3);
    node = topology.node;
    await Promise.all(topology.pods.map((pod) => topology.startServer(pod, TARGET_PORT)));
    sourceDir = teardown.makeTempDir('kipvs-migrate-');
    node.run('iptables-legacy-restore', ['--noflush'], KUBELET_RULES);
    foundState = kernelState(node);
    nodeAddresses = nodeAddressesOf(node);
    writeKubeProxyState(node, [web, api], nodeAddresses);
    writeSource(sourceDir, [web, api]);
  });
  afterAll(async () => {
    held?.close();
    await teardown.run();
  });

  it("serves the ClusterIP and the NodePort from kube-proxy's state alone (the reproduction works)", () => {
    expect(topology.request(web.clusterIP, 80, 6)).toEqual({ answers: { pod0: 2, pod1: 2, pod2: 2 }, failures: 0 });
    made.clusterIp += 6;
    expect(topology.request(topology.nodeAddress, 30080, 3).failures).toBe(0);
    made.nodePort += 3;
    expect(topology.request(api.clusterIP, 443, 2)).toEqual({ answers: { pod0: 1, pod1: 1 }, failures: 0 });
  });

  it('takes over while a client keeps connecting: no connection fails, and an established one keeps working', async () => {
    held = await openHeld(topology.client, web.clusterIP, 80);
    made.clusterIp += 1;
    // The IPVS estimator folds per-CPU counters into the totals every 2 s: wait until they include
    // every connection made so far, so that the counts below are the virtual servers' real ones.
    await waitFor(
      'the counters include the connections made so far',
      () =>
        connectionsSinceCreated(node, `${web.clusterIP}:80`) >= made.clusterIp &&
        connectionsSinceCreated(node, `${topology.nodeAddress}:30080`) >= made.nodePort,
    );
    beforeSwitch = {
      ipvs: sortedLines(node.run('ipvsadm', ['-Sn'])),
      ipsetCreates: ipsetCreates(node),
      dummyLink: defined(node.run('ip', ['-o', 'link', 'show', 'kube-ipvs0']).split(':')[0], 'the index of kube-ipvs0'),
      clusterIpConns: connectionsSinceCreated(node, `${web.clusterIP}:80`),
      nodePortConns: connectionsSinceCreated(node, `${topology.nodeAddress}:30080`),
    };
    const client = await startSteadyClient(
      topology.client,
      [
        { host: web.clusterIP, port: 80 },
        { host: topology.nodeAddress, port: 30080 },
      ],
      STEADY_CLIENT_SECONDS,
    );
    await moreAnswers(client, 10, "kube-proxy's state alone"); // then kipvs starts on top of it
    agent = teardown.startAgent(node, ['--source', sourceDir, '--cluster-cidr', CLUSTER_CIDR]);
    // The first sync is done once kipvs has written its chains: it writes the rules of empty sets, kube-proxy does not.
    // Up to 300 s: at a load average of 30 on two cores, node alone took over a minute to start the agent.
    await agent.waitFor(
      'kipvs writes its chains',
      () => node.run('iptables-legacy-save', ['-t', 'nat']).includes('--match-set KUBE-LOAD-BALANCER dst,dst -j KUBE-LOAD-BALANCER'),
      300_000,
      200,
    );
    await moreAnswers(client, 10, 'kipvs alone', agent);
    steady = await client.stop();
    expect(
      steady.map((t) => ({ target: t.target, failed: t.failed, errors: t.errors })),
      agent.log(),
    ).toEqual([
      { target: `${web.clusterIP}:80`, failed: 0, errors: [] },
      { target: `${topology.nodeAddress}:30080`, failed: 0, errors: [] },
    ]);
    expect(
      steady.every((t) => t.ok >= 10),
      JSON.stringify(steady),
    ).toBe(true);
    expect(await held.echo('after the switch')).toBe(`${held.backend} after the switch`);
  });

  it("adopts kube-proxy's virtual servers, ipsets and kube-ipvs0 as they are: nothing is recreated", async () => {
    expect(sortedLines(node.run('ipvsadm', ['-Sn']))).toEqual(beforeSwitch.ipvs);
    // Their connection counters went on counting: a virtual server deleted and added again would
    // count from zero. The kernel folds its per-CPU counters into these every 2 s (the estimator).
    const [toClusterIp, toNodePort] = steady;
    const counted = {
      clusterIp: beforeSwitch.clusterIpConns + defined(toClusterIp, "the steady client's ClusterIP tally").ok,
      nodePort: beforeSwitch.nodePortConns + defined(toNodePort, "the steady client's NodePort tally").ok,
    };
    const now = (): { clusterIp: number; nodePort: number } => ({
      clusterIp: connectionsSinceCreated(node, `${web.clusterIP}:80`),
      nodePort: connectionsSinceCreated(node, `${topology.nodeAddress}:30080`),
    });
    await waitFor('the counters include every connection', () => now().clusterIp >= counted.clusterIp && now().nodePort >= counted.nodePort).catch(
      (error: unknown) => {
        throw new Error(`${error instanceof Error ? error.message : String(error)}: counted ${JSON.stringify(counted)}, kernel says ${JSON.stringify(now())}`);
      },
    );
    // A set destroyed and created again gets a new random initval.
    expect(ipsetCreates(node)).toEqual(beforeSwitch.ipsetCreates);
    expect(ipsetEntries(node)).toEqual([
      'add KUBE-CLUSTER-IP 10.96.0.1,tcp:443',
      'add KUBE-CLUSTER-IP 10.96.0.10,tcp:80',
      'add KUBE-IPVS-IPS 10.96.0.1',
      'add KUBE-IPVS-IPS 10.96.0.10',
      'add KUBE-LOOP-BACK 10.201.0.2,tcp:8080,10.201.0.2',
      'add KUBE-LOOP-BACK 10.201.1.2,tcp:8080,10.201.1.2',
      'add KUBE-LOOP-BACK 10.201.2.2,tcp:8080,10.201.2.2',
      'add KUBE-NODE-PORT-TCP 30080',
    ]);
    expect(node.run('ip', ['-o', 'link', 'show', 'kube-ipvs0']).split(':')[0]).toBe(beforeSwitch.dummyLink);
    expect(sortedLines(node.run('ip', ['-o', '-4', 'addr', 'show', 'dev', 'kube-ipvs0'])).map((line) => /inet (\S+)/.exec(line)?.[1])).toEqual([
      '10.96.0.1/32',
      '10.96.0.10/32',
    ]);
  });

  it("rewrites kube-proxy's chains into its own layout in place: every jump once, kubelet's chains untouched", () => {
    const found = canonicalTables([KUBELET_RULES]);
    const kubeProxyBefore = canonicalTables([
      KUBELET_RULES,
      kubeProxyRules(new Set(['KUBE-LOOP-BACK', 'KUBE-CLUSTER-IP', 'KUBE-NODE-PORT-TCP']), { jumps: true }),
    ]);
    // kipvs's layout is kube-proxy's with every set in use: the rules of empty sets stay written.
    const expected = canonicalTables([KUBELET_RULES, kubeProxyRules(new Set(KUBE_PROXY_SETS.map(([name]) => name)), { jumps: true })]);
    const now = kernelState(node);
    expect(kubeProxyBefore.nat).not.toEqual(expected.nat); // the test's own premise: kipvs had something to rewrite
    expect.soft(now.mangle).toEqual(found.mangle);
    expect.soft(now.nat).toEqual(expected.nat);
    expect.soft(now.filter).toEqual(expected.filter);
    for (const table of ['nat', 'filter'] as const) {
      expect.soft(duplicates(ruleLines(now[table])), table).toEqual([]);
      expect
        .soft(
          duplicates(
            now[table]
              .split('\n')
              .filter((line) => line.startsWith(':'))
              .map((line) => defined(line.split(' ')[0], `the chain of "${line}"`)),
          ),
          table,
        )
        .toEqual([]);
    }
  });

  it('follows a change after the switch: a removed endpoint is taken out of every adopted virtual server', async () => {
    if (!agent) throw new Error('no agent: the switch test did not start it');
    writeSource(sourceDir, [{ ...web, endpoints: pods.slice(0, 2) }, api]);
    const pod2Serves = (frontend: string): boolean =>
      node
        .run('ipvsadm', ['-Ln', '-t', frontend])
        .split('\n')
        .some((line) => line.includes('10.201.2.2:8080') && !/Masq\s+0\s/.test(line));
    await agent.waitFor('10.201.2.2 no longer served', () => webFrontends().every((frontend) => !pod2Serves(frontend)), GENEROUS_MS, 200);
    expect(topology.request(web.clusterIP, 80, 6)).toEqual({ answers: { pod0: 3, pod1: 3 }, failures: 0 });
    expect(topology.request(topology.nodeAddress, 30080, 6)).toEqual({ answers: { pod0: 3, pod1: 3 }, failures: 0 });
    await waitFor('the hairpin entry of 10.201.2.2 goes', () => !ipsetEntries(node).includes('add KUBE-LOOP-BACK 10.201.2.2,tcp:8080,10.201.2.2'));
    expect(ipsetEntries(node).filter((line) => line.startsWith('add KUBE-LOOP-BACK'))).toEqual([
      'add KUBE-LOOP-BACK 10.201.0.2,tcp:8080,10.201.0.2',
      'add KUBE-LOOP-BACK 10.201.1.2,tcp:8080,10.201.1.2',
    ]);
  });

  it("leaves kube-proxy able to take the node back: its set creation and jump checks accept kipvs's objects", async () => {
    if (!agent) throw new Error('no agent: the switch test did not start it');
    held?.close();
    held = undefined;
    const exitCode = await agent.stop('SIGTERM');
    expect(exitCode, agent.log()).toBe(0);
    // kube-proxy's first sync: `ipset create … -exist` for every set (fails on a set of another
    // type or size), EnsureRule (`iptables -C`, then -I only if missing) for every jump, and
    // its chains rewritten with --noflush.
    for (const [name, type] of KUBE_PROXY_SETS) node.run('ipset', ['create', name, ...createArgs(type), '-exist']);
    for (const [table, from, to, text] of KUBE_PROXY_JUMPS)
      node.run('iptables-legacy', ['-t', table, '-C', from, '-m', 'comment', '--comment', text, '-j', to]);
    node.run('iptables-legacy-restore', ['--noflush'], kubeProxyRules(new Set(['KUBE-LOOP-BACK', 'KUBE-CLUSTER-IP', 'KUBE-NODE-PORT-TCP']), { jumps: false }));
    const now = kernelState(node);
    for (const table of ['nat', 'filter'] as const) expect(duplicates(ruleLines(now[table])), table).toEqual([]);
    expect(topology.request(web.clusterIP, 80, 4)).toEqual({ answers: { pod0: 2, pod1: 2 }, failures: 0 });
  });

  it('cleanup leaves the node as it was before kube-proxy: only kubelet’s chains remain', () => {
    kipvs('cleanup', '--netns', node.name);
    expect(kernelState(node)).toEqual(foundState);
  });
});

// ---- what kube-proxy made that kipvs must recognise as its own ----

describe("kube-proxy's virtual servers that kipvs does not find on kube-ipvs0", () => {
  let topology: Topology;
  let node: TestNetns;
  let sourceDir: string;
  let nodeAddresses: string[];
  const pods = [
    { name: 'web-0', ip: '10.201.0.2' },
    { name: 'web-1', ip: '10.201.1.2' },
  ];
  // A node address on lo (BGP-announced node IPs often live there): kube-proxy skips loopback
  // addresses (netlinkHandle.isValidForSet), not the lo interface, so it serves NodePorts on it.
  const addressOnLo = '192.0.2.50';
  const web: KubeProxyService = { name: 'web', clusterIP: '10.96.0.10', port: 80, portName: 'http', nodePort: 30080, endpoints: pods };
  // Deleted while no proxy ran (between kube-proxy's pod going and kipvs's starting).
  const gone: KubeProxyService = { name: 'gone', clusterIP: '10.96.0.99', port: 80, portName: 'http', nodePort: 30099, endpoints: pods.slice(0, 1) };

  const teardown = new Teardown();

  beforeAll(async () => {
    topology = teardown.createTopology(2);
    node = topology.node;
    node.run('ip', ['addr', 'add', `${addressOnLo}/32`, 'dev', 'lo']);
    await Promise.all(topology.pods.map((pod) => topology.startServer(pod, TARGET_PORT)));
    sourceDir = teardown.makeTempDir('kipvs-migrate-');
    node.run('iptables-legacy-restore', ['--noflush'], KUBELET_RULES);
    nodeAddresses = nodeAddressesOf(node);
    writeKubeProxyState(node, [web, gone], nodeAddresses);
    // kipvs starts on what the cluster holds now: no `gone`, and web-1 has left web.
    writeSource(sourceDir, [{ ...web, endpoints: pods.slice(0, 1) }]);
    kipvs(
      'agent',
      '--once',
      '--source',
      sourceDir,
      '--netns',
      node.name,
      '--hostname-override',
      'node-a',
      '--cluster-cidr',
      CLUSTER_CIDR,
      '--graceful-termination-timeout',
      '0',
    );
  });
  afterAll(() => teardown.run());

  it("removes a deleted Service's ClusterIP virtual server, its address on kube-ipvs0 and its ipset entries", () => {
    expect(node.run('ipvsadm', ['-Sn'])).not.toContain('10.96.0.99');
    expect(node.run('ip', ['-o', 'addr', 'show', 'dev', 'kube-ipvs0'])).not.toContain('10.96.0.99');
    expect(ipsetEntries(node)).toEqual([
      'add KUBE-CLUSTER-IP 10.96.0.10,tcp:80',
      'add KUBE-IPVS-IPS 10.96.0.10',
      'add KUBE-LOOP-BACK 10.201.0.2,tcp:8080,10.201.0.2',
      'add KUBE-NODE-PORT-TCP 30080',
    ]);
    expect(topology.request(web.clusterIP, 80, 2)).toEqual({ answers: { pod0: 2 }, failures: 0 });
  });

  it("removes a deleted Service's NodePort virtual servers, which only kube-proxy can have made", () => {
    expect.soft(sortedLines(node.run('ipvsadm', ['-Sn'])).filter((line) => line.includes(':30099 '))).toEqual([]);
    // Left in place, they go on forwarding the deleted Service's NodePort to its old endpoint.
    expect.soft(topology.request(topology.nodeAddress, 30099, 1)).toEqual({ answers: {}, failures: 1 });
  });

  it('keeps serving NodePorts on a node address on lo, as kube-proxy did, and updates their real servers', () => {
    expect(nodeAddresses).toContain(addressOnLo);
    for (const frontend of [`${web.clusterIP}:80`, ...nodeAddresses.map((address) => `${address}:30080`)]) {
      const lines = node
        .run('ipvsadm', ['-Sn'])
        .split('\n')
        .filter((line) => line.includes(` -t ${frontend} `));
      expect.soft(lines, frontend).toEqual([`-A -t ${frontend} -s rr`, `-a -t ${frontend} -r 10.201.0.2:8080 -m -w 1`]);
    }
    // Left to kube-proxy's real servers, the NodePort on that address still sends to web-1, which left.
    expect.soft(topology.request(addressOnLo, 30080, 4)).toEqual({ answers: { pod0: 4 }, failures: 0 });
  });
});
