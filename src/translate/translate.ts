// The whole cluster at once: EndpointSlices grouped by the Service they are labelled for, each
// Service translated alone, then merged. Agents that track changes call translateService for the
// Services that changed and mergeTranslations over all of them instead.
import type { DesiredState, TranslationProblem } from '../model/desired.js';
import type { ClusterSnapshot, EndpointSlice } from '../model/kubernetes.js';
import type { NodeFacts, ProxySettings } from '../model/settings.js';
import { mergeTranslations } from './merge.js';
import { translateService } from './service.js';
import { emptyTranslation, identityOf, serviceIdOfSlice, type ServiceTranslation } from './translation.js';

export { mergeTranslations } from './merge.js';
export { translateService } from './service.js';

/**
 * Slices by `namespace/service-name`. A slice without the label belongs to no Service and is left
 * alone, as kube-proxy's EndpointSliceCache leaves it.
 */
export function groupEndpointSlices(endpointSlices: readonly EndpointSlice[]): Map<string, EndpointSlice[]> {
  const groups = new Map<string, EndpointSlice[]>();
  for (const slice of endpointSlices) {
    const key = serviceIdOfSlice(slice);
    if (key === undefined) continue;
    const group = groups.get(key);
    if (group) group.push(slice);
    else groups.set(key, [slice]);
  }
  return groups;
}

export function translate(snapshot: ClusterSnapshot, node: NodeFacts, settings: ProxySettings): DesiredState {
  const slices = groupEndpointSlices(snapshot.endpointSlices);
  const translations: ServiceTranslation[] = [];
  const seen = new Set<string>();
  for (const service of snapshot.services) {
    const identity = identityOf(service);
    if (identity.name !== '' && seen.has(identity.id)) {
      const problem: TranslationProblem = { object: identity.id, reason: 'the snapshot holds this Service twice; the later copy is ignored' };
      translations.push(emptyTranslation(identity.id, [problem]));
      continue;
    }
    seen.add(identity.id);
    translations.push(translateService(service, slices.get(identity.id) ?? [], node, settings));
  }
  return mergeTranslations(translations, node);
}
