// Which endpoints a virtual server gets: readiness, the serving-terminating fallback, duplicates,
// endpoints on this node (KUBE-LOOP-BACK), and the internal and external traffic policies.
import { describe, it } from 'vitest';
import { NODE, RR_V4, endpoint, expectTranslation, service, slice, type TranslationCase } from './fixtures.js';

const local = (address: string, extra: Record<string, unknown> = {}) => endpoint(address, { nodeName: 'node-a', ...extra });
const terminating = { ready: false, serving: true, terminating: true };
const web = (spec: Record<string, unknown> = {}) => service('web', { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80 }], ...spec });
const webSlice = (...endpoints: unknown[]) => slice('web-abc', 'web', { endpoints, ports: [{ name: 'http', port: 8080 }] });
const clusterOnly = (realServers: string[]): Pick<TranslationCase, 'virtualServers' | 'ipsets' | 'bound'> => ({
  virtualServers: { 'TCP 10.96.0.10:80': { service: RR_V4, owner: 'default/web:http', realServers } },
  ipsets: { 'KUBE-CLUSTER-IP': ['10.96.0.10,tcp:80'], 'KUBE-IPVS-IPS': ['10.96.0.10'] },
  bound: ['10.96.0.10'],
});
const NODE_PORT_SETS = { 'KUBE-CLUSTER-IP': ['10.96.0.10,tcp:80'], 'KUBE-IPVS-IPS': ['10.96.0.10'], 'KUBE-NODE-PORT-TCP': ['30080'] };
const nodePortWeb = (spec: Record<string, unknown>) => web({ type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30080 }], ...spec });

