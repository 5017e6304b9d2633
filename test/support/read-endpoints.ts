// Slices as their readers see them. The store keeps an endpoint of the usual shape compact
// (src/sources/compact.ts): its `addresses` and `targetRef` are made when read, not own fields.
import type { Endpoint } from '../../src/model/kubernetes.js';

/** The model's fields by property reads, as translation and the names record read them. */
export const endpointAsRead = (endpoint: Endpoint): object => ({
  addresses: endpoint.addresses,
  conditions: endpoint.conditions,
  nodeName: endpoint.nodeName,
  zone: endpoint.zone,
  targetRef: endpoint.targetRef,
  hints: endpoint.hints,
});

/** What an object says as JSON: every own field of a plain object, a compact endpoint's model fields. */
export const asJson = (value: unknown): unknown => JSON.parse(JSON.stringify(value)) as unknown;
