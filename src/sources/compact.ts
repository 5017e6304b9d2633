// Services and EndpointSlices as the agent keeps them: only the fields of src/model/kubernetes.ts
// (what translation, metrics and the names record read), with the values that repeat across
// thousands of endpoints shared instead of copied. Objects from a cluster carry uid, timestamps,
// selectors, owner references, managedFields and often kubectl's last-applied copy of themselves,
// none of which the agent reads. (The benchmark's objects have few such fields: there the store is
// the same size either way, 38 MB at 10,000 Services × 10 endpoints.) Values are passed through as they
// came (a wrong type stays wrong, for translation to report); only unknown fields are dropped.
// Each object is built as one literal (fields absent in the input are present and undefined): V8
// then stores its fields inline, where objects grown field by field take twice the memory.
// Every string kept is a copy of its own (owned()): a parser's strings are slices of the text it
// parsed, and one kept slice keeps the whole text (js-yaml's scalars: the 30 MB of YAML of 10,000
// Services stayed alive through the names of their pods).
import type { Endpoint, EndpointConditions, EndpointSlice, ObjectMeta, Service } from '../model/kubernetes.js';

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * V8 copies a slice shorter than 13 characters (SlicedString::kMinLength in its string.h); a
 * longer one points into its parent. JSON.parse of a quoted string always makes a new string, and
 * is the fastest copy of the ones tried (Buffer round trips, concatenations).
 */
const SHARED_SLICE_LENGTH = 13;

const ownedString = (value: string): string => (value.length < SHARED_SLICE_LENGTH ? value : (JSON.parse(JSON.stringify(value)) as string));

/** A parsed value with every string in it copied (see above); other values as they are. */
function owned<T>(value: T): T {
  if (typeof value === 'string') return ownedString(value) as T;
  if (Array.isArray(value)) return value.map(owned) as T;
  if (!isObject(value)) return value;
  const copy: Json = {};
  for (const [key, field] of Object.entries(value)) copy[key] = owned(field);
  return copy as T;
}

/** Copies the listed fields that are present (own, not undefined); everything else is dropped. */
function pick(object: Json, fields: readonly string[]): Json {
  const result: Json = {};
  for (const field of fields) {
    const value = object[field];
    if (value !== undefined) result[field] = owned(value);
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
    if (typeof value !== 'string') return value;
    if (value.length > 64) return ownedString(value) as T;
    const known = this.values.get(value);
    if (known !== undefined) return known as T;
    const copy = ownedString(value);
    if (this.values.size < this.limit) this.values.set(copy, copy);
    return copy as T;
  }
}

const strings = new Interner(20_000);

/** The 27 combinations of three optional booleans, each one frozen object shared by every endpoint. */
const sharedConditions = new Map<string, EndpointConditions>();
const CONDITION_FIELDS = ['ready', 'serving', 'terminating'] as const;

function conditionsOf(value: unknown): unknown {
  if (!isObject(value)) return owned(value);
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
  if (!isObject(value)) return owned(value) as ObjectMeta;
  let annotations = value.annotations;
  // kubectl apply's copy of the whole object, often the largest field, read by no one here.
  if (isObject(annotations) && LAST_APPLIED in annotations) {
    const { [LAST_APPLIED]: _lastApplied, ...rest } = annotations;
    annotations = rest;
  }
  return {
    name: owned(value.name),
    namespace: strings.intern(value.namespace),
    resourceVersion: owned(value.resourceVersion),
    labels: owned(value.labels),
    annotations: owned(annotations),
  } as ObjectMeta;
}

function portOf(value: unknown): unknown {
  if (!isObject(value)) return owned(value);
  return {
    name: strings.intern(value.name),
    protocol: strings.intern(value.protocol),
    port: value.port,
    targetPort: strings.intern(value.targetPort),
    nodePort: value.nodePort,
  };
}

function specOf(value: unknown): unknown {
  if (!isObject(value)) return owned(value);
  return {
    type: strings.intern(value.type),
    clusterIP: owned(value.clusterIP),
    clusterIPs: owned(value.clusterIPs),
    ipFamilies: listOf(value.ipFamilies, (family) => strings.intern(family)),
    ports: listOf(value.ports, portOf),
    externalIPs: owned(value.externalIPs),
    externalName: owned(value.externalName),
    loadBalancerSourceRanges: owned(value.loadBalancerSourceRanges),
    externalTrafficPolicy: strings.intern(value.externalTrafficPolicy),
    internalTrafficPolicy: strings.intern(value.internalTrafficPolicy),
    healthCheckNodePort: value.healthCheckNodePort,
    sessionAffinity: strings.intern(value.sessionAffinity),
    sessionAffinityConfig: owned(value.sessionAffinityConfig),
  };
}

