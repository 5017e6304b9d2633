// Kubernetes objects as the API server sends them, turned into the JSON form of
// src/model/kubernetes.ts (the form every source produces).
import { familyOf } from '../ip.js';
import type { EndpointSlice, Service } from '../model/kubernetes.js';
import { compactEndpointSlice, compactService } from './compact.js';

export interface NodeInfo {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** metadata.deletionTimestamp is set. */
  readonly deleting: boolean;
  readonly taints: readonly { readonly key: string; readonly effect: string }[];
  /** spec.podCIDRs (or the older spec.podCIDR alone). */
  readonly podCIDRs: readonly string[];
  /** status.addresses of type InternalIP then ExternalIP, as kube-proxy's GetNodeHostIPs orders them. */
  readonly nodeIPs: readonly string[];
}

// The informers hand over the wire JSON as parsed. An object of a class (client-node's models,
// V1Service and the rest: the same field names as the JSON, checked for every field by
// test/unit/sources/kube-source.test.ts, but Date objects for timestamps) is turned into it by
// JSON.stringify (Date → ISO string, absent fields dropped).

type JsonObject = Record<string, unknown>;

function wireJson(object: object): JsonObject {
  return Object.getPrototypeOf(object) === Object.prototype ? (object as JsonObject) : (JSON.parse(JSON.stringify(object)) as JsonObject);
}

function withKind(object: object, apiVersion: string, kind: string): JsonObject {
  const json = wireJson(object);
  // managedFields are bulky and read by no one here (kubectl hides them too).
  const { managedFields: _managedFields, ...metadata } = (json.metadata ?? {}) as JsonObject;
  // List items come without apiVersion and kind; watch events carry them. Make both alike.
  return { ...json, apiVersion, kind, metadata };
}

export function toService(object: object): Service {
  return compactService(withKind(object, 'v1', 'Service') as unknown as Service);
}

export function toEndpointSlice(object: object): EndpointSlice {
  return compactEndpointSlice(withKind(object, 'discovery.k8s.io/v1', 'EndpointSlice') as unknown as EndpointSlice);
}

type NodeJson = {
  metadata?: { name?: string; labels?: Record<string, string>; deletionTimestamp?: unknown };
  spec?: { taints?: { key?: string; effect?: string }[]; podCIDR?: unknown; podCIDRs?: unknown };
  status?: { addresses?: unknown };
};

const strings = (value: unknown): string[] => (Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string' && item !== '') : []);

/**
 * utilnode.GetNodeHostIPs: of the InternalIP addresses then the ExternalIP ones, the first, and
 * the first of the other family after it (a dual-stack pair).
 */
function nodeIPsOf(addresses: unknown): string[] {
  const list = Array.isArray(addresses) ? (addresses as { type?: unknown; address?: unknown }[]) : [];
  const ofType = (type: string): string[] =>
    list.flatMap((a) => (a.type === type && typeof a.address === 'string' && familyOf(a.address) !== undefined ? [a.address] : []));
  const all = [...ofType('InternalIP'), ...ofType('ExternalIP')];
  const first = all[0];
  if (first === undefined) return [];
  const other = all.find((address) => familyOf(address) !== familyOf(first));
  return other === undefined ? [first] : [first, other];
}

export function toNodeInfo(object: object): NodeInfo {
  const json = wireJson(object) as NodeJson;
  const podCIDRs = strings(json.spec?.podCIDRs);
  return {
    name: json.metadata?.name ?? '',
    labels: { ...json.metadata?.labels },
    deleting: json.metadata?.deletionTimestamp !== undefined && json.metadata.deletionTimestamp !== null,
    taints: (json.spec?.taints ?? []).map((taint) => ({ key: taint.key ?? '', effect: taint.effect ?? '' })),
    podCIDRs: podCIDRs.length > 0 ? podCIDRs : strings([json.spec?.podCIDR]),
    nodeIPs: nodeIPsOf(json.status?.addresses),
  };
}
