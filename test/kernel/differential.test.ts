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
// The iptables rules (fixtures/differential/expected-iptables.txt) are the iptables-restore text
// writeIptablesRules generates for these Services (which sets have entries decides which rules it
// writes; KUBE-IPVS-OUT-FILTER names the load balancer IP:ports the node may not reach), with the
// jumps createAndLinkKubeChain prepends. Both sides are read back with iptables-save (kube-proxy's
// text restored into a scratch namespace), so that spelling differences iptables normalises away
// (the mark's "0x004000", a bare IP for /32, "tcp" for protocol 6) do not count.
//
// Every difference kipvs intends is in INTENDED_DIFFERENCES (kernel objects) or
// INTENDED_IPTABLES_DIFFERENCES (rules) below and in docs/migrating-from-kube-proxy.md
// ("Differences found by the differential test").
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

/** kipvs writes the rules of every set; kube-proxy leaves a set's out while it is empty (docs/migrating-from-kube-proxy.md, difference 1). */
const EMPTY_SET = 'the set is empty: kube-proxy leaves its rule out, kipvs always writes it (it matches nothing)';

/**
 * iptables-save lines kipvs writes that kube-proxy does not for these Services (`+`), per table,
 * each with the reason; docs/migrating-from-kube-proxy.md lists the same. kube-proxy writes nothing
 * kipvs leaves out.
 */
const INTENDED_IPTABLES_DIFFERENCES: readonly { readonly table: 'nat' | 'filter'; readonly line: string; readonly change: '+'; readonly why: string }[] = [
  {
    table: 'nat',
    line: '-A KUBE-LOAD-BALANCER -m comment --comment "Kubernetes service load balancer ip + port with externalTrafficPolicy=local" -m set --match-set KUBE-LOAD-BALANCER-LOCAL dst,dst -j RETURN',
    change: '+',
    why: EMPTY_SET,
  },
  {
    table: 'nat',
    line: '-A KUBE-NODE-PORT -p udp -m comment --comment "Kubernetes nodeport UDP port with externalTrafficPolicy=local" -m set --match-set KUBE-NODE-PORT-LOCAL-UDP dst -j RETURN',
    change: '+',
    why: EMPTY_SET,
  },
  {
    table: 'nat',
    line: '-A KUBE-NODE-PORT -p udp -m comment --comment "Kubernetes nodeport UDP port for masquerade purpose" -m set --match-set KUBE-NODE-PORT-UDP dst -j KUBE-MARK-MASQ',
    change: '+',
    why: EMPTY_SET,
  },
  {
    table: 'nat',
    // iptables-save escapes the quotes inside a comment.
    line: `-A KUBE-NODE-PORT -p sctp -m comment --comment "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type \\'hash ip:port\\'" -m set --match-set KUBE-NODE-PORT-LOCAL-SCTP-HASH dst,dst -j RETURN`,
    change: '+',
    why: EMPTY_SET,
  },
  {
    table: 'nat',
    line: `-A KUBE-NODE-PORT -p sctp -m comment --comment "Kubernetes nodeport SCTP port for masquerade purpose with type \\'hash ip:port\\'" -m set --match-set KUBE-NODE-PORT-SCTP-HASH dst,dst -j KUBE-MARK-MASQ`,
    change: '+',
    why: EMPTY_SET,
  },
  {
    table: 'nat',
    line: '-A KUBE-SERVICES -m comment --comment "Kubernetes service external ip + port with externalTrafficPolicy=local" -m set --match-set KUBE-EXTERNAL-IP-LOCAL dst,dst -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT',
    change: '+',
    why: EMPTY_SET,
  },
  {
    table: 'nat',
    line: '-A KUBE-SERVICES -m comment --comment "Kubernetes service external ip + port with externalTrafficPolicy=local" -m set --match-set KUBE-EXTERNAL-IP-LOCAL dst,dst -m addrtype --dst-type LOCAL -j ACCEPT',
    change: '+',
    why: EMPTY_SET,
  },
  {
    table: 'filter',
    line: '-A KUBE-SOURCE-RANGES-FIREWALL -m comment --comment "Kubernetes service load balancer ip + port + source IP for packet filter purpose" -m set --match-set KUBE-LOAD-BALANCER-SOURCE-IP dst,dst,src -j RETURN',
    change: '+',
    why: EMPTY_SET,
  },
];

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

/** ipset create lines for kube-proxy's sets, with its parameters (ipset/ipset.go createSet), for a scratch namespace. */
const kubeProxySetCreates = (): string =>
  KUBE_PROXY_SETS.map((line) => {
    const [name = '', type = ''] = line.split(' ');
    return `create ${name} ${type} ${type === 'bitmap:port' ? 'range 0-65535' : 'family inet hashsize 1024 maxelem 65536'}`;
  }).join('\n') + '\n';

const BUILT_IN_CHAINS = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);

/**
 * One table of iptables-save, reduced to kube-proxy's part: the KUBE-* chains it declares and, per
 * chain, its rules in order, plus the built-in chains' jumps into KUBE-* chains (in order too), all
 * without counters. The order of the KUBE-IPVS-OUT-FILTER rules is not kube-proxy's to keep (it
 * follows its map of Service ports): they are sorted.
 */
function kubeChains(save: string, table: 'nat' | 'filter'): { chains: string[]; rules: Record<string, string[]> } {
  const lines = save.split('\n');
  const start = lines.indexOf(`*${table}`);
  if (start < 0) throw new Error(`no *${table} in iptables-save`);
  const body = lines.slice(start + 1, lines.indexOf('COMMIT', start));
  const chains = body
    .filter((line) => line.startsWith(':KUBE-'))
    .map((line) => line.split(' ')[0] ?? '')
    .sort();
  const rules: Record<string, string[]> = {};
  for (const line of body.filter((l) => l.startsWith('-A '))) {
    const chain = line.split(' ')[1] ?? '';
    if (!chain.startsWith('KUBE-') && !(BUILT_IN_CHAINS.has(chain) && / -j KUBE-\S+$/.test(line))) continue;
    (rules[chain] ??= []).push(line);
  }
  rules['KUBE-IPVS-OUT-FILTER']?.sort();
  return { chains, rules };
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

  it("writes kube-proxy's chains and rules (iptables-save, nat and filter), but for the rules of empty sets", () => {
    const scratch = createTestNetns('kipvs-diff-kp');
    let kubeProxy: string;
    try {
      scratch.run('ipset', ['restore'], kubeProxySetCreates());
      scratch.run('iptables-legacy-restore', ['--noflush'], readFileSync(join(fixtures, 'expected-iptables.txt'), 'utf8'));
      kubeProxy = scratch.run('iptables-legacy-save', []);
    } finally {
      scratch.destroy();
    }
    const ours = netns().run('iptables-legacy-save', []);
    for (const table of ['nat', 'filter'] as const) {
      const actual = kubeChains(ours, table);
      const extra = INTENDED_IPTABLES_DIFFERENCES.filter((difference) => difference.table === table).map((difference) => difference.line);
      // Each intended difference is there (the list does not outlive what it describes), and is the only one.
      for (const line of extra) expect(Object.values(actual.rules).flat(), `${table}: ${line}`).toContain(line);
      const withoutExtra = Object.fromEntries(
        Object.entries(actual.rules)
          .map(([chain, rules]) => [chain, rules.filter((rule) => !extra.includes(rule))] as const)
          .filter(([, rules]) => rules.length > 0),
      );
      expect({ table, chains: actual.chains, rules: withoutExtra }).toEqual({ table, ...kubeChains(kubeProxy, table) });
    }
  });
});
