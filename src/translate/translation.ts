// What one Service translates to, before it is merged with the others: the unit the agent can
// recompute alone when only that Service or its EndpointSlices changed.
import type { DesiredVirtualServer, TranslationProblem } from '../model/desired.js';
import type { IpsetEntry } from '../netlink/ipset/types.js';
import { SERVICE_NAME_LABEL, type EndpointSlice } from '../model/kubernetes.js';

/** Entries by set name, each set keyed by ipsetEntryKey(). */
export type IpsetEntriesBySet = ReadonlyMap<string, ReadonlyMap<string, IpsetEntry>>;

export interface ServiceTranslation {
  /** `namespace/name`: the order in which merging settles conflicts between Services. */
  readonly service: string;
  /** Keyed by virtualServerKey(). */
  readonly virtualServers: ReadonlyMap<string, DesiredVirtualServer>;
  /** Canonical ClusterIPs, external IPs and load balancer IPs to bind (never node addresses). */
  readonly boundAddresses: ReadonlySet<string>;
  /** Entries by set name (`KUBE-CLUSTER-IP`, `KUBE-6-CLUSTER-IP`, …), each keyed by ipsetEntryKey(). */
  readonly ipsetEntries: IpsetEntriesBySet;
  readonly problems: readonly TranslationProblem[];
}

export interface ObjectIdentity {
  readonly namespace: string;
  /** Empty when metadata.name is missing. */
  readonly name: string;
  /** `namespace/name`, or `namespace/(unnamed)`. */
  readonly id: string;
}

/** A missing namespace is `default`, as kubectl reads a manifest without one. */
export function identityOf(object: { readonly metadata?: unknown } | null | undefined): ObjectIdentity {
  const metadata = (
    typeof object === 'object' && object !== null && typeof object.metadata === 'object' && object.metadata !== null ? object.metadata : {}
  ) as Record<string, unknown>;
  const namespace = typeof metadata.namespace === 'string' && metadata.namespace !== '' ? metadata.namespace : 'default';
  const name = typeof metadata.name === 'string' ? metadata.name : '';
  // Joined, not concatenated: one flat string rather than a pair (see formatHostPort).
  return { namespace, name, id: [namespace, name === '' ? '(unnamed)' : name].join('/') };
}

export const emptyTranslation = (service: string, problems: readonly TranslationProblem[]): ServiceTranslation => ({
  service,
  virtualServers: new Map(),
  boundAddresses: new Set(),
  ipsetEntries: new Map(),
  problems,
});

/** `namespace/name` of the Service an EndpointSlice is labelled for; undefined without the label. */
export function serviceIdOfSlice(slice: EndpointSlice): string | undefined {
  const labels = (slice as { metadata?: { labels?: unknown } } | null)?.metadata?.labels;
  const serviceName = typeof labels === 'object' && labels !== null ? (labels as Record<string, unknown>)[SERVICE_NAME_LABEL] : undefined;
  if (typeof serviceName !== 'string' || serviceName === '') return undefined;
  return [identityOf(slice).namespace, serviceName].join('/');
}
