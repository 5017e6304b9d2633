// kube-proxy's TestCategorizeEndpoints (pkg/proxy/topology_test.go), case by case, plus the
// PreferSameNode cases of topologyModeFromHints (forNodes hints). `null` is kube-proxy's nil:
// the port never uses that kind of endpoints.
import { describe, expect, it } from 'vitest';
import { categorizeEndpoints, topologyModeFromHints, type TopologyEndpoint } from '../../../src/translate/topology.js';

interface Ep {
  readonly endpoint: string;
  readonly zoneHints?: readonly string[];
  readonly nodeHints?: readonly string[];
  readonly ready?: boolean;
  readonly serving?: boolean;
  readonly terminating?: boolean;
  readonly isLocal?: boolean;
}

interface ServicePort {
  readonly internalPolicyLocal?: boolean;
  readonly externalPolicyLocal?: boolean;
  readonly nodePort?: number;
}

interface Case {
  readonly name: string;
  readonly zone?: string;
  readonly nodeName?: string;
  readonly serviceInfo: ServicePort;
  readonly endpoints: readonly Ep[];
  readonly clusterEndpoints: readonly string[] | null;
  readonly localEndpoints: readonly string[] | null;
}

const toEndpoint = (ep: Ep): TopologyEndpoint => {
  const [address = '', port = '0'] = ep.endpoint.split(':');
  return {
    address,
    port: Number(port),
    local: ep.isLocal ?? false,
    ready: ep.ready ?? false,
    serving: ep.serving ?? false,
    terminating: ep.terminating ?? false,
    zoneHints: ep.zoneHints ?? [],
    nodeHints: ep.nodeHints ?? [],
  };
};

// BaseServicePortInfo.UsesClusterEndpoints / UsesLocalEndpoints (ExternallyAccessible: a node port here).
const usesCluster = (s: ServicePort): boolean => !s.internalPolicyLocal || (s.nodePort ?? 0) !== 0;
const usesLocal = (s: ServicePort): boolean => (s.internalPolicyLocal ?? false) || ((s.externalPolicyLocal ?? false) && (s.nodePort ?? 0) !== 0);

const four = (zones: readonly (readonly string[] | undefined)[], extra: readonly Partial<Ep>[] = []): Ep[] =>
  zones.map((zoneHints, i) => ({ endpoint: `10.1.2.${3 + i}:80`, ...(zoneHints ? { zoneHints } : {}), ready: true, ...extra[i] }));

