// The iptables-restore text of kube-proxy's IPVS-mode layout, from settings alone. The expected
// rules below are written out from kube-proxy's pkg/proxy/ipvs/proxier.go (writeIptablesRules and
// ipsetWithIptablesChain) with every set non-empty, which is what we always write.
import { describe, expect, it } from 'vitest';
import { KUBE_IPSETS, ipsetName, type KubeIpsetId } from '../../../src/model/ipsets.js';
import { DEFAULT_SETTINGS, type ProxySettings } from '../../../src/model/settings.js';
import {
  DEFAULT_MASQUERADE_MARK,
  KIPVS_CHAINS,
  KIPVS_JUMPS,
  buildIptablesRules,
  iptablesRestoreInput,
  lbNoNodeAccess,
} from '../../../src/translate/iptables-rules.js';
import type { IpsetEntry } from '../../../src/netlink/ipset/types.js';
import { defined } from '../../support/defined.js';

const settings = (overrides: Partial<ProxySettings> = {}): ProxySettings => ({ ...DEFAULT_SETTINGS, ...overrides });

const EXPECTED_NAT_IPV4 = [
  '-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN',
  '-A KUBE-POSTROUTING -m comment --comment "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose" -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE',
  '-A KUBE-SERVICES -m comment --comment "Kubernetes service lb portal" -m set --match-set KUBE-LOAD-BALANCER dst,dst -j KUBE-LOAD-BALANCER',
  '-A KUBE-LOAD-BALANCER -m comment --comment "Kubernetes service load balancer ip + port with externalTrafficPolicy=local" -m set --match-set KUBE-LOAD-BALANCER-LOCAL dst,dst -j RETURN',
  '-A KUBE-NODE-PORT -p tcp -m comment --comment "Kubernetes nodeport TCP port with externalTrafficPolicy=local" -m set --match-set KUBE-NODE-PORT-LOCAL-TCP dst -j RETURN',
  '-A KUBE-NODE-PORT -p tcp -m comment --comment "Kubernetes nodeport TCP port for masquerade purpose" -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ',
  '-A KUBE-NODE-PORT -p udp -m comment --comment "Kubernetes nodeport UDP port with externalTrafficPolicy=local" -m set --match-set KUBE-NODE-PORT-LOCAL-UDP dst -j RETURN',
  '-A KUBE-NODE-PORT -p udp -m comment --comment "Kubernetes nodeport UDP port for masquerade purpose" -m set --match-set KUBE-NODE-PORT-UDP dst -j KUBE-MARK-MASQ',
  `-A KUBE-NODE-PORT -p sctp -m comment --comment "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'" -m set --match-set KUBE-NODE-PORT-LOCAL-SCTP-HASH dst,dst -j RETURN`,
  `-A KUBE-NODE-PORT -p sctp -m comment --comment "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'" -m set --match-set KUBE-NODE-PORT-SCTP-HASH dst,dst -j KUBE-MARK-MASQ`,
  '-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP src,dst -j KUBE-MARK-MASQ',
  '-A KUBE-SERVICES -m comment --comment "Kubernetes service external ip + port for masquerade and filter purpose" -m set --match-set KUBE-EXTERNAL-IP dst,dst -j KUBE-MARK-MASQ',
  '-A KUBE-SERVICES -m comment --comment "Kubernetes service external ip + port for masquerade and filter purpose" -m set --match-set KUBE-EXTERNAL-IP dst,dst -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT',
  '-A KUBE-SERVICES -m comment --comment "Kubernetes service external ip + port for masquerade and filter purpose" -m set --match-set KUBE-EXTERNAL-IP dst,dst -m addrtype --dst-type LOCAL -j ACCEPT',
  '-A KUBE-SERVICES -m comment --comment "Kubernetes service external ip + port with externalTrafficPolicy=local" -m set --match-set KUBE-EXTERNAL-IP-LOCAL dst,dst -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT',
  '-A KUBE-SERVICES -m comment --comment "Kubernetes service external ip + port with externalTrafficPolicy=local" -m set --match-set KUBE-EXTERNAL-IP-LOCAL dst,dst -m addrtype --dst-type LOCAL -j ACCEPT',
  '-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT',
  '-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ',
  '-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT',
  '-A KUBE-SERVICES -m set --match-set KUBE-LOAD-BALANCER dst,dst -j ACCEPT',
  '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
  '-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000',
  '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE',
  '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
];

