// What every source checks on an object before the store takes it: kube-proxy's label selector
// (objects meant for another proxy, or headless, are never seen), the apiVersions it reads, and
// what kube-proxy ignores in an EndpointSlice (FQDN slices, portless slices), reported here
// instead of dropped silently.
import { quoteInput } from './file-read.js';

/** apis.LabelServiceProxyName: a Service handled by another proxy. */
export const SERVICE_PROXY_NAME_LABEL = 'service.kubernetes.io/service-proxy-name';
/** v1.IsHeadlessService: set by the EndpointSlice controller on a headless Service's slices. */
export const HEADLESS_LABEL = 'service.kubernetes.io/headless';

/**
 * cmd/kube-proxy/app/server.go lists and watches Services and EndpointSlices with
 * `labels.NewSelector().Add(noProxyName, noHeadlessEndpoints)`, both DoesNotExist requirements;
 * the selector's String() sorts them by key.
 */
export const PROXY_LABEL_SELECTOR = `!${HEADLESS_LABEL},!${SERVICE_PROXY_NAME_LABEL}`;

const labelsOf = (object: unknown): Record<string, unknown> => {
  const labels = (object as { metadata?: { labels?: unknown } } | null)?.metadata?.labels;
  return typeof labels === 'object' && labels !== null ? (labels as Record<string, unknown>) : {};
};

/** The label that puts the object outside kube-proxy's selector, or undefined. */
export function excludingLabel(object: unknown): string | undefined {
  const labels = labelsOf(object);
  if (Object.hasOwn(labels, SERVICE_PROXY_NAME_LABEL)) return SERVICE_PROXY_NAME_LABEL;
  if (Object.hasOwn(labels, HEADLESS_LABEL)) return HEADLESS_LABEL;
  return undefined;
}

/** The apiVersions whose schema kipvs reads (what kube-proxy's typed informers ask for). */
export const API_VERSIONS: Readonly<Record<'Service' | 'EndpointSlice', string>> = { Service: 'v1', EndpointSlice: 'discovery.k8s.io/v1' };

/** Why the object cannot be read at all (then it is skipped), or undefined. */
export function refusalOf(kind: 'Service' | 'EndpointSlice', object: Record<string, unknown>): string | undefined {
  const apiVersion = object.apiVersion;
  // A hand-written object without apiVersion is read as the current one; a different one may mean other fields.
  if (apiVersion !== undefined && apiVersion !== API_VERSIONS[kind])
    return `${kind} of apiVersion ${quoteInput(apiVersion)}: only ${API_VERSIONS[kind]} is read; skipped`;
  const metadata = object.metadata as Record<string, unknown> | undefined;
  for (const field of ['labels', 'annotations'] as const) {
    const map = metadata?.[field];
    if (map === undefined || map === null) continue;
    if (typeof map !== 'object' || Array.isArray(map) || Object.values(map).some((value) => typeof value !== 'string')) {
      return `${kind} metadata.${field} is not a map of strings; skipped`;
    }
  }
  return undefined;
}

/** What kube-proxy ignores in an EndpointSlice it takes (endpointslicecache.go), to report once. */
export function sliceNotice(slice: Record<string, unknown>): string | undefined {
  if (slice.addressType === 'FQDN') return 'EndpointSlice of addressType FQDN: no endpoints for a proxy (kube-proxy ignores it too)';
  // A Service without pods gets a placeholder slice with neither endpoints nor ports: nothing to say.
  const hasEndpoints = Array.isArray(slice.endpoints) && slice.endpoints.length > 0;
  const hasPorts = Array.isArray(slice.ports) && slice.ports.length > 0;
  if (hasEndpoints && !hasPorts) return 'EndpointSlice with endpoints but no ports: no endpoints for a proxy (kube-proxy ignores it too)';
  return undefined;
}
