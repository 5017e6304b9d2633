// Conntrack over netlink with real UDP flows through IPVS, the conntrack tool as the oracle: a
// client namespace sends datagrams from fixed source ports to UDP virtual servers (masq, with
// net.ipv4.vs.conntrack=1) of a node namespace, answered by pods. kipvs must read the table as
// `conntrack -L` prints it, and delete exactly the flows to one real server of one virtual server.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConntrackClient } from '../../src/netlink/conntrack/client.js';
import type { ConntrackEntry, ConntrackTuple } from '../../src/netlink/conntrack/types.js';
import { formatProtocol } from '../../src/netlink/conntrack/types.js';
import { IPS_DST_NAT, IPS_SRC_NAT } from '../../src/netlink/conntrack/wire.js';
import { IpvsClient } from '../../src/netlink/ipvs/client.js';
import type { IpvsDestination, IpvsService, ServiceKeyByAddress } from '../../src/netlink/ipvs/types.js';
import { NetlinkKernel } from '../../src/kernel/netlink-kernel.js';
import { realServerKey, virtualServerKey, type DesiredState } from '../../src/model/desired.js';
import { diff } from '../../src/reconcile/diff.js';
import { defined } from '../support/defined.js';
import { Teardown } from './helpers/teardown.js';
import type { Topology } from './helpers/topology.js';
import { GENEROUS_MS } from './helpers/wait.js';

const dns: ServiceKeyByAddress = { family: 'inet', protocol: 'UDP', address: '10.96.0.10', port: 53 };
const syslog: ServiceKeyByAddress = { family: 'inet', protocol: 'UDP', address: '10.96.0.11', port: 514 };
const dns6: ServiceKeyByAddress = { family: 'inet6', protocol: 'UDP', address: 'fd00:96::10', port: 53 };
const ENDPOINT_PORT = 5353;

const service = (key: ServiceKeyByAddress): IpvsService => ({ key, scheduler: 'rr', flags: 0, timeout: 0, netmask: key.family === 'inet' ? 32 : 128 });
const destination = (address: string): IpvsDestination => ({
  address,
  port: ENDPOINT_PORT,
  family: address.includes(':') ? 'inet6' : 'inet',
  forwarding: 'masq',
  weight: 1,
  upperThreshold: 0,
  lowerThreshold: 0,
});

/** A flow as both kipvs and the tool can say it: `udp 10.200.0.2:40001 -> 10.96.0.10:53 / 10.201.0.2:5353 -> 10.200.0.2:40001`. */
const side = (tuple: Pick<ConntrackTuple, 'source' | 'destination' | 'sourcePort' | 'destinationPort'>): string =>
  `${tuple.source}:${tuple.sourcePort} -> ${tuple.destination}:${tuple.destinationPort}`;
const flowText = (entry: ConntrackEntry): string => `${formatProtocol(entry.original.protocol)} ${side(entry.original)} / ${side(entry.reply)}`;

interface ToolFlow {
  readonly text: string;
  readonly id: number;
}

/**
 * `conntrack -L -o id` lines: `udp 17 29 src=A dst=B sport=P dport=Q src=C dst=D sport=R dport=S
 * [ASSURED] mark=0 use=1 id=N`; the first src/dst/sport/dport are the original direction, the
 * second the reply, and the last id= the entry's (ICMP tuples have an id= of their own).
 */
function parseToolListing(output: string): ToolFlow[] {
  return output
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [protocol] = line.trim().split(/\s+/);
      const fields = [...line.matchAll(/(\w+)=(\S+)/g)].map(
        ([field, name, value]) => [defined(name, `the name in ${field}`), defined(value, `the value in ${field}`)] as const,
      );
      const all = (name: string): string[] => fields.filter(([key]) => key === name).map(([, value]) => value);
      const [src, replySrc] = all('src');
      const [dst, replyDst] = all('dst');
      const [sport, replySport] = all('sport');
      const [dport, replyDport] = all('dport');
      const text = `${protocol} ${src}:${sport} -> ${dst}:${dport} / ${replySrc}:${replySport} -> ${replyDst}:${replyDport}`;
      return { text, id: Number(all('id').at(-1)) };
    });
}