const EXPECTED_FILTER_IPV4 = [
  '-A KUBE-PROXY-FIREWALL -m comment --comment "Kubernetes service load balancer ip + port for load balancer with sourceRange" -m set --match-set KUBE-LOAD-BALANCER-FW dst,dst -j KUBE-SOURCE-RANGES-FIREWALL',
  '-A KUBE-SOURCE-RANGES-FIREWALL -m comment --comment "Kubernetes service load balancer ip + port + source cidr for packet filter purpose" -m set --match-set KUBE-LOAD-BALANCER-SOURCE-CIDR dst,dst,src -j RETURN',
  '-A KUBE-SOURCE-RANGES-FIREWALL -m comment --comment "Kubernetes service load balancer ip + port + source IP for packet filter purpose" -m set --match-set KUBE-LOAD-BALANCER-SOURCE-IP dst,dst,src -j RETURN',
  '-A KUBE-SOURCE-RANGES-FIREWALL -j DROP',
  '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
  '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
  '-A KUBE-NODE-PORT -m comment --comment "Kubernetes health check node port" -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j ACCEPT',
  '-A KUBE-IPVS-FILTER -m set --match-set KUBE-LOAD-BALANCER dst,dst -j RETURN',
  '-A KUBE-IPVS-FILTER -m set --match-set KUBE-CLUSTER-IP dst,dst -j RETURN',
  '-A KUBE-IPVS-FILTER -m set --match-set KUBE-EXTERNAL-IP dst,dst -j RETURN',
  '-A KUBE-IPVS-FILTER -m set --match-set KUBE-EXTERNAL-IP-LOCAL dst,dst -j RETURN',
  '-A KUBE-IPVS-FILTER -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j RETURN',
  '-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst -j REJECT',
];

const CLUSTER_IP_RULE = /^-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip \+ port for masquerade purpose" .*-j KUBE-MARK-MASQ$/;
const clusterIpRule = (rules: readonly string[]): string | undefined => rules.find((rule) => CLUSTER_IP_RULE.test(rule));
const setsIn = (text: string): string[] => [...text.matchAll(/--match-set (\S+)/g)].map((match) => defined(match[1], 'a set name'));