const cases: Case[] = [
  {
    name: "should use topology since all endpoints have hints, node has a zone label and and there are endpoints for the node's zone",
    zone: 'zone-a',
    serviceInfo: {},
    endpoints: four([['zone-a'], ['zone-b'], ['zone-c'], ['zone-a']]),
    clusterEndpoints: ['10.1.2.3:80', '10.1.2.6:80'],
    localEndpoints: null,
  },
  {
    name: 'externalTrafficPolicy: Local, topology ignored for Local endpoints',
    zone: 'zone-a',
    serviceInfo: { externalPolicyLocal: true, nodePort: 8080 },
    endpoints: four([['zone-a'], ['zone-b'], ['zone-c'], ['zone-a']], [{ isLocal: true }, { isLocal: true }]),
    clusterEndpoints: ['10.1.2.3:80', '10.1.2.6:80'],
    localEndpoints: ['10.1.2.3:80', '10.1.2.4:80'],
  },
  {
    name: 'internalTrafficPolicy: Local, topology ignored for Local endpoints',
    zone: 'zone-a',
    serviceInfo: { internalPolicyLocal: true, externalPolicyLocal: false, nodePort: 8080 },
    endpoints: four([['zone-a'], ['zone-b'], ['zone-c'], ['zone-a']], [{ isLocal: true }, { isLocal: true }]),
    clusterEndpoints: ['10.1.2.3:80', '10.1.2.6:80'],
    localEndpoints: ['10.1.2.3:80', '10.1.2.4:80'],
  },
  {
    name: 'empty node labels',
    serviceInfo: {},
    endpoints: [{ endpoint: '10.1.2.3:80', zoneHints: ['zone-a'], ready: true }],
    clusterEndpoints: ['10.1.2.3:80'],
    localEndpoints: null,
  },
  {
    name: 'empty zone label',
    zone: '',
    serviceInfo: {},
    endpoints: [{ endpoint: '10.1.2.3:80', zoneHints: ['zone-a'], ready: true }],
    clusterEndpoints: ['10.1.2.3:80'],
    localEndpoints: null,
  },
  {
    name: 'node in different zone, no endpoint filtering',
    zone: 'zone-b',
    serviceInfo: {},
    endpoints: [{ endpoint: '10.1.2.3:80', zoneHints: ['zone-a'], ready: true }],
    clusterEndpoints: ['10.1.2.3:80'],
    localEndpoints: null,
  },
  {
    name: 'unready endpoint',
    zone: 'zone-a',
    serviceInfo: {},
    endpoints: four([['zone-a'], ['zone-b'], ['zone-c'], ['zone-a']], [{}, {}, {}, { ready: false }]),
    clusterEndpoints: ['10.1.2.3:80'],
    localEndpoints: null,
  },
  {
    name: 'only unready endpoints in same zone (should not filter)',
    zone: 'zone-a',
    serviceInfo: {},
    endpoints: four([['zone-a'], ['zone-b'], ['zone-c'], ['zone-a']], [{ ready: false }, {}, {}, { ready: false }]),
    clusterEndpoints: ['10.1.2.4:80', '10.1.2.5:80'],
    localEndpoints: null,
  },
  {
    name: 'missing hints, no filtering applied',
    zone: 'zone-a',
    serviceInfo: {},
    endpoints: four([['zone-a'], ['zone-b'], undefined, ['zone-a']]),
    clusterEndpoints: ['10.1.2.3:80', '10.1.2.4:80', '10.1.2.5:80', '10.1.2.6:80'],
    localEndpoints: null,
  },
  {
    name: 'multiple hints per endpoint, filtering includes any endpoint with zone included',
    zone: 'zone-c',
    serviceInfo: {},
    endpoints: four([['zone-a', 'zone-b', 'zone-c'], ['zone-b', 'zone-c'], ['zone-b', 'zone-d'], ['zone-c']]),
    clusterEndpoints: ['10.1.2.3:80', '10.1.2.4:80', '10.1.2.6:80'],
    localEndpoints: null,
  },
  {
    name: 'conflicting topology and localness require merging allEndpoints',
    zone: 'zone-a',
    serviceInfo: { internalPolicyLocal: false, externalPolicyLocal: true, nodePort: 8080 },
    endpoints: [
      { endpoint: '10.0.0.0:80', zoneHints: ['zone-a'], ready: true, isLocal: true },
      { endpoint: '10.0.0.1:80', zoneHints: ['zone-b'], ready: true, isLocal: true },
      { endpoint: '10.0.0.2:80', zoneHints: ['zone-a'], ready: true, isLocal: false },
      { endpoint: '10.0.0.3:80', zoneHints: ['zone-b'], ready: true, isLocal: false },
    ],
    clusterEndpoints: ['10.0.0.0:80', '10.0.0.2:80'],
    localEndpoints: ['10.0.0.0:80', '10.0.0.1:80'],
  },
  {
    name: 'internalTrafficPolicy: Local, with empty endpoints',
    serviceInfo: { internalPolicyLocal: true },
    endpoints: [],
    clusterEndpoints: null,
    localEndpoints: [],
  },
  {
    name: 'internalTrafficPolicy: Local, but all endpoints are remote',
    serviceInfo: { internalPolicyLocal: true },
    endpoints: [
      { endpoint: '10.0.0.0:80', ready: true, isLocal: false },
      { endpoint: '10.0.0.1:80', ready: true, isLocal: false },
    ],
    clusterEndpoints: null,
    localEndpoints: [],
  },
  {
    name: 'internalTrafficPolicy: Local, all endpoints are local',
    serviceInfo: { internalPolicyLocal: true },
    endpoints: [
      { endpoint: '10.0.0.0:80', ready: true, isLocal: true },
      { endpoint: '10.0.0.1:80', ready: true, isLocal: true },
    ],
    clusterEndpoints: null,
    localEndpoints: ['10.0.0.0:80', '10.0.0.1:80'],
  },
  {
    name: 'internalTrafficPolicy: Local, some endpoints are local',
    serviceInfo: { internalPolicyLocal: true },
    endpoints: [
      { endpoint: '10.0.0.0:80', ready: true, isLocal: true },
      { endpoint: '10.0.0.1:80', ready: true, isLocal: false },
    ],
    clusterEndpoints: null,
    localEndpoints: ['10.0.0.0:80'],
  },
  {
    name: 'Cluster traffic policy, endpoints not Ready',
    serviceInfo: {},
    endpoints: [
      { endpoint: '10.0.0.0:80', ready: false },
      { endpoint: '10.0.0.1:80', ready: false },
    ],
    clusterEndpoints: [],
    localEndpoints: null,
  },
  {
    name: 'Cluster traffic policy, some endpoints are Ready',
    serviceInfo: {},
    endpoints: [
      { endpoint: '10.0.0.0:80', ready: false },
      { endpoint: '10.0.0.1:80', ready: true },
    ],
    clusterEndpoints: ['10.0.0.1:80'],
    localEndpoints: null,
  },
  {
    name: 'Cluster traffic policy, all endpoints are terminating',
    serviceInfo: {},
    endpoints: [
      { endpoint: '10.0.0.0:80', ready: false, serving: true, terminating: true, isLocal: true },
      { endpoint: '10.0.0.1:80', ready: false, serving: true, terminating: true, isLocal: false },
    ],
    clusterEndpoints: ['10.0.0.0:80', '10.0.0.1:80'],
    localEndpoints: null,
  },
  {
    name: 'iTP: Local, eTP: Cluster, some endpoints local',
    serviceInfo: { internalPolicyLocal: true, externalPolicyLocal: false, nodePort: 8080 },
    endpoints: [
      { endpoint: '10.0.0.0:80', ready: true, isLocal: true },
      { endpoint: '10.0.0.1:80', ready: true, isLocal: false },
    ],
    clusterEndpoints: ['10.0.0.0:80', '10.0.0.1:80'],
    localEndpoints: ['10.0.0.0:80'],
  },
  {
    name: 'iTP: Cluster, eTP: Local, some endpoints local',
    serviceInfo: { internalPolicyLocal: false, externalPolicyLocal: true, nodePort: 8080 },
    endpoints: [
      { endpoint: '10.0.0.0:80', ready: true, isLocal: true },
      { endpoint: '10.0.0.1:80', ready: true, isLocal: false },
    ],
    clusterEndpoints: ['10.0.0.0:80', '10.0.0.1:80'],
    localEndpoints: ['10.0.0.0:80'],
  },
  {
    name: 'iTP: Local, eTP: Local, some endpoints local',
    serviceInfo: { internalPolicyLocal: true, externalPolicyLocal: true, nodePort: 8080 },
    endpoints: [
      { endpoint: '10.0.0.0:80', ready: true, isLocal: true },
      { endpoint: '10.0.0.1:80', ready: true, isLocal: false },
    ],
    clusterEndpoints: ['10.0.0.0:80', '10.0.0.1:80'],
    localEndpoints: ['10.0.0.0:80'],
  },
  {
    name: 'iTP: Local, eTP: Local, all endpoints remote',
    serviceInfo: { internalPolicyLocal: true, externalPolicyLocal: true, nodePort: 8080 },
    endpoints: [
      { endpoint: '10.0.0.0:80', ready: true, isLocal: false },
      { endpoint: '10.0.0.1:80', ready: true, isLocal: false },
    ],
    clusterEndpoints: ['10.0.0.0:80', '10.0.0.1:80'],
    localEndpoints: [],
  },
  {
    name: 'iTP: Local, eTP: Local, all endpoints remote and terminating',
    serviceInfo: { internalPolicyLocal: true, externalPolicyLocal: true, nodePort: 8080 },
    endpoints: [
      { endpoint: '10.0.0.0:80', ready: false, serving: true, terminating: true, isLocal: false },
      { endpoint: '10.0.0.1:80', ready: false, serving: true, terminating: true, isLocal: false },
    ],
    clusterEndpoints: ['10.0.0.0:80', '10.0.0.1:80'],
    localEndpoints: [],
  },
  {
    name: 'iTP: Cluster, eTP: Local, with terminating endpoints',
    serviceInfo: { internalPolicyLocal: false, externalPolicyLocal: true, nodePort: 8080 },
    endpoints: [
      { endpoint: '10.0.0.0:80', ready: true, isLocal: false },
      { endpoint: '10.0.0.1:80', ready: false, serving: false, isLocal: true },
      { endpoint: '10.0.0.2:80', ready: false, serving: true, terminating: true, isLocal: true },
      { endpoint: '10.0.0.3:80', ready: false, serving: true, terminating: true, isLocal: false },
    ],
    clusterEndpoints: ['10.0.0.0:80'],
    localEndpoints: ['10.0.0.2:80'],
  },
  {
    name: 'externalTrafficPolicy ignored if not externally accessible',
    serviceInfo: { externalPolicyLocal: true },
    endpoints: [
      { endpoint: '10.0.0.0:80', ready: true, isLocal: false },
      { endpoint: '10.0.0.1:80', ready: true, isLocal: true },
    ],
    clusterEndpoints: ['10.0.0.0:80', '10.0.0.1:80'],
    localEndpoints: null,
  },
  {
    name: 'no cluster endpoints for iTP:Local internal-only service',
    serviceInfo: { internalPolicyLocal: true },
    endpoints: [
      { endpoint: '10.0.0.0:80', ready: true, isLocal: false },
      { endpoint: '10.0.0.1:80', ready: true, isLocal: true },
    ],
    clusterEndpoints: null,
    localEndpoints: ['10.0.0.1:80'],
  },
  // PreferSameNode (forNodes hints, kube-proxy ≥ 1.33 topologyModeFromHints).
  {
    name: 'PreferSameNode: every ready endpoint has a node hint and one is for this node',
    zone: 'zone-a',
    nodeName: 'node-a',
    serviceInfo: {},
    endpoints: [
      { endpoint: '10.1.2.3:80', nodeHints: ['node-a'], zoneHints: ['zone-a'], ready: true },
      { endpoint: '10.1.2.4:80', nodeHints: ['node-b'], zoneHints: ['zone-a'], ready: true },
      { endpoint: '10.1.2.5:80', nodeHints: ['node-c'], zoneHints: ['zone-b'], ready: true },
    ],
    clusterEndpoints: ['10.1.2.3:80'],
    localEndpoints: null,
  },
  {
    name: 'PreferSameNode falls back to the zone when no endpoint is hinted for this node',
    zone: 'zone-a',
    nodeName: 'node-a',
    serviceInfo: {},
    endpoints: [
      { endpoint: '10.1.2.4:80', nodeHints: ['node-b'], zoneHints: ['zone-a'], ready: true },
      { endpoint: '10.1.2.5:80', nodeHints: ['node-c'], zoneHints: ['zone-b'], ready: true },
    ],
    clusterEndpoints: ['10.1.2.4:80'],
    localEndpoints: null,
  },
  {
    name: 'node hints are ignored when one ready endpoint has none (zone hints still apply)',
    zone: 'zone-b',
    nodeName: 'node-a',
    serviceInfo: {},
    endpoints: [
      { endpoint: '10.1.2.3:80', nodeHints: ['node-a'], zoneHints: ['zone-a'], ready: true },
      { endpoint: '10.1.2.4:80', zoneHints: ['zone-b'], ready: true },
      { endpoint: '10.1.2.5:80', nodeHints: ['node-a'], ready: false, serving: true, terminating: true },
    ],
    clusterEndpoints: ['10.1.2.4:80'],
    localEndpoints: null,
  },
  {
    name: 'node hints without zone hints and none for this node: no filtering',
    nodeName: 'node-a',
    serviceInfo: {},
    endpoints: [
      { endpoint: '10.1.2.4:80', nodeHints: ['node-b'], ready: true },
      { endpoint: '10.1.2.5:80', nodeHints: ['node-c'], ready: true },
    ],
    clusterEndpoints: ['10.1.2.4:80', '10.1.2.5:80'],
    localEndpoints: null,
  },
  {
    name: 'PreferSameNode narrows Cluster endpoints only; eTP Local keeps every local endpoint',
    nodeName: 'node-a',
    serviceInfo: { externalPolicyLocal: true, nodePort: 30080 },
    endpoints: [
      { endpoint: '10.1.2.3:80', nodeHints: ['node-a'], ready: true, isLocal: true },
      { endpoint: '10.1.2.4:80', nodeHints: ['node-b'], ready: true },
      { endpoint: '10.1.2.5:80', nodeHints: ['node-b'], ready: true, isLocal: true },
    ],
    clusterEndpoints: ['10.1.2.3:80'],
    localEndpoints: ['10.1.2.3:80', '10.1.2.5:80'],
  },
];

