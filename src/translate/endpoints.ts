// A Service's endpoints, as kube-proxy reads them from its EndpointSlices
// (pkg/proxy/endpointslicecache.go) and picks the ones a virtual server uses
// (pkg/proxy/topology.go CategorizeEndpoints, ipvs/proxier.go syncEndpoint).
import { SERVICE_NAME_LABEL, type EndpointSlice } from '../model/kubernetes.js';
import type { AddressFamily } from '../ip.js';
import { familyName, isPort, parseAddress, show } from './addresses.js';
import { identityOf } from './translation.js';
import { categorizeEndpoints as categorizeByTopology, type NodeTopology, type TopologyEndpoint } from './topology.js';

export interface EndpointInfo extends TopologyEndpoint {
  readonly address: string;
  readonly family: AddressFamily;
  readonly port: number;
  /** On this node (nodeName equals the node's name). */
  readonly local: boolean;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  /** targetRef.name: the pod, for the weights annotation. */
  readonly targetName: string | undefined;
  readonly zoneHints: readonly string[];
  readonly nodeHints: readonly string[];
}

/** A Service's endpoints by endpointIndexKey(family, protocol, port name). */
export type EndpointIndex = ReadonlyMap<string, readonly EndpointInfo[]>;

/** EndpointSlice ports match a Service port by name and protocol (kube-proxy's ServicePortName). */
export const endpointIndexKey = (family: AddressFamily, protocol: string, portName: string): string => `${family} ${protocol} ${portName}`;

export type ReportFor = (object: string, reason: string) => void;

const asObject = (value: unknown): Record<string, unknown> => (typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {});
const asArray = (value: unknown): readonly unknown[] => (Array.isArray(value) ? value : []);

const sliceFamily = (addressType: unknown): AddressFamily | undefined => (addressType === 'IPv4' ? 'inet' : addressType === 'IPv6' ? 'inet6' : undefined);

type EndpointAt = Omit<EndpointInfo, 'port'>;

/** hints.forZones or hints.forNodes: the names, as kube-proxy's endpointslicecache reads them. */
function hintNames(hints: unknown, field: 'forZones' | 'forNodes'): readonly string[] {
  const names: string[] = [];
  for (const item of asArray(asObject(hints)[field])) {
    const name = asObject(item).name;
    if (typeof name === 'string' && !names.includes(name)) names.push(name);
  }
  return names;
}

/** The slice's endpoints that can be used; each bad one reported once, whatever the ports. */
function endpointsOf(slice: EndpointSlice, family: AddressFamily, nodeName: string, report: (reason: string) => void): EndpointAt[] {
  const endpoints: EndpointAt[] = [];
  for (const item of asArray(slice.endpoints)) {
    const endpoint = asObject(item);
    const addresses = asArray(endpoint.addresses);
    if (addresses.length === 0) {
      report('EndpointSlice endpoint has no addresses; ignored');
      continue;
    }
    // kube-proxy uses the first address only (the API allows exactly one).
    const parsed = parseAddress(addresses[0]);
    if (!parsed || parsed.family !== family) {
      report(`EndpointSlice endpoint address ${show(addresses[0])} is not a valid ${familyName(family)} address; ignored`);
      continue;
    }
    const conditions = asObject(endpoint.conditions);
    const targetName = asObject(endpoint.targetRef).name;
    endpoints.push({
      address: parsed.address,
      family,
      local: nodeName !== '' && endpoint.nodeName === nodeName,
      // Unknown readiness and serving count as true, unknown terminating as false.
      ready: conditions.ready !== false,
      serving: conditions.serving !== false,
      terminating: conditions.terminating === true,
      targetName: typeof targetName === 'string' ? targetName : undefined,
      zoneHints: hintNames(endpoint.hints, 'forZones'),
      nodeHints: hintNames(endpoint.hints, 'forNodes'),
    });
  }
  return endpoints;
}

/**
 * The endpoint at a port, written out rather than spread: V8's object spread of a fresh object
 * leaves garbage that outlives the young generation, and this runs once per endpoint and port.
 */
