// The iptables rules of kube-proxy's IPVS mode, from the settings alone. kube-proxy matches every
// Service through its ipsets, so the rules are a fixed set whatever the cluster holds; only the
// sets' entries change. Layout, comments and set matches are copied from kube-proxy's
// pkg/proxy/ipvs/proxier.go (iptablesChains, iptablesJumpChain, ipsetWithIptablesChain,
// writeIptablesRules, acceptIPVSTraffic), so that iptables-save reads the same on a node that
// switched from kube-proxy. One deliberate difference: kube-proxy leaves out a set's rules while
// the set is empty; we always write them (an empty set matches nothing), so the text depends on the
// Services only through KUBE-IPVS-OUT-FILTER, which kube-proxy fills with one `-m ipvs --vaddr` rule
// per load balancer IP and port whose source ranges leave the node out (kubernetes#119656): IPVS has
// already rewritten the destination by filter OUTPUT, so a set match on the LB IP cannot do it.
import { parseCidr, type AddressFamily } from '../ip.js';
import type { IpsetEntry } from '../netlink/ipset/types.js';
import {
  renderRestoreInput,
  type IptablesChainRef,
  type IptablesJump,
  type IptablesOwnership,
  type IptablesRuleset,
  type IptablesTable,
} from '../model/iptables.js';
import { KUBE_IPSETS, ipsetName, type KubeIpsetId } from '../model/ipsets.js';
import type { ProxySettings } from '../model/settings.js';
import { KipvsError } from '../errors.js';

/** kube-proxy's --iptables-masquerade-bit default, 14: mark 0x4000. */
export const DEFAULT_MASQUERADE_MARK = 1 << 14;

/** Settings that cannot be turned into rules (two cluster CIDRs of one family, a zero mark). */
export class IptablesSettingsError extends KipvsError {
  constructor(message: string) {
    super('KIPVS_IPTABLES_SETTINGS', message);
  }
}

export interface IptablesRulesOptions {
  readonly family: AddressFamily;
  /** The fwmark bit(s) that send a packet to MASQUERADE in KUBE-POSTROUTING. */
  readonly masqueradeMark?: number;
  /** MASQUERADE --random-fully, which kube-proxy adds when iptables has it (1.6.2 and later). */
  readonly masqueradeRandomFully?: boolean;
  /** The Node's spec.podCIDRs, for detect-local-mode NodeCIDR. */
  readonly nodePodCidrs?: readonly string[];
  /** Load balancer IP:ports the node itself may not reach (lbNoNodeAccess): KUBE-IPVS-OUT-FILTER. */
  readonly lbNoNodeAccess?: readonly LoadBalancerPort[];
}

/** A load balancer IP, protocol and Service port. */
export interface LoadBalancerPort {
  readonly ip: string;
  readonly protocol: string;
  readonly port: number;
}

const chain = (table: IptablesTable, name: string): IptablesChainRef => ({ table, chain: name });

/** kube-proxy's iptablesChains: declared (and so flushed) on every apply, removed by cleanup. */
export const KIPVS_CHAINS: readonly IptablesChainRef[] = [
  chain('nat', 'KUBE-SERVICES'),
  chain('nat', 'KUBE-POSTROUTING'),
  chain('nat', 'KUBE-NODE-PORT'),
  chain('nat', 'KUBE-LOAD-BALANCER'),
  chain('nat', 'KUBE-MARK-MASQ'),
  chain('filter', 'KUBE-FORWARD'),
  chain('filter', 'KUBE-NODE-PORT'),
  chain('filter', 'KUBE-PROXY-FIREWALL'),
  chain('filter', 'KUBE-SOURCE-RANGES-FIREWALL'),
  chain('filter', 'KUBE-IPVS-FILTER'),
  chain('filter', 'KUBE-IPVS-OUT-FILTER'),
];

const jump = (table: IptablesTable, from: string, to: string, comment: string): IptablesJump => ({ table, from, to, comment });