const names = (endpoints: readonly TopologyEndpoint[]): string[] => endpoints.map((e) => `${e.address}:${e.port}`).sort();

describe('categorizeEndpoints (kube-proxy TestCategorizeEndpoints)', () => {
  it.each(cases)('$name', (c) => {
    const node = { name: c.nodeName ?? 'test-node', zone: c.zone ?? '' };
    const result = categorizeEndpoints(c.endpoints.map(toEndpoint), usesCluster(c.serviceInfo), usesLocal(c.serviceInfo), node);
    expect(usesCluster(c.serviceInfo)).toBe(c.clusterEndpoints !== null);
    expect(usesLocal(c.serviceInfo)).toBe(c.localEndpoints !== null);
    expect(names(result.cluster)).toEqual([...(c.clusterEndpoints ?? [])].sort());
    expect(names(result.local)).toEqual([...(c.localEndpoints ?? [])].sort());
  });
});

describe('topologyModeFromHints', () => {
  const ep = (extra: Partial<Ep>): TopologyEndpoint => toEndpoint({ endpoint: '10.0.0.1:80', ready: true, ...extra });
  const node = { name: 'node-a', zone: 'zone-a' };
  it('is none without ready endpoints, whatever their hints', () => {
    expect(topologyModeFromHints([ep({ ready: false, nodeHints: ['node-a'], zoneHints: ['zone-a'] })], node)).toBe('');
  });
  it('prefers the node over the zone when both apply', () => {
    expect(topologyModeFromHints([ep({ nodeHints: ['node-a'], zoneHints: ['zone-a'] })], node)).toBe('PreferSameNode');
  });
  it('is PreferSameZone with zone hints only', () => {
    expect(topologyModeFromHints([ep({ zoneHints: ['zone-a'] }), ep({ zoneHints: ['zone-b'] })], node)).toBe('PreferSameZone');
  });
  it('ignores zone hints on a node without a zone label', () => {
    expect(topologyModeFromHints([ep({ zoneHints: ['zone-a'] })], { name: 'node-a', zone: '' })).toBe('');
  });
});
