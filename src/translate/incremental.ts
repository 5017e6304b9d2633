// Translation that follows changes: only the Services marked changed are translated again, and
// their results are merged into a desired state kept between calls, by difference (the old
// result's claims withdrawn, the new one's made). Each call also says which kernel objects those
// Services touched — the scope the diff needs to look at — so one endpoint change costs the same
// with 100 Services or 10,000. The result equals `translate()` of the same objects; a unit test
// holds it to that.
import { EVERYTHING, type DesiredState, type DiffScope } from '../model/desired.js';
import type { EndpointSlice, Service } from '../model/kubernetes.js';
import type { NodeFacts, ProxySettings } from '../model/settings.js';
import { MergedState, newScope } from './merge.js';
import { translateService } from './service.js';
import type { ServiceTranslation } from './translation.js';

/** What the translator reads: the ClusterStore, or anything shaped like it. */
export interface ServiceObjects {
  service(id: string): Service | undefined;
  /** In a stable order (the store's is by slice name). */
  slicesOf(serviceId: string): readonly EndpointSlice[];
  serviceIds(): Iterable<string>;
}

export class IncrementalTranslator {
  private merged: MergedState | undefined;
  private lastNode: NodeFacts | undefined;
  private lastSettings: ProxySettings | undefined;

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
      for (const id of objects.serviceIds()) {
        const translation = this.translateOne(objects, id, node, settings);
        if (translation) this.merged.claim(translation, scratch);
      }
      return EVERYTHING;
    }
    const scope = newScope();
    for (const id of changed) {
      this.merged.withdraw(id, scope);
      const after = this.translateOne(objects, id, node, settings);
      if (after) this.merged.claim(after, scope);
    }
    return scope;
  }

  private translateOne(objects: ServiceObjects, id: string, node: NodeFacts, settings: ProxySettings): ServiceTranslation | undefined {
    const service = objects.service(id);
    return service ? translateService(service, objects.slicesOf(id), node, settings) : undefined;
  }
}
