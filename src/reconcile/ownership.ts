// Which virtual servers that nobody wants any more kipvs may delete: those it programmed before
// (its state file), those whose address is bound on its dummy interface (kube-proxy's own rule),
// and NodePort ones — on a node address, at a port kube-proxy's KUBE-NODE-PORT-* sets still list.
// Those sets are kube-proxy's record of the NodePorts it served (kipvs keeps them the same way),
// so a node switched from kube-proxy loses the NodePorts of Services deleted in between, and
// nobody else's virtual server is touched. kube-proxy ≤ 1.21 also made NodePort virtual servers on
// 127.0.0.1 and ::1 (its NodeIPs() took every local address; kubernetes#96879: they never
// worked, and 1.22 stopped making them): at a recorded NodePort those are kube-proxy's leftovers.
import { isFwmarkKey, type IpvsService } from '../netlink/ipvs/types.js';
import { virtualServerKey } from '../model/desired.js';
import { ipsetName, type KubeIpsetId } from '../model/ipsets.js';
import { cidrContains, type AddressFamily } from '../ip.js';
import type { ObservedIpset } from './state.js';

export interface OwnershipFacts {
  /** Virtual server keys kipvs recorded as programmed. */
  readonly previouslyOwned: ReadonlySet<string>;
  /** Addresses on the dummy interface. */
  readonly boundAddresses: ReadonlySet<string>;
  /** The node's own addresses (where NodePorts listen). */
  readonly nodeAddresses: ReadonlySet<string>;
  /** recordedNodePorts() of the observed sets: asked only when a virtual server on a node address is in question. */
  readonly recordedNodePorts: () => ReadonlySet<string>;
}

const PORT_SETS: ReadonlyArray<[KubeIpsetId, string]> = [
  ['nodePortTcp', 'TCP'],
  ['nodePortLocalTcp', 'TCP'],
  ['nodePortUdp', 'UDP'],
  ['nodePortLocalUdp', 'UDP'],
];
const SCTP_SETS: readonly KubeIpsetId[] = ['nodePortSctp', 'nodePortLocalSctp'];

const nodePortKey = (protocol: string, port: number, address?: string): string =>
  address === undefined ? `${protocol} ${port}` : `${protocol} ${address} ${port}`;

/** `TCP 30080`, `UDP 30053`, and for SCTP (kept per address) `SCTP 192.0.2.1 30090`. */
export function recordedNodePorts(ipsets: ReadonlyMap<string, ObservedIpset>): Set<string> {
  const recorded = new Set<string>();
  for (const family of ['inet', 'inet6'] as AddressFamily[]) {
    for (const [id, protocol] of PORT_SETS) {
      for (const entry of ipsets.get(ipsetName(id, family))?.entries.values() ?? []) {
        if ('port' in entry && !('ip' in entry)) recorded.add(nodePortKey(protocol, entry.port));
      }
    }
    for (const id of SCTP_SETS) {
      for (const entry of ipsets.get(ipsetName(id, family))?.entries.values() ?? []) {
        if ('ip' in entry && 'port' in entry) recorded.add(nodePortKey('SCTP', entry.port, entry.ip));
      }
    }
  }
  return recorded;
}

const isLoopback = (address: string): boolean => address === '::1' || cidrContains('127.0.0.0/8', address);

export function mayDelete(service: IpvsService, facts: OwnershipFacts): boolean {
  if (facts.previouslyOwned.has(virtualServerKey(service.key))) return true;
  if (isFwmarkKey(service.key)) return false;
  const { address, port, protocol } = service.key;
  if (facts.boundAddresses.has(address)) return true;
  if (!facts.nodeAddresses.has(address) && !isLoopback(address)) return false;
  return facts.recordedNodePorts().has(protocol === 'SCTP' ? nodePortKey(protocol, port, address) : nodePortKey(protocol, port));
}
