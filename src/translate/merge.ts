// Merges per-Service translations into the one desired state: every kube-proxy ipset of every
// family the node has (empty ones too, so that kube-proxy's iptables rules always find their sets),
// and one owner per virtual server.
import type { AddressFamily } from '../ip.js';
import type { DesiredIpset, DesiredState, DesiredVirtualServer, TranslationProblem } from '../model/desired.js';
import { ipsetName, KUBE_IPSETS, type KubeIpsetDefinition, type KubeIpsetId } from '../model/ipsets.js';
import type { NodeFacts, ProxySettings } from '../model/settings.js';
import type { IpsetEntry, IpsetSetSpec } from '../netlink/ipset/types.js';
import type { ServiceTranslation } from './translation.js';

/**
 * As kube-proxy creates them (ipvs/ipset.go, ipset/ipset.go createSet): hash sets of the family
 * with the kernel's default sizes, bitmap:port over every port; no entry comments.
 */
export function kubeIpsetSpec(definition: KubeIpsetDefinition, family: AddressFamily): IpsetSetSpec {
  if (definition.type === 'bitmap:port') return { type: 'bitmap:port', range: { from: 0, to: 65535 }, comment: false };
  return { type: definition.type, family, comment: false };
}

interface MutableIpset extends DesiredIpset {
  readonly entries: Map<string, IpsetEntry>;
}

export function emptyIpsets(node: NodeFacts): Map<string, MutableIpset> {
  const ipsets = new Map<string, MutableIpset>();
  for (const family of new Set(node.families)) {
    for (const id of Object.keys(KUBE_IPSETS) as KubeIpsetId[]) {
      const name = ipsetName(id, family);
      ipsets.set(name, { name, spec: kubeIpsetSpec(KUBE_IPSETS[id], family), entries: new Map() });
    }
  }
  return ipsets;
}

/** Code-point order, the same on every machine and locale. */
const byService = (a: ServiceTranslation, b: ServiceTranslation): number => (a.service < b.service ? -1 : a.service > b.service ? 1 : 0);

/**
 * When two Services want the same virtual server, the one whose namespace/name sorts first keeps
 * it and the other is told which Service has it. Only that virtual server is withheld: the loser's
 * ipset entries and addresses stay, as kube-proxy (which has no such rule) would keep them too.
 * `settings` is taken for symmetry with translateService; nothing here depends on it yet.
 */
export function mergeTranslations(translations: Iterable<ServiceTranslation>, node: NodeFacts, _settings: ProxySettings): DesiredState {
  const virtualServers = new Map<string, DesiredVirtualServer>();
  const boundAddresses = new Set<string>();
  const ipsets = emptyIpsets(node);
  const problems: TranslationProblem[] = [];
  for (const translation of [...translations].sort(byService)) {
    problems.push(...translation.problems);
    for (const [key, virtualServer] of translation.virtualServers) {
      const winner = virtualServers.get(key);
      if (winner) {
        problems.push({
          object: translation.service,
          reason: `virtual server ${key} is also claimed by ${winner.owner.namespace}/${winner.owner.name}, which sorts first and keeps it; skipped`,
        });
        continue;
      }
      virtualServers.set(key, virtualServer);
    }
    for (const address of translation.boundAddresses) boundAddresses.add(address);
    for (const [name, entries] of translation.ipsetEntries) {
      const ipset = ipsets.get(name);
      if (!ipset) continue;
      for (const [key, entry] of entries) ipset.entries.set(key, entry);
    }
  }
  return { virtualServers, boundAddresses, ipsets, problems };
}
