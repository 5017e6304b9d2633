// The agent's copy of the cluster: Services and EndpointSlices by name, and which Services changed
// since the agent last looked. Sources (the file source, the API server's informers) feed it
// object by object; the agent translates only the Services it marks changed, so one endpoint
// change costs the same with 100 Services or 10,000.
import type { ClusterSnapshot, EndpointSlice, Service } from '../model/kubernetes.js';
import { identityOf, serviceIdOfSlice, type ObjectIdentity } from '../translate/translation.js';

/** What sources call; the store and test doubles implement it. */
export interface ClusterSink {
  upsertService(service: Service): void;
  deleteService(service: Service): void;
  upsertEndpointSlice(slice: EndpointSlice): void;
  deleteEndpointSlice(slice: EndpointSlice): void;
  /** Everything the source holds now (a relist, a reread file): what is not in it is deleted. */
  replaceAll(services: readonly Service[], endpointSlices: readonly EndpointSlice[]): unknown;
}

/** What changed since the agent last looked. */
export interface ClusterChanges {
  /** Ids of the Services to translate again. */
  readonly services: Set<string>;
  /** EndpointSlices added or updated (for the network programming latency). */
  readonly endpointSlices: readonly EndpointSlice[];
}

export class ClusterStore implements ClusterSink {
  private readonly services = new Map<string, Service>();
  private readonly slices = new Map<string, EndpointSlice>();
  /** Slice id → the Service id it was filed under, so a relabelled slice leaves its old Service. */
  private readonly sliceOwner = new Map<string, string>();
  /**
   * Each Service's slices in name order: the array slicesOf hands out, replaced whenever one of
   * them comes or goes, never changed in place. (Made on each call, from a map per Service, it was
   * three arrays per Service each time the names record or a full sync's observers read every
   * Service.) A Service's slices share its namespace, so name order is id order.
   */
  private readonly slicesByService = new Map<string, readonly EndpointSlice[]>();
  /**
   * replaceAll's calls so far, and the last one whose input held each id: what a reread no longer
   * holds is what it did not stamp. (A new set of every id at each reread, 20,000 at 10,000
   * Services, lived through the whole reread and so was promoted to the old generation at every
   * endpoint change the file source read.)
   */
  private replaceRound = 0;
  private readonly serviceRounds = new Map<string, number>();
  private readonly sliceRounds = new Map<string, number>();
  private changed = new Set<string>();
  private changedSlices: EndpointSlice[] = [];
  private readonly totals = { services: 0, endpointSlices: 0 };
  private readonly listeners: (() => void)[] = [];
  private notifying = false;
  /**
   * False while the source holds input it could not read even once (a file broken since the
   * agent started): the store may lack Services that are programmed, so a sync removes nothing.
   */
  complete = true;

  /** Called soon after changes, once per synchronous burst (the agent asks its runner for a sync). */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  upsertService(service: Service): void {
    this.upsertServiceAs(identityOf(service), service);
  }

  /** With its identity already made (replaceAll makes it for every object of a reread). */
  private upsertServiceAs({ id, name }: ObjectIdentity, service: Service): void {
    if (name === '' || this.services.get(id) === service) return;
    this.services.set(id, service);
    this.countEvent('services');
    this.mark(id);
  }

  deleteService(service: Service): void {
    const { id } = identityOf(service);
    if (!this.services.delete(id)) return;
    this.countEvent('services');
    this.mark(id);
  }

  upsertEndpointSlice(slice: EndpointSlice): void {
    this.upsertSliceAs(identityOf(slice), slice);
  }

  private upsertSliceAs({ id, name }: ObjectIdentity, slice: EndpointSlice): void {
    if (name === '' || this.slices.get(id) === slice) return;
    this.unfileSlice(id);
    this.slices.set(id, slice);
    this.countEvent('endpointSlices');
    this.changedSlices.push(slice);
    const owner = serviceIdOfSlice(slice);
    if (owner !== undefined) {
      this.sliceOwner.set(id, owner);
      this.slicesByService.set(owner, [...(this.slicesByService.get(owner) ?? []), slice].sort(byName));
      this.mark(owner);
    }
  }