const cases: TranslationCase[] = [
  {
    name: 'endpoints without conditions, or with ready unset, count as ready',
    services: [web()],
    slices: [webSlice(endpoint('10.244.1.5'), endpoint('10.244.2.7', { conditions: { serving: true } }))],
    ...clusterOnly(['10.244.1.5:8080 masq w=1', '10.244.2.7:8080 masq w=1']),
  },
  {
    name: 'endpoints that are not ready are left out',
    services: [web()],
    slices: [webSlice(endpoint('10.244.1.5', { conditions: { ready: true } }), endpoint('10.244.2.7', { conditions: { ready: false, serving: false } }))],
    ...clusterOnly(['10.244.1.5:8080 masq w=1']),
  },
  {
    name: 'while a ready endpoint exists, terminating ones are left out',
    services: [web()],
    slices: [webSlice(endpoint('10.244.1.5'), endpoint('10.244.2.7', { conditions: terminating }))],
    ...clusterOnly(['10.244.1.5:8080 masq w=1']),
  },
  {
    name: 'with no ready endpoint, the serving and terminating ones are used (kube-proxy fallback)',
    services: [web()],
    slices: [
      webSlice(
        endpoint('10.244.1.5', { conditions: terminating }),
        endpoint('10.244.2.7', { conditions: { ready: false, serving: false, terminating: true } }),
        endpoint('10.244.3.9', { conditions: { ready: false, serving: false } }),
      ),
    ],
    ...clusterOnly(['10.244.1.5:8080 masq w=1']),
  },
  {
    name: 'a terminating copy of an address:port never replaces a live one, in whichever slice order',
    services: [web()],
    slices: [
      slice('web-1', 'web', { endpoints: [endpoint('10.244.1.5', { conditions: terminating })], ports: [{ name: 'http', port: 8080 }] }),
      slice('web-2', 'web', { endpoints: [endpoint('10.244.1.5'), endpoint('10.244.2.7')], ports: [{ name: 'http', port: 8080 }] }),
      slice('web-3', 'web', { endpoints: [endpoint('10.244.2.7', { conditions: terminating })], ports: [{ name: 'http', port: 8080 }] }),
    ],
    ...clusterOnly(['10.244.1.5:8080 masq w=1', '10.244.2.7:8080 masq w=1']),
  },
  {
    name: 'endpoints on this node are in KUBE-LOOP-BACK, ready or not, so that hairpin traffic is masqueraded',
    services: [web()],
    slices: [webSlice(local('10.244.0.5'), local('10.244.0.6', { conditions: { ready: false } }), endpoint('10.244.2.7'))],
    virtualServers: {
      'TCP 10.96.0.10:80': { service: RR_V4, owner: 'default/web:http', realServers: ['10.244.0.5:8080 masq w=1', '10.244.2.7:8080 masq w=1'] },
    },
    ipsets: {
      'KUBE-CLUSTER-IP': ['10.96.0.10,tcp:80'],
      'KUBE-IPVS-IPS': ['10.96.0.10'],
      'KUBE-LOOP-BACK': ['10.244.0.5,tcp:8080,10.244.0.5', '10.244.0.6,tcp:8080,10.244.0.6'],
    },
    bound: ['10.96.0.10'],
  },
  {
    name: 'internalTrafficPolicy Local gives the ClusterIP only the endpoints on this node',
    services: [web({ internalTrafficPolicy: 'Local' })],
    slices: [webSlice(local('10.244.0.5'), endpoint('10.244.2.7'))],
    virtualServers: { 'TCP 10.96.0.10:80': { service: RR_V4, owner: 'default/web:http', realServers: ['10.244.0.5:8080 masq w=1'] } },
    ipsets: { 'KUBE-CLUSTER-IP': ['10.96.0.10,tcp:80'], 'KUBE-IPVS-IPS': ['10.96.0.10'], 'KUBE-LOOP-BACK': ['10.244.0.5,tcp:8080,10.244.0.5'] },
    bound: ['10.96.0.10'],
  },
  {
    name: 'internalTrafficPolicy Local with no endpoint on this node leaves the ClusterIP without real servers',
    services: [web({ internalTrafficPolicy: 'Local' })],
    slices: [webSlice(endpoint('10.244.1.5'), endpoint('10.244.2.7'))],
    ...clusterOnly([]),
  },
  {
    name: 'internalTrafficPolicy Local falls back to local serving-terminating endpoints',
    services: [web({ internalTrafficPolicy: 'Local' })],
    slices: [webSlice(local('10.244.0.5', { conditions: terminating }), endpoint('10.244.2.7'))],
    virtualServers: { 'TCP 10.96.0.10:80': { service: RR_V4, owner: 'default/web:http', realServers: ['10.244.0.5:8080 masq w=1'] } },
    ipsets: { 'KUBE-CLUSTER-IP': ['10.96.0.10,tcp:80'], 'KUBE-IPVS-IPS': ['10.96.0.10'], 'KUBE-LOOP-BACK': ['10.244.0.5,tcp:8080,10.244.0.5'] },
    bound: ['10.96.0.10'],
  },
  {
    name: 'externalTrafficPolicy Local gives external virtual servers only local endpoints; the ClusterIP keeps them all',
    services: [nodePortWeb({ externalTrafficPolicy: 'Local' })],
    slices: [webSlice(local('10.244.0.5'), endpoint('10.244.2.7'))],
    virtualServers: {
      'TCP 10.96.0.10:80': { service: RR_V4, owner: 'default/web:http', realServers: ['10.244.0.5:8080 masq w=1', '10.244.2.7:8080 masq w=1'] },
      'TCP 192.168.1.10:30080': { service: RR_V4, owner: 'default/web:http', realServers: ['10.244.0.5:8080 masq w=1'] },
    },
    ipsets: { ...NODE_PORT_SETS, 'KUBE-NODE-PORT-LOCAL-TCP': ['30080'], 'KUBE-LOOP-BACK': ['10.244.0.5,tcp:8080,10.244.0.5'] },
    bound: ['10.96.0.10'],
  },
  {
    // kube-proxy's IPVS syncEndpoint (kubernetes#97081): pods on this node can still reach the
    // Service; outside traffic is not masqueraded (KUBE-NODE-PORT-LOCAL-TCP) and gets no reply.
    name: 'externalTrafficPolicy Local with no local endpoint falls back to the cluster endpoints, as kube-proxy does',
    services: [nodePortWeb({ externalTrafficPolicy: 'Local' })],
    slices: [webSlice(endpoint('10.244.1.5'), endpoint('10.244.2.7'))],
    virtualServers: {
      'TCP 10.96.0.10:80': { service: RR_V4, owner: 'default/web:http', realServers: ['10.244.1.5:8080 masq w=1', '10.244.2.7:8080 masq w=1'] },
      'TCP 192.168.1.10:30080': { service: RR_V4, owner: 'default/web:http', realServers: ['10.244.1.5:8080 masq w=1', '10.244.2.7:8080 masq w=1'] },
    },
    ipsets: { ...NODE_PORT_SETS, 'KUBE-NODE-PORT-LOCAL-TCP': ['30080'] },
    bound: ['10.96.0.10'],
  },
  {
    // A port reachable from outside always computes cluster endpoints (UsesClusterEndpoints), so
    // the same fallback reaches the ClusterIP's internal policy too: kube-proxy's IPVS mode does so.
    name: 'both policies Local with no local endpoint: a NodePort Service falls back to the cluster endpoints everywhere',
    services: [nodePortWeb({ externalTrafficPolicy: 'Local', internalTrafficPolicy: 'Local' })],
    slices: [webSlice(endpoint('10.244.1.5'))],
    virtualServers: {
      'TCP 10.96.0.10:80': { service: RR_V4, owner: 'default/web:http', realServers: ['10.244.1.5:8080 masq w=1'] },
      'TCP 192.168.1.10:30080': { service: RR_V4, owner: 'default/web:http', realServers: ['10.244.1.5:8080 masq w=1'] },
    },
    ipsets: { ...NODE_PORT_SETS, 'KUBE-NODE-PORT-LOCAL-TCP': ['30080'] },
    bound: ['10.96.0.10'],
  },
  {
    name: 'externalTrafficPolicy Local means nothing to a ClusterIP Service without external IPs',
    services: [web({ externalTrafficPolicy: 'Local' })],
    slices: [webSlice(local('10.244.0.5'), endpoint('10.244.2.7'))],
    virtualServers: {
      'TCP 10.96.0.10:80': { service: RR_V4, owner: 'default/web:http', realServers: ['10.244.0.5:8080 masq w=1', '10.244.2.7:8080 masq w=1'] },
    },
    ipsets: { 'KUBE-CLUSTER-IP': ['10.96.0.10,tcp:80'], 'KUBE-IPVS-IPS': ['10.96.0.10'], 'KUBE-LOOP-BACK': ['10.244.0.5,tcp:8080,10.244.0.5'] },
    bound: ['10.96.0.10'],
  },
  {
    name: 'endpoint problems are reported against the EndpointSlice; its good endpoints and ports are used',
    services: [web()],
    slices: [
      slice('web-abc', 'web', {
        endpoints: [
          endpoint('10.244.1.5'),
          endpoint('10.244.1.300'),
          endpoint('fd00::5'),
          { addresses: [], nodeName: 'node-b' },
          // Only the first address counts, as in kube-proxy.
          { addresses: ['10.244.2.7', '10.244.2.8'] },
        ],
        ports: [
          { name: 'http', port: 8080 },
          { name: 'http', port: 0, protocol: 'UDP' },
        ],
      }),
      slice('web-bad', 'web', { addressType: 'IPv5', endpoints: [endpoint('10.244.9.9')], ports: [{ name: 'http', port: 8080 }] }),
    ],
    ...clusterOnly(['10.244.1.5:8080 masq w=1', '10.244.2.7:8080 masq w=1']),
    problems: [
      { object: 'default/web-abc', reason: 'EndpointSlice endpoint address "10.244.1.300" is not a valid IPv4 address; ignored' },
      { object: 'default/web-abc', reason: 'EndpointSlice endpoint address "fd00::5" is not a valid IPv4 address; ignored' },
      { object: 'default/web-abc', reason: 'EndpointSlice endpoint has no addresses; ignored' },
      { object: 'default/web-abc', reason: 'EndpointSlice port "http": port 0 is not in 1..65535; port ignored' },
      { object: 'default/web-bad', reason: 'EndpointSlice addressType "IPv5" is not IPv4, IPv6 or FQDN; ignored' },
    ],
  },
  {
    name: 'slices are matched by namespace and the kubernetes.io/service-name label',
    services: [web()],
    slices: [
      slice('web-abc', 'web', { endpoints: [endpoint('10.244.1.5')], ports: [{ name: 'http', port: 8080 }] }),
      slice('web-other-ns', 'web', { endpoints: [endpoint('10.244.8.8')], ports: [{ name: 'http', port: 8080 }] }, { namespace: 'other' }),
      slice('api-abc', 'api', { endpoints: [endpoint('10.244.9.9')], ports: [{ name: 'http', port: 8080 }] }),
      slice('unlabelled', 'web', { endpoints: [endpoint('10.244.7.7')], ports: [{ name: 'http', port: 8080 }] }, { labels: {} }),
    ],
    ...clusterOnly(['10.244.1.5:8080 masq w=1']),
  },
];

