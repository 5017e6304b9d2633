// Translation that follows changes: only the Services marked changed are translated again, and
// their results are merged into a desired state kept between calls, by difference (the old
// result's claims withdrawn, the new one's made). Each call also says which kernel objects those
// Services touched — the scope the diff needs to look at — so one endpoint change costs the same
// with 100 Services or 10,000. The result equals `translate()` of the same objects; a unit test
// holds it to that.
import { EVERYTHING, type DesiredIpset, type DesiredState, type DesiredVirtualServer, type DiffScope, type TranslationProblem } from '../model/desired.js';
import type { EndpointSlice, Service } from '../model/kubernetes.js';
import type { NodeFacts, ProxySettings } from '../model/settings.js';
import type { IpsetEntry } from '../netlink/ipset/types.js';
import { emptyIpsets } from './merge.js';
import { translateService } from './service.js';
import type { ServiceTranslation } from './translation.js';

/** What the translator reads: the ClusterStore, or anything shaped like it. */
export interface ServiceObjects {
  service(id: string): Service | undefined;
  /** In a stable order (the store's is by slice name). */
  slicesOf(serviceId: string): readonly EndpointSlice[];
  serviceIds(): Iterable<string>;
}

interface MutableScope {
  readonly all: false;
  readonly virtualServers: Set<string>;
  readonly addresses: Set<string>;
  readonly ipsetEntries: Map<string, Set<string>>;
}

type MutableIpset = DesiredIpset & { readonly entries: Map<string, IpsetEntry> };

const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** The desired state, kept up to date by difference. */
class MergedState implements DesiredState {
  readonly virtualServers = new Map<string, DesiredVirtualServer>();
  readonly boundAddresses = new Set<string>();
  readonly ipsets: Map<string, MutableIpset>;
  readonly translations = new Map<string, ServiceTranslation>();
  /** Services claiming each virtual server, in name order: the first keeps it (as mergeTranslations). */
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

  withdraw(translation: ServiceTranslation, scope: MutableScope): void {
    const id = translation.service;
    this.translations.delete(id);
    this.withProblems.delete(id);
    this.cachedProblems = undefined;
    for (const key of translation.virtualServers.keys()) {
      scope.virtualServers.add(key);
      const claimants = this.claimants.get(key)!;
      claimants.splice(claimants.indexOf(id), 1);
      if (claimants.length <= 1) this.contested.delete(key);
      if (claimants.length === 0) {
        this.claimants.delete(key);
        this.virtualServers.delete(key);
      } else {
        this.virtualServers.set(key, this.translations.get(claimants[0]!)!.virtualServers.get(key)!);
      }
    }
    for (const address of translation.boundAddresses) {
      scope.addresses.add(address);
      const left = this.addressClaims.get(address)! - 1;
      if (left > 0) this.addressClaims.set(address, left);
      else {
        this.addressClaims.delete(address);
        this.boundAddresses.delete(address);
      }
    }
    for (const [name, entries] of translation.ipsetEntries) {
      const ipset = this.ipsets.get(name);
      if (!ipset) continue;
      const claims = this.entryClaims.get(name)!;
      const scoped = scopeOfSet(scope, name);
      for (const key of entries.keys()) {
        scoped.add(key);
        const left = claims.get(key)! - 1;
        if (left > 0) claims.set(key, left);
        else {
          claims.delete(key);
          ipset.entries.delete(key);
        }
      }
    }
  }

  claim(translation: ServiceTranslation, scope: MutableScope): void {
    const id = translation.service;
    this.translations.set(id, translation);
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
      const claims = this.entryClaims.get(name)!;
      const scoped = scopeOfSet(scope, name);
      for (const [key, entry] of entries) {
        scoped.add(key);
        claims.set(key, (claims.get(key) ?? 0) + 1);
        if (!ipset.entries.has(key)) ipset.entries.set(key, entry);
      }
    }
  }

  /** In mergeTranslations' order: by Service, its own problems, then the virtual servers it lost. */
  private collectProblems(): TranslationProblem[] {
    const lost = new Map<string, Set<string>>();
    for (const key of this.contested) {
      for (const loser of this.claimants.get(key)!.slice(1)) {
        let keys = lost.get(loser);
        if (!keys) lost.set(loser, (keys = new Set()));
        keys.add(key);
      }
    }
    const problems: TranslationProblem[] = [];
    for (const id of [...new Set([...this.withProblems, ...lost.keys()])].sort(byCodePoint)) {
      const translation = this.translations.get(id)!;
      problems.push(...translation.problems);
      const keys = lost.get(id);
      if (!keys) continue;
      for (const key of translation.virtualServers.keys()) {
        if (!keys.has(key)) continue;
        const winner = this.virtualServers.get(key)!.owner;
        problems.push({
          object: id,
          reason: `virtual server ${key} is also claimed by ${winner.namespace}/${winner.name}, which sorts first and keeps it; skipped`,
        });
      }
    }
    return problems;
  }
}

function scopeOfSet(scope: MutableScope, name: string): Set<string> {
  let keys = scope.ipsetEntries.get(name);
  if (!keys) scope.ipsetEntries.set(name, (keys = new Set()));
  return keys;
}

export class IncrementalTranslator {
  private merged: MergedState | undefined;
  private lastNode: NodeFacts | undefined;
  private lastSettings: ProxySettings | undefined;
  /** Services translated by the last call (for tests and logs). */
  translatedLastTime = 0;

  /** Forgets everything: the next update translates every Service again. */
  reset(): void {
    this.merged = undefined;
  }

  /** The desired state as of the last update: live, changed in place by the next one. */
  get desired(): DesiredState {
    if (!this.merged) throw new Error('IncrementalTranslator: update() before reading the desired state');
    return this.merged;
  }

  /**
   * Translates the `changed` Services again (all of them on the first call, or when the node or
   * the settings changed) and returns the scope of the change.
   */
  update(objects: ServiceObjects, changed: Iterable<string>, node: NodeFacts, settings: ProxySettings): DiffScope {
    if (!this.merged || node !== this.lastNode || settings !== this.lastSettings) {
      this.merged = new MergedState(node);
      this.lastNode = node;
      this.lastSettings = settings;
      const scratch = newScope();
      this.translatedLastTime = 0;
      for (const id of objects.serviceIds()) {
        this.merged.claim(this.translateOne(objects, id, node, settings)!, scratch);
        this.translatedLastTime++;
      }
      return EVERYTHING;
    }
    const scope = newScope();
    this.translatedLastTime = 0;
    for (const id of changed) {
      const before = this.merged.translations.get(id);
      if (before) this.merged.withdraw(before, scope);
      const after = this.translateOne(objects, id, node, settings);
      if (after) {
        this.merged.claim(after, scope);
        this.translatedLastTime++;
      }
    }
    return scope;
  }

  private translateOne(objects: ServiceObjects, id: string, node: NodeFacts, settings: ProxySettings): ServiceTranslation | undefined {
    const service = objects.service(id);
    return service ? translateService(service, objects.slicesOf(id), node, settings) : undefined;
  }
}

const newScope = (): MutableScope => ({ all: false, virtualServers: new Set(), addresses: new Set(), ipsetEntries: new Map() });
