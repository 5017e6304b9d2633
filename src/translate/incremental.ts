// Translation that remembers: a Service whose object and EndpointSlice objects are the very same
// as at the last call is not translated again. Sources keep an unchanged object's identity (the
// file source per unchanged file, an informer per unchanged object), so one endpoint change
// translates one Service. The merge still walks every Service's result.
import type { DesiredState } from '../model/desired.js';
import type { ClusterSnapshot, EndpointSlice, Service } from '../model/kubernetes.js';
import type { NodeFacts, ProxySettings } from '../model/settings.js';
import { groupEndpointSlices, mergeTranslations, translate, translateService, type ServiceTranslation } from './translate.js';
import { identityOf } from './translation.js';

interface Remembered {
  readonly service: Service;
  readonly slices: readonly EndpointSlice[];
  readonly translation: ServiceTranslation;
}

const sameObjects = (a: readonly EndpointSlice[], b: readonly EndpointSlice[]): boolean => a.length === b.length && a.every((slice, i) => slice === b[i]);

export class IncrementalTranslator {
  private remembered = new Map<string, Remembered>();
  private lastNode: NodeFacts | undefined;
  private lastSettings: ProxySettings | undefined;
  /** Services translated by the last call (for tests and logs). */
  translatedLastTime = 0;

  translate(snapshot: ClusterSnapshot, node: NodeFacts, settings: ProxySettings): DesiredState {
    if (node !== this.lastNode || settings !== this.lastSettings) this.remembered.clear();
    this.lastNode = node;
    this.lastSettings = settings;
    const ids = new Set<string>();
    for (const service of snapshot.services) {
      const { id, name } = identityOf(service);
      // A nameless or repeated Service: the plain translation's rules (problems) apply.
      if (name === '' || ids.has(id)) return this.fallback(snapshot, node, settings);
      ids.add(id);
    }
    const slices = groupEndpointSlices(snapshot.endpointSlices);
    const next = new Map<string, Remembered>();
    let translated = 0;
    for (const service of snapshot.services) {
      const { id } = identityOf(service);
      const serviceSlices = slices.get(id) ?? [];
      const before = this.remembered.get(id);
      if (before && before.service === service && sameObjects(before.slices, serviceSlices)) {
        next.set(id, before);
        continue;
      }
      translated++;
      next.set(id, { service, slices: serviceSlices, translation: translateService(service, serviceSlices, node, settings) });
    }
    this.remembered = next;
    this.translatedLastTime = translated;
    return mergeTranslations([...next.values()].map((entry) => entry.translation), node, settings);
  }

  private fallback(snapshot: ClusterSnapshot, node: NodeFacts, settings: ProxySettings): DesiredState {
    this.remembered.clear();
    this.translatedLastTime = snapshot.services.length;
    return translate(snapshot, node, settings);
  }
}