const ZONED_NODE = { ...NODE, zone: 'zone-a' };
const hinted = (address: string, zones: string[], extra: Record<string, unknown> = {}) =>
  endpoint(address, { hints: { forZones: zones.map((name) => ({ name })) }, ...extra });

const topologyCases: TranslationCase[] = [
  {
    name: "zone hints: the ClusterIP gets the endpoints hinted for the node's topology.kubernetes.io/zone",
    node: ZONED_NODE,
    services: [web({ trafficDistribution: 'PreferSameZone' })],
    slices: [webSlice(hinted('10.244.1.5', ['zone-a']), hinted('10.244.2.7', ['zone-b']), hinted('10.244.3.9', ['zone-a', 'zone-b']))],
    ...clusterOnly(['10.244.1.5:8080 masq w=1', '10.244.3.9:8080 masq w=1']),
  },
  {
    name: 'zone hints are ignored when one ready endpoint has none',
    node: ZONED_NODE,
    services: [web()],
    slices: [webSlice(hinted('10.244.1.5', ['zone-a']), endpoint('10.244.2.7'))],
    ...clusterOnly(['10.244.1.5:8080 masq w=1', '10.244.2.7:8080 masq w=1']),
  },
  {
    name: "zone hints are ignored when none is for the node's zone, or the node has no zone label",
    node: NODE,
    services: [web()],
    slices: [webSlice(hinted('10.244.1.5', ['zone-a']), hinted('10.244.2.7', ['zone-b']))],
    ...clusterOnly(['10.244.1.5:8080 masq w=1', '10.244.2.7:8080 masq w=1']),
  },
  {
    name: 'node hints (PreferSameNode): only the endpoint hinted for this node',
    node: ZONED_NODE,
    services: [web({ trafficDistribution: 'PreferSameNode' })],
    slices: [
      webSlice(
        endpoint('10.244.1.5', { nodeName: 'node-a', hints: { forNodes: [{ name: 'node-a' }], forZones: [{ name: 'zone-a' }] } }),
        endpoint('10.244.2.7', { hints: { forNodes: [{ name: 'node-b' }], forZones: [{ name: 'zone-a' }] } }),
      ),
    ],
    virtualServers: { 'TCP 10.96.0.10:80': { service: RR_V4, owner: 'default/web:http', realServers: ['10.244.1.5:8080 masq w=1'] } },
    ipsets: { 'KUBE-CLUSTER-IP': ['10.96.0.10,tcp:80'], 'KUBE-IPVS-IPS': ['10.96.0.10'], 'KUBE-LOOP-BACK': ['10.244.1.5,tcp:8080,10.244.1.5'] },
    bound: ['10.96.0.10'],
  },
  {
    name: 'hints narrow the Cluster endpoints of a NodePort; externalTrafficPolicy Local ignores them',
    node: ZONED_NODE,
    services: [nodePortWeb({ externalTrafficPolicy: 'Local' })],
    slices: [webSlice(hinted('10.244.1.5', ['zone-a']), hinted('10.244.2.7', ['zone-b'], { nodeName: 'node-a' }))],
    virtualServers: {
      'TCP 10.96.0.10:80': { service: RR_V4, owner: 'default/web:http', realServers: ['10.244.1.5:8080 masq w=1'] },
      'TCP 192.168.1.10:30080': { service: RR_V4, owner: 'default/web:http', realServers: ['10.244.2.7:8080 masq w=1'] },
    },
    ipsets: { ...NODE_PORT_SETS, 'KUBE-NODE-PORT-LOCAL-TCP': ['30080'], 'KUBE-LOOP-BACK': ['10.244.2.7,tcp:8080,10.244.2.7'] },
    bound: ['10.96.0.10'],
  },
];

describe('translate: topology hints', () => {
  it.each(topologyCases)('$name', (testCase) => {
    expectTranslation(testCase);
  });
});

describe('translate: endpoints', () => {
  it.each(cases)('$name', (testCase) => {
    expectTranslation(testCase);
  });
});