describe('conntrack of UDP flows through IPVS, against the conntrack tool', () => {
  let topology: Topology;
  let ipvs: IpvsClient;
  let conntrack: ConntrackClient;
  const teardown = new Teardown();
  const [pod0, pod1, pod0v6] = ['10.201.0.2', '10.201.1.2', 'fd00:201::2'];

  /** `conntrack -L` lists IPv4 flows unless told `-f ipv6`. */
  const tool = (...args: string[]): ToolFlow[] => parseToolListing(topology.node.run('conntrack', ['-L', '-o', 'id', ...args]));
  const toolTexts = (...args: string[]): string[] =>
    tool(...args)
      .map((flow) => flow.text)
      .sort();

  /** Two datagrams from the client's `sourcePort` to a virtual server: one flow. Returns the backend's address. */
  const send = (key: ServiceKeyByAddress, sourcePort: number): string => {
    const helper = join(import.meta.dirname, 'helpers', 'udp-send.mjs');
    const output = topology.client.run(process.execPath, [helper, key.address, String(key.port), String(sourcePort), '2']);
    const result = JSON.parse(output) as { answers: Record<string, number>; failures: number };
    expect(result.failures).toBe(0);
    const [backend] = Object.keys(result.answers);
    const addresses: Record<string, string> = key.family === 'inet6' ? { pod0: pod0v6 } : { pod0, pod1 };
    const address = backend === undefined ? undefined : addresses[backend];
    expect(address, `answered by ${String(backend)}`).toBeDefined();
    return defined(address, `the address of ${String(backend)}`);
  };

  /** The flow from the client's source port, as it must read: client -> VIP, reply backend -> client. */
  const expectedFlow = (key: ServiceKeyByAddress, sourcePort: number, backend: string): string => {
    const client = key.family === 'inet' ? '10.200.0.2' : 'fd00:200::2';
    return `udp ${client}:${sourcePort} -> ${key.address}:${key.port} / ${backend}:${ENDPOINT_PORT} -> ${client}:${sourcePort}`;
  };

  /** IPv6 beside the topology's IPv4: client fd00:200::2 -> node -> pod0 fd00:201::2, no DAD delay. */
  const addIPv6 = (): void => {
    const { node, client, pods } = topology;
    const pod0Ns = defined(pods[0], 'pod0').ns;
    node.run('sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1']);
    client.run('ip', ['-6', 'addr', 'add', 'fd00:200::2/64', 'dev', 'eth0', 'nodad']);
    node.run('ip', ['-6', 'addr', 'add', 'fd00:200::1/64', 'dev', 'to-client', 'nodad']);
    client.run('ip', ['-6', 'route', 'add', 'default', 'via', 'fd00:200::1']);
    pod0Ns.run('ip', ['-6', 'addr', 'add', `${pod0v6}/64`, 'dev', 'eth0', 'nodad']);
    node.run('ip', ['-6', 'addr', 'add', 'fd00:201::1/64', 'dev', 'to-pod0', 'nodad']);
    pod0Ns.run('ip', ['-6', 'route', 'add', 'default', 'via', 'fd00:201::1']);
    node.run('ip', ['-6', 'addr', 'add', `${dns6.address}/128`, 'dev', 'kube-ipvs0', 'nodad']);
    node.run('ip6tables-legacy', ['-A', 'FORWARD', '-m', 'conntrack', '--ctstate', 'INVALID', '-j', 'DROP']);
  };

  /** pod0's IPv6 UDP server, on the same port number as its IPv4 one. */
  const startEcho6 = (): Promise<void> => {
    const helper = join(import.meta.dirname, 'helpers', 'udp-echo.mjs');
    const pod0Ns = defined(topology.pods[0], 'pod0').ns;
    const echo6 = spawn('ip', ['netns', 'exec', pod0Ns.name, process.execPath, helper, 'pod0', String(ENDPOINT_PORT), 'udp6'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    teardown.add(() => echo6.kill('SIGKILL'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`the IPv6 UDP server did not start within ${String(GENEROUS_MS / 1000)} s`));
      }, GENEROUS_MS);
      echo6.stdout.once('data', () => {
        clearTimeout(timer);
        resolve();
      });
      echo6.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the IPv6 UDP server exited with ${String(code)}`));
      });
    });
  };

  beforeAll(async () => {
    topology = teardown.createTopology(2);
    const { node } = topology;
    node.run('ip', ['link', 'add', 'kube-ipvs0', 'type', 'dummy']);
    for (const key of [dns, syslog]) node.run('ip', ['addr', 'add', `${key.address}/32`, 'dev', 'kube-ipvs0']);
    node.run('sysctl', ['-w', 'net.ipv4.vs.conntrack=1']);
    // The kernel tracks a namespace's flows only once something there uses conntrack: kube-proxy's
    // (and kipvs's) iptables rules do, with -m conntrack in KUBE-FORWARD. One such rule here.
    node.run('iptables-legacy', ['-A', 'FORWARD', '-m', 'conntrack', '--ctstate', 'INVALID', '-j', 'DROP']);
    // net.ipv4.vs.expire_nodest_conn stays 0: at 1, kernels from 5.9 expire the connections of a
    // deleted real server from a work queue, and drop their conntrack entries with them, racing
    // the deletion under test (ip_vs_expire_nodest_conn_flush()).
    addIPv6();
    await Promise.all([...topology.pods.map((pod) => topology.startServer(pod, ENDPOINT_PORT, 'udp')), startEcho6()]);
    ipvs = await IpvsClient.open({ netns: node.path });
    teardown.add(() => {
      ipvs.close();
    });
    await ipvs.applyAll([
      { op: 'addService', service: service(dns) },
      { op: 'addDestination', service: dns, destination: destination(pod0) },
      { op: 'addDestination', service: dns, destination: destination(pod1) },
      { op: 'addService', service: service(syslog) },
      { op: 'addDestination', service: syslog, destination: destination(pod0) },
      { op: 'addService', service: service(dns6) },
      { op: 'addDestination', service: dns6, destination: destination(pod0v6) },
    ]);
    conntrack = ConntrackClient.open({ netns: node.path });
    teardown.add(() => {
      conntrack.close();
    });
  });

  afterAll(() => teardown.run());

  it('reads an IPVS masq UDP flow as the tool does: client -> virtual server, reply real server -> client, no IPS_DST_NAT', async () => {
    const backend = send(dns, 40001);
    const flow = expectedFlow(dns, 40001, backend);
    expect(toolTexts('-p', 'udp', '--orig-port-src', '40001')).toEqual([flow]);
    const [first, ...rest] = await conntrack.list({ original: { sourcePort: 40001 } });
    expect(rest).toEqual([]);
    const entry = defined(first, 'the flow from port 40001');
    expect(flowText(entry)).toBe(flow);
    // IPVS rewrites the reply tuple (nf_conntrack_alter_reply()) without marking the entry as
    // NATed, so the tool's --dst-nat, which tests the status bit, never sees IPVS flows; the
    // reply source is what tells the real server, and what kipvs filters on.
    expect(defined(entry.status, 'the status of the flow') & (IPS_DST_NAT | IPS_SRC_NAT)).toBe(0);
    expect(toolTexts('-p', 'udp', '--dst-nat', backend)).toEqual([]);
    expect(toolTexts('-p', 'udp', '--orig-dst', dns.address, '--reply-src', backend, '--reply-port-src', String(ENDPOINT_PORT))).toContain(flow);
  });

  it('reads every flow the tool lists, IPv4 and IPv6, tuple for tuple and id for id, and nothing else', async () => {
    send(dns, 40101);
    send(dns, 40102);
    send(syslog, 40103);
    expect(send(dns6, 40104)).toBe(pod0v6);
    const theirs = { inet: tool('-f', 'ipv4'), inet6: tool('-f', 'ipv6') };
    expect(theirs.inet.length).toBeGreaterThanOrEqual(4);
    expect(theirs.inet6.map((flow) => flow.text)).toContain(expectedFlow(dns6, 40104, pod0v6));
    const ours = await conntrack.list();
    const lines = (entries: readonly ConntrackEntry[]): string[] => entries.map((entry) => `${entry.id} ${flowText(entry)}`).sort();
    const toolLines = (flows: readonly ToolFlow[]): string[] => flows.map((flow) => `${flow.id} ${flow.text}`).sort();
    expect(lines(ours)).toEqual(toolLines([...theirs.inet, ...theirs.inet6]));
    expect(lines(await conntrack.list({ family: 'inet' }))).toEqual(toolLines(theirs.inet));
    expect(lines(await conntrack.list({ family: 'inet6' }))).toEqual(toolLines(theirs.inet6));
  });

  it('deletes IPv6 flows by the same rule', async () => {
    const flow = expectedFlow(dns6, 40151, send(dns6, 40151));
    expect(toolTexts('-f', 'ipv6', '-p', 'udp')).toContain(flow);
    const before = toolTexts('-f', 'ipv6', '-p', 'udp', '--orig-dst', dns6.address, '--reply-src', pod0v6, '--reply-port-src', String(ENDPOINT_PORT));
    expect(before).toContain(flow);
    // Any spelling of the virtual address selects the same flows.
    const target = { family: 'inet6', virtualAddress: 'fd00:96:0::10', virtualPort: 53, endpointAddress: pod0v6, endpointPort: ENDPOINT_PORT } as const;
    expect(await conntrack.deleteUdpFlowsTo(target)).toBe(before.length);
    expect(toolTexts('-f', 'ipv6', '-p', 'udp')).toEqual([]);
  });

  it('deletes the UDP flows to one real server of one virtual server, and no other flow', async () => {
    const ports = [40201, 40202, 40203, 40204];
    const backends = ports.map((port) => send(dns, port));
    expect([...backends].sort()).toEqual([pod0, pod0, pod1, pod1]); // rr alternates
    const syslogBackend = send(syslog, 40205);
    const victims = ports.filter((_, i) => backends[i] === pod0).map((port) => expectedFlow(dns, port, pod0));
    const survivors = [
      ...ports.filter((_, i) => backends[i] === pod1).map((port) => expectedFlow(dns, port, pod1)),
      expectedFlow(syslog, 40205, syslogBackend),
    ];
    expect(toolTexts('-p', 'udp')).toEqual(expect.arrayContaining([...victims, ...survivors]));

    const target = { family: 'inet', virtualAddress: dns.address, virtualPort: dns.port, endpointAddress: pod0, endpointPort: ENDPOINT_PORT } as const;
    // Flows to pod0 from the earlier tests go too: every flow of the pair, whatever its client port.
    const before = toolTexts('-p', 'udp', '--orig-dst', dns.address, '--orig-port-dst', '53', '--reply-src', pod0, '--reply-port-src', String(ENDPOINT_PORT));
    expect(before).toEqual(expect.arrayContaining(victims));
    expect(await conntrack.deleteUdpFlowsTo(target)).toBe(before.length);

    const after = toolTexts('-p', 'udp');
    for (const victim of victims) expect(after).not.toContain(victim);
    expect(after).toEqual(expect.arrayContaining(survivors));
    expect(after.filter((flow) => flow.includes(`-> ${dns.address}:53 / ${pod0}:`))).toEqual([]);
    expect(await conntrack.deleteUdpFlowsTo(target)).toBe(0);
  });

  it('an entry that is gone already counts as done; a refused target names itself', async () => {
    send(syslog, 40301);
    const [first] = await conntrack.list({ original: { sourcePort: 40301 } });
    const entry = defined(first, 'the flow from port 40301');
    expect(await conntrack.deleteFlows([entry])).toEqual([{ ok: true, deleted: true }]);
    expect(await conntrack.deleteFlows([entry])).toEqual([{ ok: true, deleted: false }]);
    const [outcome] = await conntrack.deleteUdpFlows([
      { family: 'inet', virtualAddress: dns.address, virtualPort: 53, endpointAddress: 'fd00::1', endpointPort: 1 },
    ]);
    const refused = defined(outcome, 'the outcome of the refused deletion');
    expect(refused.ok).toBe(false);
    expect(!refused.ok && refused.error.message).toMatch(/^delete UDP flows to \[fd00::1\]:1 of UDP 10\.96\.0\.10:53: EINVAL/);
  });

  it('the kernel adapter deletes the flows of a removed UDP real server right after deleting it, as the diff plans', async () => {
    const ports = [40401, 40402];
    const backends = ports.map((port) => send(dns, port));
    expect([...backends].sort()).toEqual([pod0, pod1]);
    const syslogFlow = expectedFlow(syslog, 40403, send(syslog, 40403));
    const kernel = await NetlinkKernel.open({ netns: topology.node.path, dummyInterface: 'kube-ipvs0', ipsetNames: [] });
    try {
      // pod1 leaves the DNS virtual server; everything else stays as it is.
      const desired: DesiredState = {
        virtualServers: new Map(
          [
            { key: dns, reals: [pod0] },
            { key: syslog, reals: [pod0] },
            { key: dns6, reals: [pod0v6] },
          ].map(({ key, reals }) => [
            virtualServerKey(key),
            {
              service: service(key),
              realServers: new Map(reals.map((r) => [realServerKey(destination(r)), destination(r)])),
              owner: { namespace: 'kube-system', name: 'x', port: 'p' },
            },
          ]),
        ),
        boundAddresses: new Set([dns.address, syslog.address, dns6.address]),
        ipsets: new Map(),
        problems: [],
      };
      const context = {
        dummyInterface: 'kube-ipvs0',
        excludeCidrs: [],
        gracefulTerminationMs: 60_000,
        now: Date.now(),
        draining: new Map(),
        previouslyOwned: new Set<string>(),
      };
      const plan = diff(desired, await kernel.observe(), context);
      expect(plan.operations.map((operation) => (operation.kind === 'ipvs' ? operation.operation.op : operation.kind))).toEqual([
        'deleteDestination',
        'deleteUdpFlows',
      ]);
      expect(toolTexts('-p', 'udp', '--reply-src', pod1).length).toBeGreaterThan(0);

      const result = await kernel.apply(plan);
      expect(result.failures.map((failure) => failure.error.message)).toEqual([]);
      expect(result.applied).toBe(2);
      expect(topology.node.run('ipvsadm', ['-Ln', '-u', `${dns.address}:53`])).not.toContain(pod1);
      expect(toolTexts('-p', 'udp', '--orig-dst', dns.address, '--reply-src', pod1)).toEqual([]);
      expect(toolTexts('-p', 'udp')).toEqual(
        expect.arrayContaining([expectedFlow(dns, defined(ports[backends.indexOf(pod0)], 'the port whose flow went to pod0'), pod0), syslogFlow]),
      );
      expect(diff(desired, await kernel.observe(), context).operations).toEqual([]);
    } finally {
      kernel.close();
    }
  });
});
