// Which Services need a health check node port on this node, and how many local endpoints each
// reports: kube-proxy's ServiceHealthServer input (SyncServices from the service map's
// HealthCheckNodePorts, SyncEndpoints from EndpointsMap.getLocalReadyEndpointIPs in
// pkg/proxy/endpointschangetracker.go). Pure: one Service and its slices at a time, so the agent
// recomputes only the Services that changed.
import type { AddressFamily } from '../ip.js';
import type { EndpointSlice, Service } from '../model/kubernetes.js';
import type { NodeFacts } from '../model/settings.js';
import { indexEndpoints } from './endpoints.js';
import { readService } from './service-spec.js';
import { identityOf } from './translation.js';

export interface ServiceHealthCheck {
  readonly namespace: string;
  readonly name: string;
  /** spec.healthCheckNodePort. */
  readonly port: number;
  /** Distinct ready endpoint addresses on this node. */
  readonly localEndpoints: number;
}

/** `namespace/name`: the key of ServiceHealthServer.sync()'s map. */
export const healthCheckKey = (check: { readonly namespace: string; readonly name: string }): string => `${check.namespace}/${check.name}`;

const ignore = (): void => {};

/**
 * The health check a Service needs, or undefined: only a LoadBalancer with externalTrafficPolicy
 * Local and a valid healthCheckNodePort has one (apiservice.NeedsHealthCheck), and only when
 * kipvs proxies it at all (a clusterIP of a family the node has, at least one valid port).
 * Problems are not reported here; translation reports the same ones.
 *
 * The count is kube-proxy's: distinct addresses of ready endpoints (readiness unknown counts as
 * ready) whose nodeName is this node, over every port of the Service's slices. Serving but
 * terminating endpoints do not count, so that a load balancer stops sending new connections to
 * a node whose pods are all shutting down (kube-proxy: "the health check signal should fail if
 * there are only terminating endpoints on a node"). kube-proxy counts per family proxier; for a
 * dual-stack Service, whose pods each have one address per family, the larger family's count is
 * the number of pods, which is what the weight header means.
 */
export function healthCheckOf(service: Service, slices: readonly EndpointSlice[], node: NodeFacts): ServiceHealthCheck | undefined {
  // readService gives a health check port to a LoadBalancer only: any other Service (nearly all,
  // and every full sync asks about each) is not read, which at 10,000 Services was 19 MB of
  // garbage per full sync.
  if ((service.spec as { readonly type?: unknown } | null | undefined)?.type !== 'LoadBalancer') return undefined;
  const identity = identityOf(service);
  if (identity.name === '') return undefined;
  const view = readService(service, node, ignore);
  if (!view || view.healthCheckNodePort === 0 || view.families.length === 0 || view.ports.length === 0) return undefined;
  const families = new Set<AddressFamily>(view.families.map((family) => family.family));
  const localReady = new Map<AddressFamily, Set<string>>();
  for (const endpoints of indexEndpoints(slices, identity.namespace, identity.name, node.name, ignore).values()) {
    for (const endpoint of endpoints) {
      if (!endpoint.local || !endpoint.ready || !families.has(endpoint.family)) continue;
      let addresses = localReady.get(endpoint.family);
      if (!addresses) localReady.set(endpoint.family, (addresses = new Set()));
      addresses.add(endpoint.address);
    }
  }
  const localEndpoints = Math.max(0, ...[...localReady.values()].map((addresses) => addresses.size));
  return { namespace: identity.namespace, name: identity.name, port: view.healthCheckNodePort, localEndpoints };
}
