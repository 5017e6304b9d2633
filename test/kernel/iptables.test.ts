// kipvs's iptables layer against real iptables-legacy in namespaces of its own, with iptables-save
// as the oracle: the rules load for both families, the chains and jumps are kube-proxy's, applying
// is idempotent, nothing of anyone else's moves, cleanup returns the tables to what they were, and
// the rule count does not grow with the Services. Then real traffic through IPVS shows what the
// masquerade rules do.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AddressFamily } from '../../src/ip.js';
import { applyIptablesRules, cleanupIptables, detectIptablesBackend, type IptablesOptions } from '../../src/kernel/iptables.js';
import { ensureIpvsSysctls } from '../../src/kernel/sysctl.js';
import { KUBE_IPSETS, ipsetName, type KubeIpsetId } from '../../src/model/ipsets.js';
import { DEFAULT_SETTINGS, type ProxySettings } from '../../src/model/settings.js';
import { KIPVS_CHAINS, KIPVS_IPTABLES_OWNERSHIP, buildIptablesRules } from '../../src/translate/iptables-rules.js';
import { defined } from '../support/defined.js';
import { createTestNetns, type TestNetns } from './helpers/netns.js';
import { Teardown } from './helpers/teardown.js';
import type { Topology } from './helpers/topology.js';

const settings = (overrides: Partial<ProxySettings> = {}): ProxySettings => ({ ...DEFAULT_SETTINGS, ...overrides });
const tool = (family: AddressFamily, suffix = ''): string => `${family === 'inet6' ? 'ip6tables' : 'iptables'}-legacy${suffix}`;

/** The kube-proxy ipsets the rules reference, made with the ipset tool. */
function createKubeIpsets(ns: TestNetns, family: AddressFamily): void {
  const lines = (Object.keys(KUBE_IPSETS) as KubeIpsetId[]).map((id) => {
    const { type } = KUBE_IPSETS[id];
    const options = type === 'bitmap:port' ? 'range 0-65535' : `family ${family} hashsize 1024 maxelem 65536`;
    return `create ${ipsetName(id, family)} ${type} ${options} comment`;
  });
  ns.run('ipset', ['restore'], `${lines.join('\n')}\n`);
}

/** iptables-save without its timestamped comments and the chains' packet counters. */
const save = (ns: TestNetns, family: AddressFamily): string =>
  ns
    .run(tool(family, '-save'), [])
    .split('\n')
    .filter((line) => !line.startsWith('#'))
    .map((line) => line.replace(/ \[\d+:\d+\]$/, ''))
    .join('\n');

const tableOf = (text: string, table: string): string[] => {
  const lines = text.split('\n');
  const start = lines.indexOf(`*${table}`);
  return start < 0 ? [] : lines.slice(start + 1, lines.indexOf('COMMIT', start));
};
const ruleLines = (text: string): string[] => text.split('\n').filter((line) => line.startsWith('-A '));
const builtIn = (rule: string): boolean => /^-A (PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) /.test(rule);
const kipvsChainNames = new Set(KIPVS_CHAINS.map((ref) => ref.chain));
/** The chain of an `-A CHAIN …` line. */
const chainOf = (rule: string): string => defined(rule.split(' ')[1], `the chain of "${rule}"`);
const isKipvsRule = (rule: string): boolean =>
  kipvsChainNames.has(chainOf(rule)) ||
  (builtIn(rule) && / -j KUBE-(SERVICES|POSTROUTING|FORWARD|NODE-PORT|PROXY-FIREWALL|IPVS-FILTER|IPVS-OUT-FILTER)$/.test(rule));

const namespaces: TestNetns[] = [];
afterEach(() => {
  for (const ns of namespaces.splice(0)) ns.destroy();
});
function netnsWithIpsets(family: AddressFamily): { ns: TestNetns; options: IptablesOptions } {
  const ns = createTestNetns('kipvs-ipt');
  namespaces.push(ns);
  createKubeIpsets(ns, family);
  return { ns, options: { netns: ns.path, backend: 'legacy' } };
}

