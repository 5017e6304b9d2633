// The ipsets kube-proxy's IPVS mode keeps (pkg/proxy/ipvs/ipset.go, proxier.go ipsetInfo): the
// same names, types and comments, so that a node switched from kube-proxy keeps its layout and an
// operator's `ipset list` reads the same. IPv6 sets carry the "KUBE-6-" prefix as kube-proxy's do.
import type { AddressFamily } from '../ip.js';
import type { IpsetSetType } from '../netlink/ipset/types.js';

export interface KubeIpsetDefinition {
  readonly name: string;
  readonly type: IpsetSetType;
  readonly comment: string;
}

export const KUBE_IPSETS = {
  loopBack: { name: 'KUBE-LOOP-BACK', type: 'hash:ip,port,ip', comment: 'Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose' },
  clusterIp: { name: 'KUBE-CLUSTER-IP', type: 'hash:ip,port', comment: 'Kubernetes service cluster ip + port for masquerade purpose' },
  externalIp: { name: 'KUBE-EXTERNAL-IP', type: 'hash:ip,port', comment: 'Kubernetes service external ip + port for masquerade and filter purpose' },
  externalIpLocal: { name: 'KUBE-EXTERNAL-IP-LOCAL', type: 'hash:ip,port', comment: 'Kubernetes service external ip + port with externalTrafficPolicy=local' },
  loadBalancer: { name: 'KUBE-LOAD-BALANCER', type: 'hash:ip,port', comment: 'Kubernetes service lb portal' },
  loadBalancerFirewall: {
    name: 'KUBE-LOAD-BALANCER-FW',
    type: 'hash:ip,port',
    comment: 'Kubernetes service load balancer ip + port for load balancer with sourceRange',
  },
  loadBalancerLocal: {
    name: 'KUBE-LOAD-BALANCER-LOCAL',
    type: 'hash:ip,port',
    comment: 'Kubernetes service load balancer ip + port with externalTrafficPolicy=local',
  },
  loadBalancerSourceIp: {
    name: 'KUBE-LOAD-BALANCER-SOURCE-IP',
    type: 'hash:ip,port,ip',
    comment: 'Kubernetes service load balancer ip + port + source IP for packet filter purpose',
  },
  loadBalancerSourceCidr: {
    name: 'KUBE-LOAD-BALANCER-SOURCE-CIDR',
    type: 'hash:ip,port,net',
    comment: 'Kubernetes service load balancer ip + port + source cidr for packet filter purpose',
  },
  nodePortTcp: { name: 'KUBE-NODE-PORT-TCP', type: 'bitmap:port', comment: 'Kubernetes nodeport TCP port for masquerade purpose' },
  nodePortLocalTcp: { name: 'KUBE-NODE-PORT-LOCAL-TCP', type: 'bitmap:port', comment: 'Kubernetes nodeport TCP port with externalTrafficPolicy=local' },
  nodePortUdp: { name: 'KUBE-NODE-PORT-UDP', type: 'bitmap:port', comment: 'Kubernetes nodeport UDP port for masquerade purpose' },
  nodePortLocalUdp: { name: 'KUBE-NODE-PORT-LOCAL-UDP', type: 'bitmap:port', comment: 'Kubernetes nodeport UDP port with externalTrafficPolicy=local' },
  nodePortSctp: {
    name: 'KUBE-NODE-PORT-SCTP-HASH',
    type: 'hash:ip,port',
    comment: "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'",
  },
  nodePortLocalSctp: {
    name: 'KUBE-NODE-PORT-LOCAL-SCTP-HASH',
    type: 'hash:ip,port',
    comment: "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'",
  },
  healthCheckNodePort: { name: 'KUBE-HEALTH-CHECK-NODE-PORT', type: 'bitmap:port', comment: 'Kubernetes health check node port' },
  ipvsIps: { name: 'KUBE-IPVS-IPS', type: 'hash:ip', comment: 'IPVS service ClusterIP, ExternalIP and LoadBalancer ingress IP' },
} as const satisfies Record<string, KubeIpsetDefinition>;

export type KubeIpsetId = keyof typeof KUBE_IPSETS;

/** ipset's limit: IPSET_MAXNAMELEN (32) with the NUL. */
const MAX_SET_NAME = 31;

/**
 * The set's name in a family: IPv6 sets are "KUBE-6-…", cut to ipset's 31 characters as
 * kube-proxy's ipset.go does ("KUBE-6-LOAD-BALANCER-SOURCE-CID").
 */
export function ipsetName(id: KubeIpsetId, family: AddressFamily): string {
  const { name } = KUBE_IPSETS[id];
  return family === 'inet6' ? name.replace(/^KUBE-/, 'KUBE-6-').slice(0, MAX_SET_NAME) : name;
}