const withPort = (endpoint: Omit<EndpointInfo, 'port'>, port: number): EndpointInfo => ({
  address: endpoint.address,
  family: endpoint.family,
  port,
  local: endpoint.local,
  ready: endpoint.ready,
  serving: endpoint.serving,
  terminating: endpoint.terminating,
  targetName: endpoint.targetName,
  zoneHints: endpoint.zoneHints,
  nodeHints: endpoint.nodeHints,
});

/**
 * Indexes the endpoints of the slices that belong to the Service. The same address:port from
 * several slices is one endpoint; a terminating copy never replaces another (an IP reused by a
 * new pod while the old one terminates keeps the new pod's conditions).
 */
export function indexEndpoints(
  slices: readonly EndpointSlice[],
  namespace: string,
  serviceName: string,
  nodeName: string,
  reportFor: ReportFor,
): EndpointIndex {
  const buckets = new Map<string, Map<string, EndpointInfo>>();
  for (const slice of slices) {
    const identity = identityOf(slice);
    const report = (reason: string): void => reportFor(identity.id, reason);
    if (identity.namespace !== namespace || asObject(asObject(asObject(slice).metadata).labels)[SERVICE_NAME_LABEL] !== serviceName) {
      report(`EndpointSlice is not labelled ${SERVICE_NAME_LABEL}=${serviceName} in namespace ${namespace}; ignored`);
      continue;
    }
    if (slice.addressType === 'FQDN') continue;
    const family = sliceFamily(slice.addressType);
    if (!family) {
      report(`EndpointSlice addressType ${show(slice.addressType)} is not IPv4, IPv6 or FQDN; ignored`);
      continue;
    }
    const endpoints = endpointsOf(slice, family, nodeName, report);
    for (const item of asArray(slice.ports)) {
      const port = asObject(item);
      // The API server defaults a missing name to "" and a missing protocol to TCP.
      const name = typeof port.name === 'string' ? port.name : '';
      const protocol = port.protocol ?? 'TCP';
      if (!isPort(port.port)) {
        report(`EndpointSlice port ${show(name)}: port ${show(port.port)} is not in 1..65535; port ignored`);
        continue;
      }
      if (typeof protocol !== 'string') {
        report(`EndpointSlice port ${show(name)}: protocol ${show(protocol)} is not a string; port ignored`);
        continue;
      }
      const key = endpointIndexKey(family, protocol, name);
      let bucket = buckets.get(key);
      if (!bucket) buckets.set(key, (bucket = new Map<string, EndpointInfo>()));
      for (const endpoint of endpoints) {
        const id = `${endpoint.address} ${port.port}`;
        if (endpoint.terminating && bucket.has(id)) continue;
        bucket.set(id, withPort(endpoint, port.port));
      }
    }
  }
  const index = new Map<string, readonly EndpointInfo[]>();
  for (const [key, bucket] of buckets) index.set(key, [...bucket.values()]);
  return index;
}

export interface EndpointCategories {
  /** Usable endpoints for Cluster traffic policy (topology applied); empty when the port never uses it. */
  readonly cluster: readonly EndpointInfo[];
  /** Usable endpoints on this node for Local traffic policy; empty when the port never uses it. */
  readonly local: readonly EndpointInfo[];
}

/**
 * kube-proxy's CategorizeEndpoints (see topology.ts): ready endpoints, or, when there are none,
 * the serving-and-terminating ones; for Cluster and Local independently; topology hints narrow
 * the Cluster ones to this node's zone or the node itself.
 */
export const categorizeEndpoints = (endpoints: readonly EndpointInfo[], usesCluster: boolean, usesLocal: boolean, node: NodeTopology): EndpointCategories =>
  categorizeByTopology(endpoints, usesCluster, usesLocal, node);

/**
 * What a virtual server with this traffic policy gets (ipvs syncEndpoint). With policy Local and
 * no usable local endpoint, kube-proxy's IPVS mode falls back to the cluster endpoints
 * (kubernetes/kubernetes#97081) so that pods on this node can still reach the Service; traffic from
 * outside is not masqueraded (the -LOCAL ipsets), so its replies never return and it fails as the
 * policy intends.
 */
export const endpointsFor = (categories: EndpointCategories, policyLocal: boolean): readonly EndpointInfo[] =>
  policyLocal && categories.local.length > 0 ? categories.local : categories.cluster;