const listOf = (value: unknown, each: (item: unknown) => unknown): unknown => (Array.isArray(value) ? value.map(each) : value);

export function compactService(service: Service): Service {
  const object = service as unknown as Json;
  if (!isObject(object)) return service;
  const ingress = isObject(object.status) && isObject(object.status.loadBalancer) ? object.status.loadBalancer.ingress : undefined;
  return {
    apiVersion: strings.intern(object.apiVersion),
    kind: strings.intern(object.kind),
    metadata: metadataOf(object.metadata),
    spec: specOf(object.spec),
    status:
      ingress === undefined
        ? undefined
        : {
            loadBalancer: {
              ingress: listOf(ingress, (item) =>
                isObject(item) ? { ip: owned(item.ip), hostname: owned(item.hostname), ipMode: strings.intern(item.ipMode) } : owned(item),
              ),
            },
          },
  } as Service;
}

/**
 * An endpoint in its usual shape (one address, a targetRef naming a Pod or none), 100,000 of them
 * at 10,000 Services: the address and the pod are fields of its own, and `addresses` and
 * `targetRef` are made when read, so the endpoint is one object where the parsed one is four (the
 * endpoint, its address list and that list's store, the targetRef): 96 bytes less each.
 * Translation and the names record read both through property access, as they read a parsed one.
 */
class PodEndpoint {
  constructor(
    readonly address: string,
    readonly conditions: unknown,
    readonly nodeName: unknown,
    readonly zone: unknown,
    readonly hints: unknown,
    /** targetRef.name of a Pod; undefined: no targetRef. */
    readonly podName: string | undefined,
    readonly podNamespace: string | undefined,
  ) {}

  get addresses(): readonly string[] {
    return [this.address];
  }

  get targetRef(): Endpoint['targetRef'] {
    return this.podName === undefined ? undefined : { kind: 'Pod', name: this.podName, namespace: this.podNamespace };
  }

  /** Written out (logs, dumps), it is the endpoint it stands for. */
  toJSON(): object {
    const { addresses, conditions, nodeName, zone, targetRef, hints } = this;
    return { addresses, conditions, nodeName, zone, targetRef, hints };
  }
}

/** targetRef as PodEndpoint holds it: absent, or a Pod's with a name and at most a namespace. */
const podRefOf = (ref: unknown): { name: string; namespace: string | undefined } | 'none' | undefined => {
  if (ref === undefined) return 'none';
  if (!isObject(ref) || ref.kind !== 'Pod' || typeof ref.name !== 'string') return undefined;
  if (ref.namespace !== undefined && typeof ref.namespace !== 'string') return undefined;
  return { name: ref.name, namespace: ref.namespace };
};

function endpointOf(value: unknown): unknown {
  if (!isObject(value)) return owned(value);
  const { addresses, targetRef: ref } = value;
  const conditions = conditionsOf(value.conditions);
  const nodeName = strings.intern(value.nodeName);
  const zone = strings.intern(value.zone);
  const hints = owned(value.hints);
  const podRef = podRefOf(ref);
  if (Array.isArray(addresses) && addresses.length === 1 && typeof addresses[0] === 'string' && podRef !== undefined) {
    return new PodEndpoint(
      ownedString(addresses[0]),
      conditions,
      nodeName,
      zone,
      hints,
      podRef === 'none' ? undefined : ownedString(podRef.name),
      podRef === 'none' ? undefined : strings.intern(podRef.namespace),
    );
  }
  return {
    addresses: owned(addresses),
    conditions,
    nodeName,
    zone,
    // `namespace/pod` for `kipvs inspect --names`; the kind says whether it is a Pod.
    targetRef: isObject(ref) ? { kind: strings.intern(ref.kind), name: owned(ref.name), namespace: strings.intern(ref.namespace) } : owned(ref),
    hints,
  };
}

export function compactEndpointSlice(slice: EndpointSlice): EndpointSlice {
  const object = slice as unknown as Json;
  if (!isObject(object)) return slice;
  return {
    apiVersion: strings.intern(object.apiVersion),
    kind: strings.intern(object.kind),
    metadata: metadataOf(object.metadata),
    addressType: strings.intern(object.addressType),
    endpoints: listOf(object.endpoints, endpointOf),
    ports: listOf(object.ports, (port) =>
      isObject(port) ? { name: strings.intern(port.name), protocol: strings.intern(port.protocol), port: port.port } : owned(port),
    ),
  } as EndpointSlice;
}