describe('iptables rules of IPVS mode', () => {
  it('writes kube-proxy rules for IPv4, with the default mark 0x4000 (--iptables-masquerade-bit 14)', () => {
    const ruleset = buildIptablesRules(settings(), { family: 'inet' });
    expect(DEFAULT_MASQUERADE_MARK).toBe(0x4000);
    expect(ruleset.rules.nat).toEqual(EXPECTED_NAT_IPV4);
    expect(ruleset.rules.filter).toEqual(EXPECTED_FILTER_IPV4);
  });

  it('declares kube-proxy chains in nat and filter, then the jumps from the built-in chains, in one restore input', () => {
    const text = iptablesRestoreInput(buildIptablesRules(settings(), { family: 'inet' }));
    const [nat, filter] = text.split('COMMIT\n');
    expect(nat?.split('\n').filter((line) => line.startsWith('*') || line.startsWith(':'))).toEqual([
      '*nat',
      ':KUBE-SERVICES - [0:0]',
      ':KUBE-POSTROUTING - [0:0]',
      ':KUBE-NODE-PORT - [0:0]',
      ':KUBE-LOAD-BALANCER - [0:0]',
      ':KUBE-MARK-MASQ - [0:0]',
    ]);
    expect(filter?.split('\n').filter((line) => line.startsWith('*') || line.startsWith(':'))).toEqual([
      '*filter',
      ':KUBE-FORWARD - [0:0]',
      ':KUBE-NODE-PORT - [0:0]',
      ':KUBE-PROXY-FIREWALL - [0:0]',
      ':KUBE-SOURCE-RANGES-FIREWALL - [0:0]',
      ':KUBE-IPVS-FILTER - [0:0]',
      ':KUBE-IPVS-OUT-FILTER - [0:0]',
    ]);
    expect(text.split('\n').filter((line) => line.startsWith('-I '))).toEqual([
      '-I OUTPUT 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      '-I PREROUTING 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      '-I POSTROUTING 1 -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
      '-I FORWARD 1 -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
      '-I INPUT 1 -m comment --comment "kubernetes health check rules" -j KUBE-NODE-PORT',
      '-I INPUT 1 -m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL',
      '-I FORWARD 1 -m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL',
      '-I INPUT 1 -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER',
      '-I OUTPUT 1 -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-OUT-FILTER',
    ]);
    expect(text.endsWith('COMMIT\n')).toBe(true);
    expect(text.match(/^COMMIT$/gm)).toHaveLength(2);
    // Every rule goes to a chain kipvs declares; built-in chains only get the jumps.
    const declared = new Set(KIPVS_CHAINS.map((ref) => ref.chain));
    for (const line of text.split('\n').filter((l) => l.startsWith('-A '))) expect(declared).toContain(line.split(' ')[1]);
    for (const jump of KIPVS_JUMPS) expect(KIPVS_CHAINS).toContainEqual({ table: jump.table, chain: jump.to });
  });

  it('uses the KUBE-6- sets and ::1 for IPv6, and otherwise the same rules', () => {
    const v4 = iptablesRestoreInput(buildIptablesRules(settings(), { family: 'inet' }));
    const v6 = iptablesRestoreInput(buildIptablesRules(settings(), { family: 'inet6' }));
    expect(setsIn(v6).every((name) => name.startsWith('KUBE-6-'))).toBe(true);
    expect(v6).toContain('-A KUBE-SERVICES -s ::1/128 -j RETURN');
    // ipset names are at most 31 characters; kube-proxy cuts the two KUBE-6- names that exceed it
    // (ipset.go: "Ipset name truncated"), and iptables must name the sets it actually made.
    expect(setsIn(v6).filter((name) => name.length > 31)).toEqual([]);
    expect(v6).toContain('--match-set KUBE-6-LOAD-BALANCER-SOURCE-CID dst,dst,src');
    expect(v6).toContain('--match-set KUBE-6-NODE-PORT-LOCAL-SCTP-HAS dst,dst');
    const full = (name: string): string =>
      name === 'KUBE-6-LOAD-BALANCER-SOURCE-CID'
        ? 'KUBE-LOAD-BALANCER-SOURCE-CIDR'
        : name === 'KUBE-6-NODE-PORT-LOCAL-SCTP-HAS'
          ? 'KUBE-NODE-PORT-LOCAL-SCTP-HASH'
          : name.replace('KUBE-6-', 'KUBE-');
    const v6AsV4 = v6.replace(/--match-set (\S+)/g, (_, name: string) => `--match-set ${full(name)}`).replace('::1/128', '127.0.0.0/8');
    expect(v6AsV4).toBe(v4);
  });

  it('matches every kube-proxy ipset, and only those, by its family name', () => {
    for (const family of ['inet', 'inet6'] as const) {
      const text = iptablesRestoreInput(buildIptablesRules(settings(), { family }));
      const expected = (Object.keys(KUBE_IPSETS) as KubeIpsetId[]).map((id) => ipsetName(id, family));
      expect(new Set(setsIn(text))).toEqual(new Set(expected));
    }
  });

  it('masquerades every packet to a ClusterIP with --masquerade-all', () => {
    const rules = buildIptablesRules(settings({ masqueradeAll: true, clusterCidrs: ['10.244.0.0/16'] }), { family: 'inet' }).rules.nat;
    expect(clusterIpRule(rules)).toBe(
      '-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ',
    );
  });

  it('masquerades packets to a ClusterIP from outside the cluster CIDR of the family with --cluster-cidr', () => {
    const dualStack = settings({ clusterCidrs: ['10.244.0.0/16', 'fd00:10:244::/56'] });
    expect(clusterIpRule(buildIptablesRules(dualStack, { family: 'inet' }).rules.nat)).toBe(
      '-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ',
    );
    expect(clusterIpRule(buildIptablesRules(dualStack, { family: 'inet6' }).rules.nat)).toBe(
      '-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-6-CLUSTER-IP dst,dst ! -s fd00:10:244::/56 -j KUBE-MARK-MASQ',
    );
    // A family without a cluster CIDR falls back to the node's own VIP-sourced connections (src,dst).
    const v4Only = settings({ clusterCidrs: ['10.244.0.0/16'] });
    expect(clusterIpRule(buildIptablesRules(v4Only, { family: 'inet6' }).rules.nat)).toContain('--match-set KUBE-6-CLUSTER-IP src,dst -j KUBE-MARK-MASQ');
  });

  it('refuses two cluster CIDRs of one family, as kube-proxy does', () => {
    const twoV4 = settings({ clusterCidrs: ['10.244.0.0/16', '10.245.0.0/16'] });
    expect(() => buildIptablesRules(twoV4, { family: 'inet' })).toThrow(expect.objectContaining({ code: 'KIPVS_IPTABLES_SETTINGS' }));
  });

  it('uses the configured masquerade mark everywhere and can masquerade with --random-fully', () => {
    const rules = buildIptablesRules(settings(), { family: 'inet', masqueradeMark: 0x8000, masqueradeRandomFully: true });
    const text = [...rules.rules.nat, ...rules.rules.filter].join('\n');
    expect(text).not.toContain('0x4000');
    expect(rules.rules.nat).toContain('-A KUBE-MARK-MASQ -j MARK --or-mark 0x8000');
    expect(rules.rules.nat).toContain('-A KUBE-POSTROUTING -m mark ! --mark 0x8000/0x8000 -j RETURN');
    expect(rules.rules.nat).toContain('-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully');
    expect(rules.rules.filter).toContain('-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x8000/0x8000 -j ACCEPT');
    for (const bad of [0, -1, 2 ** 32, 1.5]) {
      expect(() => buildIptablesRules(settings(), { family: 'inet', masqueradeMark: bad })).toThrow(
        expect.objectContaining({ code: 'KIPVS_IPTABLES_SETTINGS' }),
      );
    }
  });

  it('has the same number of rules in every variant: Services only change the ipsets', () => {
    const variants = [settings(), settings({ masqueradeAll: true }), settings({ clusterCidrs: ['10.244.0.0/16', 'fd00::/56'] })];
    for (const family of ['inet', 'inet6'] as const) {
      for (const variant of variants) {
        const { rules } = buildIptablesRules(variant, { family });
        expect([rules.nat.length, rules.filter.length]).toEqual([24, 13]);
      }
    }
  });

  it('names no Service address or port: the text is the same for any number of Services', () => {
    // The only inputs are the settings and the family; settings that do not concern iptables
    // (scheduler, exclude CIDRs, the dummy interface, draining) leave the text unchanged.
    const base = iptablesRestoreInput(buildIptablesRules(settings(), { family: 'inet' }));
    const other = settings({ scheduler: 'wrr', excludeCidrs: ['10.0.0.0/8'], dummyInterface: 'kipvs0', gracefulTerminationSeconds: 5 });
    expect(iptablesRestoreInput(buildIptablesRules(other, { family: 'inet' }))).toBe(base);
    expect(base).not.toMatch(/--dport|--sport|-d \d/);
    const addresses = base.match(/\d+\.\d+\.\d+\.\d+(\/\d+)?/g) ?? [];
    expect(addresses).toEqual(['127.0.0.0/8']);
  });

  it("tells local traffic as kube-proxy's four detect-local modes do (localdetector.go IfNotLocal)", () => {
    const prefix = '-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set';
    const rule = (overrides: Partial<ProxySettings>, family: 'inet' | 'inet6', nodePodCidrs?: readonly string[]): string | undefined =>
      clusterIpRule(buildIptablesRules(settings(overrides), { family, nodePodCidrs }).rules.nat);
    const local = (mode: ProxySettings['detectLocal']['mode'], extra: Partial<ProxySettings['detectLocal']> = {}): Partial<ProxySettings> => ({
      detectLocal: { mode, bridgeInterface: '', interfaceNamePrefix: '', ...extra },
    });
    // NodeCIDR: the first pod CIDR of the family from the Node's spec.podCIDRs, host bits cleared.
    expect(rule(local('NodeCIDR'), 'inet', ['10.244.1.7/24', 'fd00:1::/64'])).toBe(`${prefix} KUBE-CLUSTER-IP dst,dst ! -s 10.244.1.0/24 -j KUBE-MARK-MASQ`);
    expect(rule(local('NodeCIDR'), 'inet6', ['10.244.1.0/24', 'fd00:1::/64'])).toBe(`${prefix} KUBE-6-CLUSTER-IP dst,dst ! -s fd00:1::/64 -j KUBE-MARK-MASQ`);
    // NodeCIDR ignores --cluster-cidr; without podCIDRs it is kube-proxy's no-op detector.
    expect(rule({ ...local('NodeCIDR'), clusterCidrs: ['10.0.0.0/8'] }, 'inet', [])).toBe(`${prefix} KUBE-CLUSTER-IP src,dst -j KUBE-MARK-MASQ`);
    expect(rule(local('BridgeInterface', { bridgeInterface: 'cbr0' }), 'inet')).toBe(`${prefix} KUBE-CLUSTER-IP dst,dst ! -i cbr0 -j KUBE-MARK-MASQ`);
    expect(rule(local('BridgeInterface', { bridgeInterface: 'cbr0' }), 'inet6')).toBe(`${prefix} KUBE-6-CLUSTER-IP dst,dst ! -i cbr0 -j KUBE-MARK-MASQ`);
    expect(rule(local('InterfaceNamePrefix', { interfaceNamePrefix: 'veth' }), 'inet')).toBe(`${prefix} KUBE-CLUSTER-IP dst,dst ! -i veth+ -j KUBE-MARK-MASQ`);
    // The interface modes do not read the cluster CIDR.
    expect(rule({ ...local('InterfaceNamePrefix', { interfaceNamePrefix: 'cali' }), clusterCidrs: ['10.0.0.0/8'] }, 'inet')).toContain('! -i cali+ -j');
  });

  it('fills KUBE-IPVS-OUT-FILTER as kube-proxy: the node may not reach a load balancer IP whose source ranges leave it out', () => {
    const entries = (list: readonly IpsetEntry[]): { entries: ReadonlyMap<string, IpsetEntry> } => ({
      entries: new Map(list.map((entry, i) => [String(i), entry])),
    });
    const ipsets = new Map([
      [
        ipsetName('loadBalancerFirewall', 'inet'),
        entries([
          { ip: '192.0.2.10', protocol: 'tcp', port: 80 },
          { ip: '192.0.2.11', protocol: 'udp', port: 53 },
        ]),
      ],
      // The node's address is in 192.0.2.11's ranges: translation let it through.
      [ipsetName('loadBalancerSourceIp', 'inet'), entries([{ ip: '192.0.2.11', protocol: 'udp', port: 53, ip2: '192.0.2.11' }])],
    ]);
    const denied = lbNoNodeAccess(ipsets, 'inet');
    expect(denied).toEqual([{ ip: '192.0.2.10', protocol: 'tcp', port: 80 }]);
    expect(lbNoNodeAccess(ipsets, 'inet6')).toEqual([]);
    const { filter } = buildIptablesRules(settings(), { family: 'inet', lbNoNodeAccess: denied }).rules;
    expect(filter.filter((rule) => rule.startsWith('-A KUBE-IPVS-OUT-FILTER'))).toEqual([
      '-A KUBE-IPVS-OUT-FILTER -s 192.0.2.10 -m ipvs --vaddr 192.0.2.10 --vproto tcp --vport 80 -j DROP',
    ]);
  });
});
