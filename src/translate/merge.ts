// Merges per-Service translations into the one desired state: every kube-proxy ipset of every
// family the node has (empty ones too, so that kube-proxy's iptables rules always find their sets),
// and one owner per virtual server.
import { KipvsError } from '../errors.js';
import type { AddressFamily } from '../ip.js';
import type { DesiredIpset, DesiredState, DesiredVirtualServer, TranslationProblem } from '../model/desired.js';
import { ipsetName, KUBE_IPSETS, type KubeIpsetDefinition, type KubeIpsetId } from '../model/ipsets.js';
import type { NodeFacts } from '../model/settings.js';
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

type MutableIpset = DesiredIpset & { readonly entries: Map<string, IpsetEntry> };

/** The kernel objects a change touched (DiffScope), filled in as translations are withdrawn and claimed. */
export interface MutableScope {
  readonly all: false;
  readonly virtualServers: Set<string>;
  readonly addresses: Set<string>;
  readonly ipsetEntries: Map<string, Set<string>>;
}

/** What claim() recorded under `key`: withdraw() and the problems read only what it did, so a missing one is a bug of ours. */
function claimed<V>(records: ReadonlyMap<string, V>, key: string): V {
  const record = records.get(key);
  if (record === undefined) throw new KipvsError('KIPVS_INTERNAL', `merged state: nothing recorded for ${key}`);
  return record;
}

/**
 * What the merged state keeps of a Service's translation once it is merged: enough to withdraw it
 * and to hand its contested virtual servers on, in arrays. The translation's own maps and sets
 * (five or six small ones per Service, 10 MB at 10,000 Services) are left to the collector.
 */
interface ClaimRecord {
  readonly service: string;
  /** The keys of `virtualServers`, in the same order. */
  readonly virtualServerKeys: readonly string[];
  readonly virtualServers: readonly DesiredVirtualServer[];
  readonly boundAddresses: readonly string[];
  /** (set name, entry key) pairs, flat. */
  readonly ipsetEntries: readonly string[];
  readonly problems: readonly TranslationProblem[];
}

const NONE: readonly never[] = Object.freeze([]);
const arrayOf = <T>(values: Iterable<T>): readonly T[] => {
  const array = [...values];
  return array.length === 0 ? NONE : array;
};

function recordOf(translation: ServiceTranslation): ClaimRecord {
  const ipsetEntries: string[] = [];
  for (const [name, entries] of translation.ipsetEntries) for (const key of entries.keys()) ipsetEntries.push(name, key);
  return {
    service: translation.service,
    virtualServerKeys: arrayOf(translation.virtualServers.keys()),
    virtualServers: arrayOf(translation.virtualServers.values()),
    boundAddresses: arrayOf(translation.boundAddresses),
    ipsetEntries: ipsetEntries.length === 0 ? NONE : ipsetEntries,
    problems: translation.problems.length === 0 ? NONE : translation.problems,
  };
}

/** Code-point order, the same on every machine and locale. */
const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The desired state, kept up to date by difference: the one home of the merge rule. When two
 * Services want the same virtual server, the one whose namespace/name sorts first keeps it and the
 * other is told which Service has it. Only that virtual server is withheld: the loser's ipset
 * entries and addresses stay, as kube-proxy (which has no such rule) would keep them too.
 */
export class MergedState implements DesiredState {
  readonly virtualServers = new Map<string, DesiredVirtualServer>();
  readonly boundAddresses = new Set<string>();
  readonly ipsets: Map<string, MutableIpset>;
  /** By Service id: what each merged translation claimed. */
  private readonly records = new Map<string, ClaimRecord>();
  /** Services claiming each virtual server, in name order: the first keeps it. */
  private readonly claimants = new Map<string, string[]>();
  private readonly addressClaims = new Map<string, number>();
  private readonly entryClaims = new Map<string, Map<string, number>>();
  private readonly withProblems = new Set<string>();
  private readonly contested = new Set<string>();
  private cachedProblems: TranslationProblem[] | undefined;

  constructor(node: NodeFacts) {
    this.ipsets = emptyIpsets(node);
    for (const name of this.ipsets.keys()) this.entryClaims.set(name, new Map());
  }

  get problems(): readonly TranslationProblem[] {
    return (this.cachedProblems ??= this.collectProblems());
  }