describe.each(['inet', 'inet6'] as const)('iptables rules for %s', (family) => {
  const ruleset = buildIptablesRules(settings({ clusterCidrs: ['10.244.0.0/16', 'fd00:10:244::/56'] }), { family });

  it('are accepted by iptables-restore; iptables-save shows kube-proxy chains, rules and jumps', async () => {
    const { ns, options } = netnsWithIpsets(family);
    const result = await applyIptablesRules(ruleset, options);
    expect(result.backend).toEqual({ mode: 'legacy', reason: 'configured' });
    expect(result.insertedJumps).toHaveLength(9);
    const saved = save(ns, family);
    for (const { table, chain } of KIPVS_CHAINS) expect(tableOf(saved, table)).toContain(`:${chain} -`);
    for (const table of ['nat', 'filter'] as const) {
      // The same rules per chain as we wrote (iptables-save may spell a match differently).
      const countPerChain = (rules: readonly string[]): Record<string, number> =>
        Object.fromEntries([...new Set(rules.map(chainOf))].map((c) => [c, rules.filter((r) => chainOf(r) === c).length]));
      const ours = ruleLines(tableOf(saved, table).join('\n')).filter((rule) => !builtIn(rule));
      expect(countPerChain(ours)).toEqual(countPerChain(ruleset.rules[table]));
    }
    // kube-proxy prepends each jump, so the built-in chains read in its order.
    expect(ruleLines(tableOf(saved, 'filter').join('\n')).filter(builtIn)).toEqual([
      '-A INPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER',
      '-A INPUT -m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL',
      '-A INPUT -m comment --comment "kubernetes health check rules" -j KUBE-NODE-PORT',
      '-A FORWARD -m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL',
      '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
      '-A OUTPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-OUT-FILTER',
    ]);
    expect(ruleLines(tableOf(saved, 'nat').join('\n')).filter(builtIn)).toEqual([
      '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    ]);
    const prefix = family === 'inet6' ? 'KUBE-6-' : 'KUBE-';
    expect(saved).toContain(`--match-set ${prefix}CLUSTER-IP dst,dst -j KUBE-MARK-MASQ`);
    expect(saved).toContain(family === 'inet6' ? '! -s fd00:10:244::/56' : '! -s 10.244.0.0/16');
  });

  it('changes nothing when applied again: no duplicate jumps, the same tables', async () => {
    const { ns, options } = netnsWithIpsets(family);
    await applyIptablesRules(ruleset, options);
    const first = save(ns, family);
    const again = await applyIptablesRules(ruleset, options);
    expect(again.insertedJumps).toEqual([]);
    expect(save(ns, family)).toBe(first);
  });

  it('leaves foreign chains and rules byte for byte, and cleanup restores the tables exactly', async () => {
    const { ns, options } = netnsWithIpsets(family);
    const other = family === 'inet6' ? 'fd00:99::/64' : '10.99.0.0/16';
    const commands = [
      ['-t', 'nat', '-N', 'FOREIGN-DNAT'],
      ['-t', 'nat', '-A', 'FOREIGN-DNAT', '-p', 'tcp', '--dport', '8080', '-j', 'RETURN'],
      ['-t', 'nat', '-A', 'PREROUTING', '-p', 'tcp', '--dport', '8080', '-j', 'FOREIGN-DNAT'],
      ['-t', 'nat', '-A', 'POSTROUTING', '-s', other, '-m', 'comment', '--comment', 'not kipvs', '-j', 'MASQUERADE'],
      ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'lo', '-j', 'RETURN'],
      // kubelet's chain: a KUBE- name kipvs does not own.
      ['-t', 'filter', '-N', 'KUBE-FIREWALL'],
      ['-t', 'filter', '-A', 'KUBE-FIREWALL', '-m', 'mark', '--mark', '0x8000/0x8000', '-j', 'DROP'],
      ['-t', 'filter', '-A', 'INPUT', '-j', 'KUBE-FIREWALL'],
      ['-t', 'filter', '-A', 'FORWARD', '-s', other, '-j', 'ACCEPT'],
    ];
    for (const args of commands) ns.run(tool(family), args);
    const before = save(ns, family);

    await applyIptablesRules(ruleset, options);
    const applied = save(ns, family);
    for (const table of ['nat', 'filter']) {
      expect(
        tableOf(applied, table).filter(
          (line) => !isKipvsRule(line) && !kipvsChainNames.has(defined(line.slice(1).split(' ')[0], `the first word of "${line}"`)),
        ),
      ).toEqual(tableOf(before, table));
    }

    const cleaned = await cleanupIptables(family, KIPVS_IPTABLES_OWNERSHIP, options);
    expect(cleaned.removedJumps).toBe(9);
    expect(cleaned.removedChains).toHaveLength(KIPVS_CHAINS.length);
    expect(save(ns, family)).toBe(before);
    // Nothing left to do the second time.
    expect(await cleanupIptables(family, KIPVS_IPTABLES_OWNERSHIP, options)).toMatchObject({ removedJumps: 0, removedChains: [] });
  });

  it('has as many rules with 10,000 entries in KUBE-CLUSTER-IP as with 10', async () => {
    const { ns, options } = netnsWithIpsets(family);
    const set = ipsetName('clusterIp', family);
    const fill = (count: number): void => {
      const address = (i: number): string => (family === 'inet6' ? `fd00:96::${i.toString(16)}` : `10.96.${i >> 8}.${i & 255}`);
      const adds = Array.from({ length: count }, (_, i) => `add ${set} ${address(i + 1)},tcp:80`);
      ns.run('ipset', ['flush', set]);
      ns.run('ipset', ['restore'], `${adds.join('\n')}\n`);
      expect(ns.run('ipset', ['list', set])).toContain(`Number of entries: ${count}\n`);
    };
    const ruleCount = async (): Promise<number> => {
      await applyIptablesRules(ruleset, options);
      return ruleLines(save(ns, family)).length;
    };
    fill(10);
    const withTen = await ruleCount();
    fill(10_000);
    const withTenThousand = await ruleCount();
    console.log(
      `${family}: ${withTen} rules with 10 ClusterIPs, ${withTenThousand} with 10,000 (kipvs chains ${ruleset.rules.nat.length} nat + ${ruleset.rules.filter.length} filter, 9 jumps)`,
    );
    expect(withTenThousand).toBe(withTen);
    expect(withTen).toBe(ruleset.rules.nat.length + ruleset.rules.filter.length + 9);
  });

  it('names the table, chain and stderr when iptables-restore refuses (a missing ipset)', async () => {
    const ns = createTestNetns('kipvs-ipt');
    namespaces.push(ns);
    const error = await applyIptablesRules(ruleset, { netns: ns.path, backend: 'legacy' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'KIPVS_IPTABLES_RESTORE', table: 'nat', chain: 'KUBE-POSTROUTING' });
    expect((error as Error).message).toMatch(/doesn't exist|does not exist/);
  });
});

describe('iptables cleanup and backend detection', () => {
  it('refuses to remove a kipvs chain someone else jumps to, and changes nothing', async () => {
    const { ns, options } = netnsWithIpsets('inet');
    await applyIptablesRules(buildIptablesRules(settings(), { family: 'inet' }), options);
    ns.run('iptables-legacy', ['-t', 'nat', '-A', 'PREROUTING', '-d', '10.1.2.3', '-j', 'KUBE-MARK-MASQ']);
    const before = save(ns, 'inet');
    const error = await cleanupIptables('inet', KIPVS_IPTABLES_OWNERSHIP, options).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'KIPVS_IPTABLES_CHAIN_IN_USE', table: 'nat', chain: 'KUBE-MARK-MASQ' });
    expect(save(ns, 'inet')).toBe(before);
  });

  it('picks the backend with the kubelet hint chain, then the one with more Kubernetes rules, then iptables --version if its nat table works', async () => {
    const ns = createTestNetns('kipvs-ipt');
    namespaces.push(ns);
    const versionMode = /\(nf_tables\)/.test(ns.run('iptables', ['--version'])) ? 'nft' : 'legacy';
    // Whether nf_tables NAT works in this kernel, asked independently of kipvs (UML's does not).
    let nftNatWorks = true;
    try {
      ns.run('nft', ['add table ip kipvs_probe; add chain ip kipvs_probe probe { type nat hook postrouting priority 100; }; delete table ip kipvs_probe']);
    } catch {
      nftNatWorks = false;
    }
    const empty = await detectIptablesBackend({ netns: ns.path });
    expect(empty.mode).toBe(versionMode === 'nft' && !nftNatWorks ? 'legacy' : versionMode);
    if (versionMode === 'nft' && !nftNatWorks) expect(empty.reason).toMatch(/nat table fails here/);
    expect(ns.run('iptables-nft-save', [])).not.toContain('KIPVS-BACKEND-PROBE');
    ns.run('iptables-legacy', ['-t', 'filter', '-N', 'KUBE-FOO']);
    ns.run('iptables-legacy', ['-t', 'filter', '-A', 'INPUT', '-j', 'KUBE-FOO']);
    expect(await detectIptablesBackend({ netns: ns.path })).toEqual({ mode: 'legacy', reason: 'more Kubernetes rules with iptables-legacy (legacy 1, nft 0)' });
    ns.run('iptables-legacy', ['-t', 'mangle', '-N', 'KUBE-IPTABLES-HINT']);
    expect((await detectIptablesBackend({ netns: ns.path })).reason).toMatch(/KUBE-IPTABLES-HINT.*iptables-legacy/);
  });
});