  deleteEndpointSlice(slice: EndpointSlice): void {
    const { id } = identityOf(slice);
    this.removeSlice(id);
  }

  /** Returns the ids of Services given more than once: the first copy is kept, the others ignored. */
  replaceAll(services: readonly Service[], endpointSlices: readonly EndpointSlice[]): string[] {
    const round = ++this.replaceRound;
    const repeated: string[] = [];
    for (const service of services) {
      const identity = identityOf(service);
      if (this.serviceRounds.get(identity.id) === round) {
        repeated.push(identity.id);
        continue;
      }
      this.serviceRounds.set(identity.id, round);
      this.upsertServiceAs(identity, service);
    }
    this.services.forEach((service, id) => {
      if (this.serviceRounds.get(id) !== round) this.deleteService(service);
    });
    for (const slice of endpointSlices) {
      const identity = identityOf(slice);
      if (this.sliceRounds.get(identity.id) === round) continue;
      this.sliceRounds.set(identity.id, round);
      this.upsertSliceAs(identity, slice);
    }
    this.slices.forEach((_, id) => {
      if (this.sliceRounds.get(id) !== round) this.removeSlice(id);
    });
    forgetBefore(this.serviceRounds, round);
    forgetBefore(this.sliceRounds, round);
    return repeated;
  }

  service(id: string): Service | undefined {
    return this.services.get(id);
  }

  /** The Service's slices in name order (the order translation sees them in, whatever the source). */
  slicesOf(serviceId: string): readonly EndpointSlice[] {
    return this.slicesByService.get(serviceId) ?? NO_SLICES;
  }

  /** The ids of the Services changed (added, updated, deleted, slices touched) since the last call. */
  takeChanged(): Set<string> {
    return this.takeChanges().services;
  }

  /** Everything changed since the last call. */
  takeChanges(): ClusterChanges {
    const changes = { services: this.changed, endpointSlices: this.changedSlices };
    this.changed = new Set();
    this.changedSlices = [];
    return changes;
  }

  /** Events that changed something since the store began, by kind (kube-proxy's *_changes_total). */
  get eventTotals(): { readonly services: number; readonly endpointSlices: number } {
    return this.totals;
  }

  /** Every Service id, for a translation from scratch. */
  serviceIds(): IterableIterator<string> {
    return this.services.keys();
  }

  get size(): { services: number; endpointSlices: number } {
    return { services: this.services.size, endpointSlices: this.slices.size };
  }

  /** The whole cluster as one snapshot (tests, --dry-run). */
  snapshot(): ClusterSnapshot {
    return { services: [...this.services.values()], endpointSlices: [...this.slices.values()] };
  }

  private removeSlice(id: string): void {
    if (this.unfileSlice(id)) this.countEvent('endpointSlices');
  }

  /** Forgets the slice and marks its Service; false when there was none. */
  private unfileSlice(id: string): boolean {
    const slice = this.slices.get(id);
    if (!slice) return false;
    this.slices.delete(id);
    const owner = this.sliceOwner.get(id);
    if (owner === undefined) return true;
    this.sliceOwner.delete(id);
    const rest = (this.slicesByService.get(owner) ?? []).filter((filed) => filed !== slice);
    if (rest.length === 0) this.slicesByService.delete(owner);
    else this.slicesByService.set(owner, rest);
    this.mark(owner);
    return true;
  }

  private countEvent(kind: 'services' | 'endpointSlices'): void {
    this.totals[kind]++;
  }

  private mark(serviceId: string): void {
    this.changed.add(serviceId);
    if (this.notifying) return;
    // Once per burst of synchronous changes (a relist marks thousands), not once per object.
    this.notifying = true;
    queueMicrotask(() => {
      this.notifying = false;
      for (const listener of this.listeners) listener();
    });
  }
}

const NO_SLICES: readonly EndpointSlice[] = Object.freeze([]);

const byName = (a: EndpointSlice, b: EndpointSlice): number => (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0);

/** Forgets the ids the last replaceAll did not hold. */
function forgetBefore(rounds: Map<string, number>, round: number): void {
  rounds.forEach((given, id) => {
    if (given !== round) rounds.delete(id);
  });
}
