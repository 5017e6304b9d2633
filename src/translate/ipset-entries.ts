// The ipset entries kube-proxy's IPVS mode keeps for a Service port (ipvs/proxier.go
// syncProxyRules), set by set, under the same names (KUBE-6-… for IPv6). Its iptables rules match
// these sets; the reconciler only keeps their members right.
import type { AddressFamily } from '../ip.js';
import { ipsetName, type KubeIpsetId } from '../model/ipsets.js';
import { ipsetEntryKey } from '../model/desired.js';
import type { IpsetEntry, IpsetProtocol } from '../netlink/ipset/types.js';
import { inCidr, type ParsedAddress, type ParsedCidr } from './addresses.js';
import type { EndpointInfo } from './endpoints.js';
import type { IpsetEntriesBySet } from './translation.js';

export class IpsetEntries {
  private readonly sets = new Map<string, Map<string, IpsetEntry>>();

  add(id: KubeIpsetId, family: AddressFamily, entry: IpsetEntry): void {
    const name = ipsetName(id, family);
    let entries = this.sets.get(name);
    if (!entries) this.sets.set(name, (entries = new Map<string, IpsetEntry>()));
    entries.set(ipsetEntryKey(entry), entry);
  }

  get bySet(): IpsetEntriesBySet {
    return this.sets;
  }
}

/** What every entry of one Service port shares. */
export interface PortContext {
  readonly entries: IpsetEntries;
  readonly family: AddressFamily;
  readonly protocol: IpsetProtocol;
  readonly port: number;
  readonly externalPolicyLocal: boolean;
}

/** KUBE-LOOP-BACK: an endpoint on this node reaching itself through the Service (hairpin), masqueraded. */
export function addLoopBackEntries(context: PortContext, endpoints: readonly EndpointInfo[]): void {
  for (const endpoint of endpoints) {
    if (!endpoint.local) continue;
    context.entries.add('loopBack', context.family, { ip: endpoint.address, protocol: context.protocol, port: endpoint.port, ip2: endpoint.address });
  }
}

export function addClusterIpEntry(context: PortContext, clusterIP: string): void {
  context.entries.add('clusterIp', context.family, { ip: clusterIP, protocol: context.protocol, port: context.port });
}

/** With externalTrafficPolicy Local an external IP goes to the -LOCAL set only (no masquerade). */
export function addExternalIpEntry(context: PortContext, externalIP: string): void {
  const entry = { ip: externalIP, protocol: context.protocol, port: context.port };
  context.entries.add(context.externalPolicyLocal ? 'externalIpLocal' : 'externalIp', context.family, entry);
}

/**
 * KUBE-LOAD-BALANCER always, -LOCAL too with externalTrafficPolicy Local. With source ranges:
 * the IP in -FW and one -SOURCE-CIDR entry per range; when a range holds a node address, the
 * (lbIP, port, lbIP) entry in -SOURCE-IP lets the node itself through, since a connection from the
 * node to a VIP bound on the dummy interface has the VIP as its source. kube-proxy tests its one
 * primary node IP; we test every node address of the family.
 */
export function addLoadBalancerEntries(
  context: PortContext,
  ingressIP: string,
  sourceRanges: readonly ParsedCidr[],
  nodeAddresses: readonly ParsedAddress[],
): void {
  const { entries, family, protocol, port } = context;
  const entry = { ip: ingressIP, protocol, port };
  entries.add('loadBalancer', family, entry);
  if (context.externalPolicyLocal) entries.add('loadBalancerLocal', family, entry);
  if (sourceRanges.length === 0) return;
  entries.add('loadBalancerFirewall', family, entry);
  let allowFromNode = false;
  for (const range of sourceRanges) {
    entries.add('loadBalancerSourceCidr', family, { ...entry, net: { address: range.address, prefix: range.prefix } });
    if (nodeAddresses.some((address) => inCidr(range, address))) allowFromNode = true;
  }
  if (allowFromNode) entries.add('loadBalancerSourceIp', family, { ...entry, ip2: ingressIP });
}

const NODE_PORT_SETS: Readonly<Record<IpsetProtocol, { readonly all: KubeIpsetId; readonly local: KubeIpsetId }>> = {
  tcp: { all: 'nodePortTcp', local: 'nodePortLocalTcp' },
  udp: { all: 'nodePortUdp', local: 'nodePortLocalUdp' },
  sctp: { all: 'nodePortSctp', local: 'nodePortLocalSctp' },
};

/**
 * The NodePort in KUBE-NODE-PORT-TCP/-UDP (bitmap:port), or for SCTP one (nodeIP, sctp:port)
 * entry per node address in KUBE-NODE-PORT-SCTP-HASH; the -LOCAL sets too with
 * externalTrafficPolicy Local.
 */
export function addNodePortEntries(context: PortContext, nodePort: number, nodeAddresses: readonly string[]): void {
  const { entries, family, protocol } = context;
  const sets = NODE_PORT_SETS[protocol];
  const portEntries: IpsetEntry[] = protocol === 'sctp' ? nodeAddresses.map((ip) => ({ ip, protocol, port: nodePort })) : [{ port: nodePort }];
  for (const entry of portEntries) {
    entries.add(sets.all, family, entry);
    if (context.externalPolicyLocal) entries.add(sets.local, family, entry);
  }
}

export function addHealthCheckNodePortEntry(entries: IpsetEntries, family: AddressFamily, port: number): void {
  entries.add('healthCheckNodePort', family, { port });
}

/** KUBE-IPVS-IPS: every address bound to the dummy interface. */
export function addBoundAddressEntry(entries: IpsetEntries, family: AddressFamily, address: string): void {
  entries.add('ipvsIps', family, { ip: address });
}
