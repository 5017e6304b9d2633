// Services and EndpointSlices as the agent keeps them: only the fields of src/model/kubernetes.ts
// (what translation, metrics and the names record read), with the values that repeat across
// thousands of endpoints shared instead of copied. A kubectl-printed object carries uid,
// timestamps, selectors, owner references and, from the API server, managedFields; at 10,000
// Services × 10 endpoints the store held 43 MB of such objects. Values are passed through as they
// came (a wrong type stays wrong, for translation to report); only unknown fields are dropped.
import type { EndpointConditions, EndpointSlice, ObjectMeta, Service } from '../model/kubernetes.js';

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Copies the listed fields that are present (own, not undefined); everything else is dropped. */
function pick(object: Json, fields: readonly string[]): Json {
  const result: Json = {};
  for (const field of fields) {
    const value = object[field];
    if (value !== undefined) result[field] = value;
  }
  return result;
}

/**
 * One copy of each short, repeated value (node names, zones, namespaces, protocols, port names):
 * parsers make a new string for every occurrence. Bounded: past the limit values are kept as given.
 */
class Interner {
  private readonly values = new Map<string, string>();
  constructor(private readonly limit: number) {}

  intern<T>(value: T): T {
    if (typeof value !== 'string' || value.length > 64) return value;
    const known = this.values.get(value);
    if (known !== undefined) return known as T;
    if (this.values.size < this.limit) this.values.set(value, value);
    return value;
  }
}

const strings = new Interner(20_000);

/** The 27 combinations of three optional booleans, each one frozen object shared by every endpoint. */
const sharedConditions = new Map<string, EndpointConditions>();
const CONDITION_FIELDS = ['ready', 'serving', 'terminating'] as const;

function conditionsOf(value: unknown): unknown {
  if (!isObject(value)) return value;
  const keys = Object.keys(value);
  const plain = keys.every((key) => (CONDITION_FIELDS as readonly string[]).includes(key) && typeof value[key] === 'boolean');
  if (!plain) return pick(value, CONDITION_FIELDS);
  const id = CONDITION_FIELDS.map((field) => String(value[field])).join(',');
  let shared = sharedConditions.get(id);
  if (!shared) sharedConditions.set(id, (shared = Object.freeze(pick(value, CONDITION_FIELDS))));
  return shared;
}

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

function metadataOf(value: unknown): ObjectMeta {
  if (!isObject(value)) return value as ObjectMeta;
  const metadata = pick(value, ['name', 'namespace', 'resourceVersion', 'labels', 'annotations']);
  if (metadata.namespace !== undefined) metadata.namespace = strings.intern(metadata.namespace);
  // kubectl apply's copy of the whole object, often the largest field, read by no one here.
  if (isObject(metadata.annotations) && LAST_APPLIED in metadata.annotations) {
    const { [LAST_APPLIED]: _lastApplied, ...annotations } = metadata.annotations;
    metadata.annotations = annotations;
  }
  return metadata as unknown as ObjectMeta;
}

const SERVICE_SPEC_FIELDS = [
  'type',
  'clusterIP',
  'clusterIPs',
  'ipFamilies',
  'ports',
  'externalIPs',
  'externalName',
  'loadBalancerSourceRanges',
  'externalTrafficPolicy',
  'internalTrafficPolicy',
  'healthCheckNodePort',
  'sessionAffinity',
  'sessionAffinityConfig',
];

function portOf(value: unknown, fields: readonly string[]): unknown {
  if (!isObject(value)) return value;
  const port = pick(value, fields);
  if (port.name !== undefined) port.name = strings.intern(port.name);
  if (port.protocol !== undefined) port.protocol = strings.intern(port.protocol);
  return port;
}

const listOf = (value: unknown, each: (item: unknown) => unknown): unknown => (Array.isArray(value) ? value.map(each) : value);

export function compactService(service: Service): Service {
  const object = service as unknown as Json;
  if (!isObject(object)) return service;
  const result: Json = pick(object, ['apiVersion', 'kind']);
  result.metadata = metadataOf(object.metadata);
  if (isObject(object.spec)) {
    const spec = pick(object.spec, SERVICE_SPEC_FIELDS);
    if (spec.ports !== undefined) spec.ports = listOf(spec.ports, (port) => portOf(port, ['name', 'protocol', 'port', 'targetPort', 'nodePort']));
    result.spec = spec;
  } else if (object.spec !== undefined) result.spec = object.spec;
  const ingress = isObject(object.status) && isObject(object.status.loadBalancer) ? object.status.loadBalancer.ingress : undefined;
  if (ingress !== undefined)
    result.status = { loadBalancer: { ingress: listOf(ingress, (item) => (isObject(item) ? pick(item, ['ip', 'hostname', 'ipMode']) : item)) } };
  return result as unknown as Service;
}

function endpointOf(value: unknown): unknown {
  if (!isObject(value)) return value;
  const endpoint = pick(value, ['addresses', 'conditions', 'nodeName', 'zone', 'targetRef', 'hints']);
  if (endpoint.conditions !== undefined) endpoint.conditions = conditionsOf(endpoint.conditions);
  if (endpoint.nodeName !== undefined) endpoint.nodeName = strings.intern(endpoint.nodeName);
  if (endpoint.zone !== undefined) endpoint.zone = strings.intern(endpoint.zone);
  // `namespace/pod` for `kipvs inspect --names`; the kind says whether it is a Pod.
  if (isObject(endpoint.targetRef)) {
    const ref = pick(endpoint.targetRef, ['kind', 'name', 'namespace']);
    if (ref.kind !== undefined) ref.kind = strings.intern(ref.kind);
    if (ref.namespace !== undefined) ref.namespace = strings.intern(ref.namespace);
    endpoint.targetRef = ref;
  }
  return endpoint;
}

export function compactEndpointSlice(slice: EndpointSlice): EndpointSlice {
  const object = slice as unknown as Json;
  if (!isObject(object)) return slice;
  const result: Json = pick(object, ['apiVersion', 'kind', 'addressType']);
  result.metadata = metadataOf(object.metadata);
  if (object.endpoints !== undefined) result.endpoints = listOf(object.endpoints, endpointOf);
  if (object.ports !== undefined) result.ports = listOf(object.ports, (port) => portOf(port, ['name', 'protocol', 'port']));
  return result as unknown as EndpointSlice;
}