  /** Withdraws what the Service's translation claimed, if it has one merged. */
  withdraw(serviceId: string, scope: MutableScope): void {
    const record = this.records.get(serviceId);
    if (!record) return;
    const id = record.service;
    this.records.delete(id);
    this.withProblems.delete(id);
    this.cachedProblems = undefined;
    for (const key of record.virtualServerKeys) {
      scope.virtualServers.add(key);
      const claimants = claimed(this.claimants, key);
      claimants.splice(claimants.indexOf(id), 1);
      if (claimants.length <= 1) this.contested.delete(key);
      const [keeper] = claimants;
      if (keeper === undefined) {
        this.claimants.delete(key);
        this.virtualServers.delete(key);
      } else {
        this.virtualServers.set(key, claimedVirtualServer(claimed(this.records, keeper), key));
      }
    }
    for (const address of record.boundAddresses) {
      scope.addresses.add(address);
      const left = claimed(this.addressClaims, address) - 1;
      if (left > 0) this.addressClaims.set(address, left);
      else {
        this.addressClaims.delete(address);
        this.boundAddresses.delete(address);
      }
    }
    for (let i = 0; i + 1 < record.ipsetEntries.length; i += 2) {
      const name = record.ipsetEntries[i] ?? '';
      const key = record.ipsetEntries[i + 1] ?? '';
      const ipset = this.ipsets.get(name);
      if (!ipset) continue;
      const claims = claimed(this.entryClaims, name);
      scopeOfSet(scope, name).add(key);
      const left = claimed(claims, key) - 1;
      if (left > 0) claims.set(key, left);
      else {
        claims.delete(key);
        ipset.entries.delete(key);
      }
    }
  }

  /** Merges a Service's translation; withdraw() the one it had before first. */
  claim(translation: ServiceTranslation, scope: MutableScope): void {
    const id = translation.service;
    this.records.set(id, recordOf(translation));
    if (translation.problems.length > 0) this.withProblems.add(id);
    this.cachedProblems = undefined;
    for (const [key, virtualServer] of translation.virtualServers) {
      scope.virtualServers.add(key);
      const claimants = this.claimants.get(key);
      if (!claimants) {
        this.claimants.set(key, [id]);
        this.virtualServers.set(key, virtualServer);
        continue;
      }
      let at = claimants.findIndex((other) => byCodePoint(id, other) < 0);
      if (at === -1) at = claimants.length;
      claimants.splice(at, 0, id);
      this.contested.add(key);
      if (at === 0) this.virtualServers.set(key, virtualServer);
    }
    for (const address of translation.boundAddresses) {
      scope.addresses.add(address);
      this.addressClaims.set(address, (this.addressClaims.get(address) ?? 0) + 1);
      this.boundAddresses.add(address);
    }
    for (const [name, entries] of translation.ipsetEntries) {
      const ipset = this.ipsets.get(name);
      if (!ipset) continue;
      const claims = claimed(this.entryClaims, name);
      const scoped = scopeOfSet(scope, name);
      for (const [key, entry] of entries) {
        scoped.add(key);
        claims.set(key, (claims.get(key) ?? 0) + 1);
        if (!ipset.entries.has(key)) ipset.entries.set(key, entry);
      }
    }
  }

  /** By Service, its own problems, then the virtual servers it lost. */
  private collectProblems(): TranslationProblem[] {
    const lost = new Map<string, Set<string>>();
    for (const key of this.contested) {
      for (const loser of claimed(this.claimants, key).slice(1)) {
        let keys = lost.get(loser);
        if (!keys) lost.set(loser, (keys = new Set()));
        keys.add(key);
      }
    }
    const problems: TranslationProblem[] = [];
    for (const id of [...new Set([...this.withProblems, ...lost.keys()])].sort(byCodePoint)) {
      const record = claimed(this.records, id);
      problems.push(...record.problems);
      const keys = lost.get(id);
      if (!keys) continue;
      for (const key of record.virtualServerKeys) {
        if (!keys.has(key)) continue;
        const winner = claimed(this.virtualServers, key).owner;
        problems.push({
          object: id,
          reason: `virtual server ${key} is also claimed by ${winner.namespace}/${winner.name}, which sorts first and keeps it; skipped`,
        });
      }
    }
    return problems;
  }
}

function claimedVirtualServer(record: ClaimRecord, key: string): DesiredVirtualServer {
  const virtualServer = record.virtualServers[record.virtualServerKeys.indexOf(key)];
  if (virtualServer === undefined) throw new KipvsError('KIPVS_INTERNAL', `merged state: ${record.service} did not claim ${key}`);
  return virtualServer;
}

function scopeOfSet(scope: MutableScope, name: string): Set<string> {
  let keys = scope.ipsetEntries.get(name);
  if (!keys) scope.ipsetEntries.set(name, (keys = new Set()));
  return keys;
}

export const newScope = (): MutableScope => ({ all: false, virtualServers: new Set(), addresses: new Set(), ipsetEntries: new Map() });

/** Merges translations from scratch: the same rule as the incremental translator, as one plain state. */
export function mergeTranslations(translations: Iterable<ServiceTranslation>, node: NodeFacts): DesiredState {
  const merged = new MergedState(node);
  const scratch = newScope();
  for (const translation of translations) merged.claim(translation, scratch);
  return { virtualServers: merged.virtualServers, boundAddresses: merged.boundAddresses, ipsets: merged.ipsets, problems: [...merged.problems] };
}
