// The differential test: for a cluster with every kind of Service a kube-proxy IPVS node programs
// (ClusterIP multi-port, UDP+TCP, NodePort, externalIPs, LoadBalancer with source ranges,
// affinity, eTP Local with local and remote endpoints, terminating endpoints, topology hints), the
// kernel state kipvs programs equals what kube-proxy 1.3x IPVS mode programs for it.
//
// The expected state (fixtures/differential/expected-*.txt) is written down from kube-proxy's
// source, pkg/proxy/ipvs/proxier.go syncProxyRules, per Service port:
// - the ClusterIP virtual server with the scheduler, `-p <timeoutSeconds>` for ClientIP affinity
//   (FlagPersistent, StickyMaxAgeSeconds), its address in KUBE-CLUSTER-IP and bound (KUBE-IPVS-IPS
//   is activeBindAddrs);
// - a virtual server per external IP (KUBE-EXTERNAL-IP, or -LOCAL with eTP Local; bound unless it
//   is a node address) and per load balancer ingress IP (KUBE-LOAD-BALANCER, -FW and
//   -SOURCE-CIDR per source range with loadBalancerSourceRanges; -SOURCE-IP only when a range holds
//   the node IP, which 198.51.100.0/24 does not);
// - for a NodePort, the port in KUBE-NODE-PORT-<PROTO> (and -LOCAL- with eTP Local) and a virtual
//   server on each node IP (ipGetter.NodeIPs: local addresses but loopback and kube-ipvs0's);
// - endpoints through syncEndpoint and proxy.CategorizeEndpoints (pkg/proxy/topology.go): ready
//   ones, else serving-and-terminating ones; topology hints for the node's zone; eTP Local external
//   virtual servers get the local ones only; every local endpoint, ready or not, in KUBE-LOOP-BACK
//   as ip,proto:port,ip; weight 1 (kube-proxy's only weight), masquerading forwarding (-m).
// The sets kube-proxy creates are NewIPSet's of ipsetInfo (pkg/proxy/ipvs/ipset.go), IPv4 here.
// The iptables rules are compared with kube-proxy's by test/kernel/migrate-from-kube-proxy.test.ts
// and test/kernel/iptables.test.ts, not here: they do not depend on the Services.
//
// Every difference kipvs intends is in INTENDED_DIFFERENCES below and in
// docs/migrating-from-kube-proxy.md ("Differences found by the differential test").
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestNetns, type TestNetns } from './helpers/netns.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'dist', 'cli', 'main.js');
const fixtures = join(import.meta.dirname, 'fixtures', 'differential');

/** kube-proxy's ipsetInfo (pkg/proxy/ipvs/ipset.go) for an IPv4 proxier: name and type. */
const KUBE_PROXY_SETS = [
  'KUBE-LOOP-BACK hash:ip,port,ip',
  'KUBE-CLUSTER-IP hash:ip,port',
  'KUBE-EXTERNAL-IP hash:ip,port',
  'KUBE-EXTERNAL-IP-LOCAL hash:ip,port',
  'KUBE-LOAD-BALANCER hash:ip,port',
  'KUBE-LOAD-BALANCER-FW hash:ip,port',
  'KUBE-LOAD-BALANCER-LOCAL hash:ip,port',
  'KUBE-LOAD-BALANCER-SOURCE-IP hash:ip,port,ip',
  'KUBE-LOAD-BALANCER-SOURCE-CIDR hash:ip,port,net',
  'KUBE-NODE-PORT-TCP bitmap:port',
  'KUBE-NODE-PORT-LOCAL-TCP bitmap:port',
  'KUBE-NODE-PORT-UDP bitmap:port',
  'KUBE-NODE-PORT-LOCAL-UDP bitmap:port',
  'KUBE-NODE-PORT-SCTP-HASH hash:ip,port',
  'KUBE-NODE-PORT-LOCAL-SCTP-HASH hash:ip,port',
  'KUBE-HEALTH-CHECK-NODE-PORT bitmap:port',
  'KUBE-IPVS-IPS hash:ip',
];

/**
 * Lines kipvs programs that kube-proxy does not (`+`), or leaves out that kube-proxy programs
 * (`-`), each with the reason; docs/migrating-from-kube-proxy.md lists the same. None so far.
 */
const INTENDED_DIFFERENCES: readonly { readonly line: string; readonly change: '+' | '-'; readonly why: string }[] = [];

const lines = (text: string): string[] =>
  text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .sort();

function withIntendedDifferences(expected: readonly string[], prefix: string): string[] {
  const result = new Set(expected);
  for (const difference of INTENDED_DIFFERENCES) {
    if (!difference.line.startsWith(prefix)) continue;
    if (difference.change === '+') result.add(difference.line);
    else result.delete(difference.line);
  }
  return [...result].sort();
}

describe('differential: kipvs programs what kube-proxy 1.3x IPVS mode programs', () => {
  let created: TestNetns | undefined;
  const netns = (): TestNetns => {
    if (!created) throw new Error('no node namespace');
    return created;
  };

  beforeAll(() => {
    created = createTestNetns('kipvs-diff');
    const node = created;
    node.run('ip', ['link', 'add', 'eth0', 'type', 'dummy']);
    node.run('ip', ['addr', 'add', '192.168.10.10/24', 'dev', 'eth0']);
    node.run('ip', ['link', 'set', 'eth0', 'up']);
    const result = spawnSync(
      process.execPath,
      [
        cli,
        'agent',
        '--once',
        '--source',
        join(fixtures, 'cluster.yaml'),
        '--netns',
        node.name,
        '--hostname-override',
        'node-a',
        '--cluster-cidr',
        '10.244.0.0/16',
      ],
      {
        encoding: 'utf8',
      },
    );
    if (result.status !== 0) throw new Error(`kipvs agent --once failed (${result.status}): ${result.stderr}`);
  }, 600_000);
  afterAll(() => {
    if (created) spawnSync(process.execPath, [cli, 'cleanup', '--netns', created.name]);
    created?.destroy();
  });

  it('programs the same virtual servers and real servers (ipvsadm -Sn)', () => {
    const expected = withIntendedDifferences(lines(readFileSync(join(fixtures, 'expected-ipvsadm.txt'), 'utf8')), '-');
    expect(lines(netns().run('ipvsadm', ['-Sn']))).toEqual(expected);
  });

  it('creates the same sets with the same entries (ipset save)', () => {
    const saved = netns().run('ipset', ['save']).split('\n');
    const created = saved.filter((line) => line.startsWith('create KUBE-')).map((line) => line.split(' ').slice(1, 3).join(' '));
    expect(created.sort()).toEqual(withIntendedDifferences(KUBE_PROXY_SETS, 'KUBE-'));
    const expected = withIntendedDifferences(lines(readFileSync(join(fixtures, 'expected-ipset.txt'), 'utf8')), 'add ');
    expect(lines(saved.filter((line) => line.startsWith('add KUBE-')).join('\n'))).toEqual(expected);
  });

  it('binds the addresses of KUBE-IPVS-IPS to kube-ipvs0, and nothing else', () => {
    const bound = lines(
      netns()
        .run('ip', ['-o', '-4', 'addr', 'show', 'dev', 'kube-ipvs0'])
        .replace(/^.* inet (\S+)\/32 .*$/gm, '$1'),
    );
    const expected = lines(readFileSync(join(fixtures, 'expected-ipset.txt'), 'utf8'))
      .filter((line) => line.startsWith('add KUBE-IPVS-IPS '))
      .map((line) => line.split(' ')[2] ?? '');
    expect(bound).toEqual(expected.sort());
  });
});
