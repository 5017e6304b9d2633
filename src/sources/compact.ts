// Services and EndpointSlices as the agent keeps them: only the fields of src/model/kubernetes.ts
// (what translation, metrics and the names record read), with the values that repeat across
// thousands of endpoints shared instead of copied. Objects from a cluster carry uid, timestamps,
// selectors, owner references, managedFields and often kubectl's last-applied copy of themselves,
// none of which the agent reads. (The benchmark's objects have few such fields: there the store is
// the same size either way, 38 MB at 10,000 Services × 10 endpoints.) Values are passed through as they
// came (a wrong type stays wrong, for translation to report); only unknown fields are dropped.
// Each object is built as one literal (fields absent in the input are present and undefined): V8
// then stores its fields inline, where objects grown field by field take twice the memory.
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
  let annotations = value.annotations;
  // kubectl apply's copy of the whole object, often the largest field, read by no one here.
  if (isObject(annotations) && LAST_APPLIED in annotations) {
    const { [LAST_APPLIED]: _lastApplied, ...rest } = annotations;
    annotations = rest;
  }
  return {
    name: value.name,
    namespace: strings.intern(value.namespace),
    resourceVersion: value.resourceVersion,
    labels: value.labels,
    annotations,
  } as ObjectMeta;
}

function portOf(value: unknown): unknown {
  if (!isObject(value)) return value;
  return {
    name: strings.intern(value.name),
    protocol: strings.intern(value.protocol),
    port: value.port,
    targetPort: value.targetPort,
    nodePort: value.nodePort,
  };
}

function specOf(value: unknown): unknown {
  if (!isObject(value)) return value;
  return {
    type: strings.intern(value.type),
    clusterIP: value.clusterIP,
    clusterIPs: value.clusterIPs,
    ipFamilies: value.ipFamilies,
    ports: listOf(value.ports, portOf),
    externalIPs: value.externalIPs,
    externalName: value.externalName,
    loadBalancerSourceRanges: value.loadBalancerSourceRanges,
    externalTrafficPolicy: strings.intern(value.externalTrafficPolicy),
    internalTrafficPolicy: strings.intern(value.internalTrafficPolicy),
    healthCheckNodePort: value.healthCheckNodePort,
    sessionAffinity: strings.intern(value.sessionAffinity),
    sessionAffinityConfig: value.sessionAffinityConfig,
  };
}

const listOf = (value: unknown, each: (item: unknown) => unknown): unknown => (Array.isArray(value) ? value.map(each) : value);

export function compactService(service: Service): Service {
  const object = service as unknown as Json;
  if (!isObject(object)) return service;
  const ingress = isObject(object.status) && isObject(object.status.loadBalancer) ? object.status.loadBalancer.ingress : undefined;
  return {
    apiVersion: object.apiVersion,
    kind: object.kind,
    metadata: metadataOf(object.metadata),
    spec: specOf(object.spec),
    status:
      ingress === undefined
        ? undefined
        : { loadBalancer: { ingress: listOf(ingress, (item) => (isObject(item) ? { ip: item.ip, hostname: item.hostname, ipMode: item.ipMode } : item)) } },
  } as Service;
}

function endpointOf(value: unknown): unknown {
  if (!isObject(value)) return value;
  const ref = value.targetRef;
  return {
    addresses: value.addresses,
    conditions: conditionsOf(value.conditions),
    nodeName: strings.intern(value.nodeName),
    zone: strings.intern(value.zone),
    // `namespace/pod` for `kipvs inspect --names`; the kind says whether it is a Pod.
    targetRef: isObject(ref) ? { kind: strings.intern(ref.kind), name: ref.name, namespace: strings.intern(ref.namespace) } : ref,
    hints: value.hints,
  };
}

export function compactEndpointSlice(slice: EndpointSlice): EndpointSlice {
  const object = slice as unknown as Json;
  if (!isObject(object)) return slice;
  return {
    apiVersion: object.apiVersion,
    kind: object.kind,
    metadata: metadataOf(object.metadata),
    addressType: object.addressType,
    endpoints: listOf(object.endpoints, endpointOf),
    ports: listOf(object.ports, (port) =>
      isObject(port) ? { name: strings.intern(port.name), protocol: strings.intern(port.protocol), port: port.port } : port,
    ),
  } as EndpointSlice;
}