/** kube-proxy's iptablesJumpChain, with its comments, in its order. */
export const KIPVS_JUMPS: readonly IptablesJump[] = [
  jump('nat', 'OUTPUT', 'KUBE-SERVICES', 'kubernetes service portals'),
  jump('nat', 'PREROUTING', 'KUBE-SERVICES', 'kubernetes service portals'),
  jump('nat', 'POSTROUTING', 'KUBE-POSTROUTING', 'kubernetes postrouting rules'),
  jump('filter', 'FORWARD', 'KUBE-FORWARD', 'kubernetes forwarding rules'),
  jump('filter', 'INPUT', 'KUBE-NODE-PORT', 'kubernetes health check rules'),
  jump('filter', 'INPUT', 'KUBE-PROXY-FIREWALL', 'kube-proxy firewall rules'),
  jump('filter', 'FORWARD', 'KUBE-PROXY-FIREWALL', 'kube-proxy firewall rules'),
  jump('filter', 'INPUT', 'KUBE-IPVS-FILTER', 'kubernetes ipvs access filter'),
  jump('filter', 'OUTPUT', 'KUBE-IPVS-OUT-FILTER', 'kubernetes ipvs access filter'),
];

/** What kipvs owns in the iptables tables: the same for both families and any settings. */
export const KIPVS_IPTABLES_OWNERSHIP: IptablesOwnership = { chains: KIPVS_CHAINS, jumps: KIPVS_JUMPS };

/**
 * kube-proxy's LocalTrafficDetector.IfNotLocal() for the family (pkg/proxy/util/localdetector.go,
 * chosen as cmd/kube-proxy/app/server_linux.go getLocalDetectors does), or undefined for its no-op
 * detector: ClusterCIDR and NodeCIDR take the first CIDR of the family (host bits cleared, as
 * cidrs[0].String()), the interface modes match the same interface in both families.
 */
export function ifNotLocal(settings: ProxySettings, family: AddressFamily, nodePodCidrs: readonly string[] = []): string | undefined {
  const { mode, bridgeInterface, interfaceNamePrefix } = settings.detectLocal;
  if (mode === 'BridgeInterface') return bridgeInterface === '' ? undefined : `! -i ${bridgeInterface}`;
  if (mode === 'InterfaceNamePrefix') return interfaceNamePrefix === '' ? undefined : `! -i ${interfaceNamePrefix}+`;
  const cidrs = (mode === 'NodeCIDR' ? nodePodCidrs : settings.clusterCidrs).map((text) => parseCidr(text.trim())).filter((cidr) => cidr?.family === family);
  if (mode === 'ClusterCIDR' && cidrs.length > 1) {
    throw new IptablesSettingsError(`at most one cluster CIDR per family, as kube-proxy's --cluster-cidr: got ${settings.clusterCidrs.join(', ')}`);
  }
  const first = cidrs[0];
  return first ? `! -s ${first.address}/${String(first.prefix)}` : undefined;
}

/**
 * The load balancer IP:ports that have source ranges and no (lbIP, port, lbIP) entry letting the
 * node through: kube-proxy's lbNoNodeAccessIPPortProtocolEntries, read back from the ipsets that
 * translation filled (KUBE-LOAD-BALANCER-FW minus KUBE-LOAD-BALANCER-SOURCE-IP).
 */
export function lbNoNodeAccess(ipsets: ReadonlyMap<string, { readonly entries: ReadonlyMap<string, IpsetEntry> }>, family: AddressFamily): LoadBalancerPort[] {
  const key = (entry: { ip: string; protocol: string; port: number }): string => `${entry.ip},${entry.protocol}:${String(entry.port)}`;
  const allowed = new Set<string>();
  for (const entry of ipsets.get(ipsetName('loadBalancerSourceIp', family))?.entries.values() ?? []) {
    if ('ip' in entry && 'port' in entry) allowed.add(key(entry));
  }
  const denied: LoadBalancerPort[] = [];
  for (const entry of ipsets.get(ipsetName('loadBalancerFirewall', family))?.entries.values() ?? []) {
    if ('ip' in entry && 'port' in entry && !allowed.has(key(entry))) denied.push({ ip: entry.ip, protocol: entry.protocol, port: entry.port });
  }
  return denied.sort((a, b) => key(a).localeCompare(key(b)));
}