describe('masquerading real traffic through IPVS', () => {
  let topology: Topology;
  const vip = '10.96.0.10';
  let options: IptablesOptions;
  const teardown = new Teardown();

  beforeAll(async () => {
    topology = teardown.createTopology(1);
    const { node } = topology;
    const pod0 = defined(topology.pods[0], 'pod0');
    createKubeIpsets(node, 'inet');
    node.run('ipset', ['add', 'KUBE-CLUSTER-IP', `${vip},tcp:80`]);
    node.run('ip', ['link', 'add', 'kube-ipvs0', 'type', 'dummy']);
    node.run('ip', ['addr', 'add', `${vip}/32`, 'dev', 'kube-ipvs0']);
    node.run('ipvsadm', ['-A', '-t', `${vip}:80`, '-s', 'rr']);
    node.run('ipvsadm', ['-a', '-t', `${vip}:80`, '-r', `${pod0.address}:8080`, '-m']);
    // IPVS connections must go through conntrack for the MASQUERADE rule to see them.
    ensureIpvsSysctls({ netns: node.path });
    options = { netns: node.path, backend: 'legacy' };
    await topology.startServer(pod0, 8080);
  });
  afterAll(() => teardown.run());

  /** The client address the pod saw, as its server reports it. */
  const sourceSeenByPod = (): string => {
    const script = `const s=require('net').connect(80,'${vip}');s.once('data',(d)=>{process.stdout.write(d.toString());s.destroy();});s.setTimeout(3000,()=>process.exit(1));`;
    const [name, address] = topology.client.run(process.execPath, ['-e', script]).trim().split(' ');
    expect(name).toBe('pod0');
    return defined(address, 'the client address in the answer').replace(/^::ffff:/, '');
  };

  it('shows the pod the node address with --masquerade-all and the client address without', async () => {
    const podSideNodeAddress = '10.201.0.1';
    await applyIptablesRules(buildIptablesRules(settings({ masqueradeAll: true }), { family: 'inet' }), options);
    expect(sourceSeenByPod()).toBe(podSideNodeAddress);
    await applyIptablesRules(buildIptablesRules(settings(), { family: 'inet' }), options);
    expect(sourceSeenByPod()).toBe(topology.clientAddress);
    // --cluster-cidr: a client outside the pod network is masqueraded, one inside it is not.
    await applyIptablesRules(buildIptablesRules(settings({ clusterCidrs: ['10.201.0.0/16'] }), { family: 'inet' }), options);
    expect(sourceSeenByPod()).toBe(podSideNodeAddress);
    await applyIptablesRules(buildIptablesRules(settings({ clusterCidrs: ['10.200.0.0/16'] }), { family: 'inet' }), options);
    expect(sourceSeenByPod()).toBe(topology.clientAddress);
  });
});
