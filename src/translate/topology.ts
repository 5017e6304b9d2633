// Which of a Service port's endpoints this node uses: kube-proxy's CategorizeEndpoints
// (pkg/proxy/topology.go), topology hints included. The EndpointSlice controller turns a Service's
// spec.trafficDistribution (PreferClose, PreferSameZone, PreferSameNode) or its topology-mode
// annotation into hints on the endpoints (forZones, forNodes); kube-proxy, and so kipvs, reads the
// hints only, never trafficDistribution itself.

/** What topology needs to know of an endpoint. */
export interface TopologyEndpoint {
  readonly address: string;
  readonly port: number;
  /** On this node (nodeName equals the node's name). */
  readonly local: boolean;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  /** hints.forZones[].name; empty when the endpoint has none. */
  readonly zoneHints: readonly string[];
  /** hints.forNodes[].name (PreferSameNode); empty when the endpoint has none. */
  readonly nodeHints: readonly string[];
}

/** Where this node is: its name, and its topology.kubernetes.io/zone label ('' when unlabelled). */
export interface NodeTopology {
  readonly name: string;
  readonly zone: string;
}

export interface EndpointCategories<E extends TopologyEndpoint> {
  /** Usable endpoints for Cluster traffic policy, topology applied; empty when the port never uses it. */
  readonly cluster: readonly E[];
  /** Usable endpoints on this node for Local traffic policy (no topology); empty when the port never uses it. */
  readonly local: readonly E[];
}

/** kube-proxy's topology modes; '' is none (every ready endpoint). */
export type TopologyMode = '' | 'PreferSameZone' | 'PreferSameNode';

/**
 * topologyModeFromHints: PreferSameNode when every ready endpoint has a node hint and one is for
 * this node; else PreferSameZone when every ready endpoint has a zone hint and one is for this
 * node's zone; else none. An unlabelled node (zone '') matches no zone hint, so its hints are
 * ignored. kube-proxy reads forNodes under the PreferSameTrafficDistribution gate, on by default
 * since 1.34 (beta); kipvs always reads them.
 */
export function topologyModeFromHints(endpoints: readonly TopologyEndpoint[], node: NodeTopology): TopologyMode {
  let hasReady = false;
  let allHaveNodeHints = true;
  let hasForNode = false;
  let allHaveZoneHints = true;
  let hasForZone = false;
  for (const endpoint of endpoints) {
    if (!endpoint.ready) continue;
    hasReady = true;
    if (endpoint.nodeHints.length === 0) allHaveNodeHints = false;
    else if (endpoint.nodeHints.includes(node.name)) hasForNode = true;
    if (endpoint.zoneHints.length === 0) allHaveZoneHints = false;
    else if (endpoint.zoneHints.includes(node.zone)) hasForZone = true;
  }
  if (!hasReady) return '';
  if (allHaveNodeHints && hasForNode) return 'PreferSameNode';
  if (allHaveZoneHints && hasForZone) return 'PreferSameZone';
  return '';
}

/** availableForTopology: no fallback here; the fallback is in choosing the mode. */
function availableForTopology(endpoint: TopologyEndpoint, mode: TopologyMode, node: NodeTopology): boolean {
  switch (mode) {
    case '':
      return true;
    case 'PreferSameNode':
      return endpoint.nodeHints.includes(node.name);
    case 'PreferSameZone':
      return endpoint.zoneHints.includes(node.zone);
  }
}

const servingTerminating = (endpoint: TopologyEndpoint): boolean => endpoint.serving && endpoint.terminating;

/**
 * CategorizeEndpoints: for Cluster policy the ready endpoints the topology mode allows, or, when
 * there are none, the serving-and-terminating ones anywhere (topology is not applied to those:
 * no ready endpoint exists at all by then, since a mode is only chosen when one is for this
 * node or zone). For Local policy the ready local endpoints, or the serving-and-terminating local
 * ones; topology never narrows Local.
 */
export function categorizeEndpoints<E extends TopologyEndpoint>(
  endpoints: readonly E[],
  usesCluster: boolean,
  usesLocal: boolean,
  node: NodeTopology,
): EndpointCategories<E> {
  let cluster: readonly E[] = [];
  if (usesCluster) {
    const mode = topologyModeFromHints(endpoints, node);
    cluster = endpoints.filter((endpoint) => endpoint.ready && availableForTopology(endpoint, mode, node));
    if (cluster.length === 0) cluster = endpoints.filter(servingTerminating);
  }
  let local: readonly E[] = [];
  if (usesLocal) {
    local = endpoints.filter((endpoint) => endpoint.local && endpoint.ready);
    if (local.length === 0) local = endpoints.filter((endpoint) => endpoint.local && servingTerminating(endpoint));
  }
  return { cluster, local };
}