function checkedMark(mark: number): string {
  if (!Number.isInteger(mark) || mark <= 0 || mark > 0xffffffff) {
    throw new IptablesSettingsError(`masquerade mark must be a non-zero 32-bit value, got ${mark}`);
  }
  return `0x${mark.toString(16)}`;
}

/** The rules of kipvs's chains for one family, in kube-proxy's order. */
export function buildIptablesRules(settings: ProxySettings, options: IptablesRulesOptions): IptablesRuleset {
  const { family } = options;
  const mark = checkedMark(options.masqueradeMark ?? DEFAULT_MASQUERADE_MARK);
  const notLocal = ifNotLocal(settings, family, options.nodePodCidrs);
  const set = (id: KubeIpsetId): string => ipsetName(id, family);
  // kube-proxy's IPSet.getComment(): the set's comment, quoted for iptables-restore.
  const setComment = (id: KubeIpsetId): string => `-m comment --comment "${KUBE_IPSETS[id].comment}"`;
  const setMatch = (id: KubeIpsetId, flags: string): string => `${setComment(id)} -m set --match-set ${set(id)} ${flags}`;
  const nat: string[] = [];
  const filter: string[] = [];

  // Dismiss connections to localhost early in the service chain.
  nat.push(`-A KUBE-SERVICES -s ${family === 'inet6' ? '::1/128' : '127.0.0.0/8'} -j RETURN`);

  // ipsetWithIptablesChain. The -LOCAL (externalTrafficPolicy: Local) sets come before their
  // plain sets: those packets RETURN unmarked and keep their source address.
  nat.push(`-A KUBE-POSTROUTING ${setMatch('loopBack', 'dst,dst,src')} -j MASQUERADE`);
  nat.push(`-A KUBE-SERVICES ${setMatch('loadBalancer', 'dst,dst')} -j KUBE-LOAD-BALANCER`);
  nat.push(`-A KUBE-LOAD-BALANCER ${setMatch('loadBalancerLocal', 'dst,dst')} -j RETURN`);
  nat.push(`-A KUBE-NODE-PORT -p tcp ${setMatch('nodePortLocalTcp', 'dst')} -j RETURN`);
  nat.push(`-A KUBE-NODE-PORT -p tcp ${setMatch('nodePortTcp', 'dst')} -j KUBE-MARK-MASQ`);
  nat.push(`-A KUBE-NODE-PORT -p udp ${setMatch('nodePortLocalUdp', 'dst')} -j RETURN`);
  nat.push(`-A KUBE-NODE-PORT -p udp ${setMatch('nodePortUdp', 'dst')} -j KUBE-MARK-MASQ`);
  // SCTP node ports are hash:ip,port sets (node IP + port), hence dst,dst.
  nat.push(`-A KUBE-NODE-PORT -p sctp ${setMatch('nodePortLocalSctp', 'dst,dst')} -j RETURN`);
  nat.push(`-A KUBE-NODE-PORT -p sctp ${setMatch('nodePortSctp', 'dst,dst')} -j KUBE-MARK-MASQ`);
  filter.push(`-A KUBE-PROXY-FIREWALL ${setMatch('loadBalancerFirewall', 'dst,dst')} -j KUBE-SOURCE-RANGES-FIREWALL`);
  filter.push(`-A KUBE-SOURCE-RANGES-FIREWALL ${setMatch('loadBalancerSourceCidr', 'dst,dst,src')} -j RETURN`);
  filter.push(`-A KUBE-SOURCE-RANGES-FIREWALL ${setMatch('loadBalancerSourceIp', 'dst,dst,src')} -j RETURN`);

  // ClusterIPs. --masquerade-all: every packet. A local detector (--detect-local-mode): packets not
  // from this cluster's pods (a static route to the Service range may bounce them off-node).
  // Neither: only the node's own connections that picked a VIP on kube-ipvs0 as their source.
  const clusterIp = `-A KUBE-SERVICES ${setComment('clusterIp')} -m set --match-set ${set('clusterIp')}`;
  if (settings.masqueradeAll) nat.push(`${clusterIp} dst,dst -j KUBE-MARK-MASQ`);
  else if (notLocal !== undefined) nat.push(`${clusterIp} dst,dst ${notLocal} -j KUBE-MARK-MASQ`);
  else nat.push(`${clusterIp} src,dst -j KUBE-MARK-MASQ`);

  // External IPs: accepted for traffic from off the machine (not from a bridge port, not from a
  // local address) and for destinations that are local addresses anyway (GCE load balancers).
  const externalIpAccepts = (id: KubeIpsetId): string[] => {
    const match = `-A KUBE-SERVICES ${setMatch(id, 'dst,dst')}`;
    return [`${match} -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT`, `${match} -m addrtype --dst-type LOCAL -j ACCEPT`];
  };
  nat.push(`-A KUBE-SERVICES ${setMatch('externalIp', 'dst,dst')} -j KUBE-MARK-MASQ`);
  nat.push(...externalIpAccepts('externalIp'), ...externalIpAccepts('externalIpLocal'));

  nat.push('-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT');
  nat.push('-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ');
  filter.push('-A KUBE-SOURCE-RANGES-FIREWALL -j DROP');
  // The node's own connection to a load balancer IP bound on kube-ipvs0 has that IP as its source.
  for (const { ip, protocol, port } of options.lbNoNodeAccess ?? []) {
    filter.push(`-A KUBE-IPVS-OUT-FILTER -s ${ip} -m ipvs --vaddr ${ip} --vproto ${protocol} --vport ${String(port)} -j DROP`);
  }

  // acceptIPVSTraffic: at the end of KUBE-SERVICES, so that no later rule of someone else's in
  // PREROUTING/OUTPUT turns away a packet IPVS is about to take.
  nat.push(`-A KUBE-SERVICES -m set --match-set ${set('clusterIp')} dst,dst -j ACCEPT`);
  nat.push(`-A KUBE-SERVICES -m set --match-set ${set('loadBalancer')} dst,dst -j ACCEPT`);

  // Marked packets (NodePorts, LBs) are forwarded even when FORWARD's policy is DROP; their
  // replies ride the conntrack rule.
  filter.push(`-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark ${mark}/${mark} -j ACCEPT`);
  filter.push('-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT');
  filter.push(`-A KUBE-NODE-PORT ${setMatch('healthCheckNodePort', 'dst')} -j ACCEPT`);

  // KUBE-IPVS-FILTER (kubernetes#72236): a VIP on kube-ipvs0 is a local address, so without this
  // any port of the node would answer on it. Service ports RETURN; new connections to other
  // ports of a VIP are rejected.
  for (const [id, flags] of [
    ['loadBalancer', 'dst,dst'],
    ['clusterIp', 'dst,dst'],
    ['externalIp', 'dst,dst'],
    ['externalIpLocal', 'dst,dst'],
    ['healthCheckNodePort', 'dst'],
  ] as const) {
    filter.push(`-A KUBE-IPVS-FILTER -m set --match-set ${set(id)} ${flags} -j RETURN`);
  }
  filter.push(`-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set ${set('ipvsIps')} dst -j REJECT`);

  // KUBE-POSTROUTING masquerades what was marked, clearing the mark so a packet that goes
  // through the stack again is not masqueraded twice.
  nat.push(`-A KUBE-POSTROUTING -m mark ! --mark ${mark}/${mark} -j RETURN`);
  nat.push(`-A KUBE-POSTROUTING -j MARK --xor-mark ${mark}`);
  nat.push(
    `-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE${options.masqueradeRandomFully ? ' --random-fully' : ''}`,
  );
  nat.push(`-A KUBE-MARK-MASQ -j MARK --or-mark ${mark}`);

  return { family, chains: KIPVS_CHAINS, jumps: KIPVS_JUMPS, rules: { nat, filter } };
}

/**
 * The ruleset as the iptables-restore input for a node without any of it yet: our chains declared
 * and filled, then every jump. For --dry-run, logs and tests; apply inserts only missing jumps.
 */
export const iptablesRestoreInput = (ruleset: IptablesRuleset): string => renderRestoreInput(ruleset, ruleset.jumps);
