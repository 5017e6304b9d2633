// ClusterIP Services: ports and protocols, how endpoint ports are found, dual stack, scheduler,
// weights, session affinity, exclusion; each case compares the whole desired state.
import { describe, it } from 'vitest';
import { DUAL_NODE, RR_V4, RR_V6, endpoint, expectTranslation, service, settings, slice, type TranslationCase } from './fixtures.js';

const webSlice = slice('web-abc', 'web', {
  endpoints: [endpoint('10.244.1.5', { targetRef: { kind: 'Pod', name: 'web-0' } }), endpoint('10.244.2.7', { targetRef: { kind: 'Pod', name: 'web-1' } })],
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
});
const web = (spec: Record<string, unknown> = {}, metadata: Record<string, unknown> = {}) =>
  service(
    'web',
    { selector: { app: 'web' }, clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', port: 80, targetPort: 'http' }], ...spec },
    metadata,
  );
const webServers = ['10.244.1.5:8080 masq w=1', '10.244.2.7:8080 masq w=1'];
const webSets = { 'KUBE-CLUSTER-IP': ['10.96.0.10,tcp:80'], 'KUBE-IPVS-IPS': ['10.96.0.10'] };

const cases: TranslationCase[] = [
  {
    name: 'a ClusterIP port becomes one virtual server with the endpoints of the slice port of the same name and protocol',
    services: [
      web({
        ports: [
          { name: 'http', port: 80, targetPort: 'web' },
          { name: 'metrics', port: 9090, targetPort: 9100 },
          { name: 'dns', port: 53, protocol: 'UDP', targetPort: 'dns' },
          { name: 'signal', port: 3868, protocol: 'SCTP', targetPort: 3868 },
        ],
      }),
    ],
    slices: [
      slice('web-abc', 'web', {
        endpoints: [endpoint('10.244.1.5'), endpoint('10.244.2.7')],
        ports: [
          { name: 'http', port: 8080, protocol: 'TCP' },
          // Same name, other protocol: not the http port's endpoints.
          { name: 'http', port: 7777, protocol: 'UDP' },
          { name: 'metrics', port: 9100 },
          { name: 'dns', port: 5353, protocol: 'UDP' },
          { name: 'signal', port: 3868, protocol: 'SCTP' },
        ],
      }),
    ],
    virtualServers: {
      'TCP 10.96.0.10:80': { service: RR_V4, owner: 'default/web:http', realServers: webServers },
      'TCP 10.96.0.10:9090': { service: RR_V4, owner: 'default/web:metrics', realServers: ['10.244.1.5:9100 masq w=1', '10.244.2.7:9100 masq w=1'] },
      'UDP 10.96.0.10:53': { service: RR_V4, owner: 'default/web:dns', realServers: ['10.244.1.5:5353 masq w=1', '10.244.2.7:5353 masq w=1'] },
      'SCTP 10.96.0.10:3868': { service: RR_V4, owner: 'default/web:signal', realServers: ['10.244.1.5:3868 masq w=1', '10.244.2.7:3868 masq w=1'] },
    },
    ipsets: {
      'KUBE-CLUSTER-IP': ['10.96.0.10,sctp:3868', '10.96.0.10,tcp:80', '10.96.0.10,tcp:9090', '10.96.0.10,udp:53'],
      'KUBE-IPVS-IPS': ['10.96.0.10'],
    },
    bound: ['10.96.0.10'],
  },
  {
    name: 'a Service without endpoints still gets its virtual server, with no real servers',
    services: [web()],
    virtualServers: { 'TCP 10.96.0.10:80': { service: RR_V4, owner: 'default/web:http', realServers: [] } },
    ipsets: webSets,
    bound: ['10.96.0.10'],
  },
  {
    name: 'endpoints from several slices are merged and the same address:port is one real server',
    services: [web()],
    slices: [
      webSlice,
      slice('web-def', 'web', { endpoints: [endpoint('10.244.2.7'), endpoint('10.244.3.9')], ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] }),
    ],
    virtualServers: { 'TCP 10.96.0.10:80': { service: RR_V4, owner: 'default/web:http', realServers: [...webServers, '10.244.3.9:8080 masq w=1'] } },
    ipsets: webSets,
    bound: ['10.96.0.10'],
  },
  {
    name: 'a Service without a selector works the same from hand-made slices (unnamed port, default protocol)',
    services: [service('external-db', { clusterIP: '10.96.0.20', ports: [{ port: 5432 }] })],
    slices: [slice('external-db-1', 'external-db', { endpoints: [{ addresses: ['192.168.50.4'] }], ports: [{ port: 5432 }] })],
    virtualServers: { 'TCP 10.96.0.20:5432': { service: RR_V4, owner: 'default/external-db:5432', realServers: ['192.168.50.4:5432 masq w=1'] } },
    ipsets: { 'KUBE-CLUSTER-IP': ['10.96.0.20,tcp:5432'], 'KUBE-IPVS-IPS': ['10.96.0.20'] },
    bound: ['10.96.0.20'],
  },
  {
    name: 'FQDN slices are ignored',
    services: [web()],
    slices: [slice('web-fqdn', 'web', { addressType: 'FQDN', endpoints: [{ addresses: ['db.example.com'] }], ports: [{ name: 'http', port: 8080 }] })],
    virtualServers: { 'TCP 10.96.0.10:80': { service: RR_V4, owner: 'default/web:http', realServers: [] } },
    ipsets: webSets,
    bound: ['10.96.0.10'],
  },
  {
    name: 'headless and ExternalName Services get nothing and are no problem',
    services: [
      service('headless', { clusterIP: 'None', clusterIPs: ['None'], ports: [{ name: 'http', port: 80 }] }),
      service('elsewhere', { type: 'ExternalName', externalName: 'db.example.com', ports: [{ name: 'sql', port: 5432 }] }),
      service('elsewhere-with-ip', { type: 'ExternalName', externalName: 'db.example.com', clusterIP: '10.96.0.99', ports: [{ port: 5432 }] }),
    ],
    slices: [slice('headless-1', 'headless', { endpoints: [endpoint('10.244.1.5')], ports: [{ name: 'http', port: 80 }] })],
    virtualServers: {},
    ipsets: {},
    bound: [],
  },
  {
    name: 'dual-stack clusterIPs give a virtual server per family, each with the endpoints of its family, in KUBE-6- sets for IPv6',
    node: DUAL_NODE,
    services: [web({ clusterIPs: ['10.96.0.10', 'fd00:10:96::a'], ipFamilies: ['IPv4', 'IPv6'] })],
    slices: [
      webSlice,
      slice('web-v6', 'web', { addressType: 'IPv6', endpoints: [endpoint('fd00:10:244:1::5')], ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] }),
    ],
    virtualServers: {
      'TCP 10.96.0.10:80': { service: RR_V4, owner: 'default/web:http', realServers: webServers },
      'TCP [fd00:10:96::a]:80': { service: RR_V6, owner: 'default/web:http', realServers: ['[fd00:10:244:1::5]:8080 masq w=1'] },
    },
    ipsets: {
      'KUBE-CLUSTER-IP': ['10.96.0.10,tcp:80'],
      'KUBE-IPVS-IPS': ['10.96.0.10'],
      'KUBE-6-CLUSTER-IP': ['fd00:10:96::a,tcp:80'],
      'KUBE-6-IPVS-IPS': ['fd00:10:96::a'],
    },
    bound: ['10.96.0.10', 'fd00:10:96::a'],
  },
  {
    name: 'a clusterIP of a family the node lacks is a problem; the other family still works',
    services: [web({ clusterIPs: ['fd00:10:96::a', '10.96.0.10'] })],
    slices: [webSlice],
    virtualServers: { 'TCP 10.96.0.10:80': { service: RR_V4, owner: 'default/web:http', realServers: webServers } },
    ipsets: webSets,
    bound: ['10.96.0.10'],
    problems: [{ object: 'default/web', reason: 'clusterIP fd00:10:96::a is IPv6, which this node does not have; IPv6 skipped' }],
  },
  {
    name: 'an IPv6 address is used in its canonical form',
    node: { name: 'node-a', addresses: [], families: ['inet6'] },
    services: [service('v6', { clusterIP: 'FD00:10:96:0:0:0:0:A', ports: [{ port: 80 }] })],
    virtualServers: { 'TCP [fd00:10:96::a]:80': { service: RR_V6, owner: 'default/v6:80', realServers: [] } },
    ipsets: { 'KUBE-6-CLUSTER-IP': ['fd00:10:96::a,tcp:80'], 'KUBE-6-IPVS-IPS': ['fd00:10:96::a'] },
    bound: ['fd00:10:96::a'],
  },
  {
    name: 'sessionAffinity ClientIP makes the virtual server persistent for 10800 s by default',
    services: [web({ sessionAffinity: 'ClientIP' })],
    slices: [webSlice],
    virtualServers: { 'TCP 10.96.0.10:80': { service: 'rr flags=0x1 timeout=10800 netmask=32', owner: 'default/web:http', realServers: webServers } },
    ipsets: webSets,
    bound: ['10.96.0.10'],
  },
  {
    name: 'sessionAffinityConfig.clientIP.timeoutSeconds sets the persistence timeout; netmask 128 for IPv6',
    node: DUAL_NODE,
    services: [web({ clusterIPs: ['10.96.0.10', 'fd00:10:96::a'], sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } })],
    virtualServers: {
      'TCP 10.96.0.10:80': { service: 'rr flags=0x1 timeout=60 netmask=32', owner: 'default/web:http', realServers: [] },
      'TCP [fd00:10:96::a]:80': { service: 'rr flags=0x1 timeout=60 netmask=128', owner: 'default/web:http', realServers: [] },
    },
    ipsets: { ...webSets, 'KUBE-6-CLUSTER-IP': ['fd00:10:96::a,tcp:80'], 'KUBE-6-IPVS-IPS': ['fd00:10:96::a'] },
    bound: ['10.96.0.10', 'fd00:10:96::a'],
  },
  {
    name: 'the default scheduler comes from the settings',
    settings: settings({ scheduler: 'lc' }),
    services: [web()],
    slices: [webSlice],
    virtualServers: { 'TCP 10.96.0.10:80': { service: 'lc flags=0x0 timeout=0 netmask=32', owner: 'default/web:http', realServers: webServers } },
    ipsets: webSets,
    bound: ['10.96.0.10'],
  },
  {
    name: 'the kipvs.io/scheduler annotation overrides the default scheduler',
    services: [web({}, { annotations: { 'kipvs.io/scheduler': 'wlc' } })],
    slices: [webSlice],
    virtualServers: { 'TCP 10.96.0.10:80': { service: 'wlc flags=0x0 timeout=0 netmask=32', owner: 'default/web:http', realServers: webServers } },
    ipsets: webSets,
    bound: ['10.96.0.10'],
  },
  {
    name: 'scheduler mh also hashes the source port (IP_VS_SVC_F_SCHED2), as kube-proxy sets it',
    services: [web({ sessionAffinity: 'ClientIP' }, { annotations: { 'kipvs.io/scheduler': 'mh' } })],
    virtualServers: { 'TCP 10.96.0.10:80': { service: 'mh flags=0x11 timeout=10800 netmask=32', owner: 'default/web:http', realServers: [] } },
    ipsets: webSets,
    bound: ['10.96.0.10'],
  },
  {
    name: 'an unknown scheduler in the annotation is a problem and the default is used',
    services: [web({}, { annotations: { 'kipvs.io/scheduler': 'fastest' } })],
    slices: [webSlice],
    virtualServers: { 'TCP 10.96.0.10:80': { service: RR_V4, owner: 'default/web:http', realServers: webServers } },
    ipsets: webSets,
    bound: ['10.96.0.10'],
    problems: [
      {
        object: 'default/web',
        reason: 'annotation kipvs.io/scheduler "fastest" is not an IPVS scheduler (rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos); rr used',
      },
    ],
  },
  {
    name: 'kipvs.io/weights names endpoints by pod name or by address; others weigh 1',
    services: [web({}, { annotations: { 'kipvs.io/scheduler': 'wrr', 'kipvs.io/weights': 'web-0=3, 10.244.2.7=5,web-9=7' } })],
    slices: [
      slice('web-abc', 'web', {
        endpoints: [
          endpoint('10.244.1.5', { targetRef: { kind: 'Pod', name: 'web-0' } }),
          // The address is more specific than the pod name.
          endpoint('10.244.2.7', { targetRef: { kind: 'Pod', name: 'web-0' } }),
          endpoint('10.244.3.9', { targetRef: { kind: 'Pod', name: 'web-2' } }),
        ],
        ports: [{ name: 'http', port: 8080 }],
      }),
    ],
    virtualServers: {
      'TCP 10.96.0.10:80': {
        service: 'wrr flags=0x0 timeout=0 netmask=32',
        owner: 'default/web:http',
        realServers: ['10.244.1.5:8080 masq w=3', '10.244.2.7:8080 masq w=5', '10.244.3.9:8080 masq w=1'],
      },
    },
    ipsets: webSets,
    bound: ['10.96.0.10'],
  },
  {
    name: 'a malformed kipvs.io/weights is a problem; every endpoint weighs 1 and the Service works',
    services: [web({}, { annotations: { 'kipvs.io/weights': 'web-0=3,web-1:2' } })],
    slices: [webSlice],
    virtualServers: { 'TCP 10.96.0.10:80': { service: RR_V4, owner: 'default/web:http', realServers: webServers } },
    ipsets: webSets,
    bound: ['10.96.0.10'],
    problems: [{ object: 'default/web', reason: 'annotation kipvs.io/weights "web-0=3,web-1:2" is malformed: "web-1:2" is not name=weight; weights ignored' }],
  },
  {
    name: 'no virtual server, address or entry is produced inside --ipvs-exclude-cidrs',
    settings: settings({ excludeCidrs: ['10.96.0.0/28'] }),
    services: [web(), service('api', { clusterIP: '10.96.1.1', ports: [{ name: 'https', port: 443 }] })],
    slices: [webSlice],
    virtualServers: { 'TCP 10.96.1.1:443': { service: RR_V4, owner: 'default/api:https', realServers: [] } },
    ipsets: { 'KUBE-CLUSTER-IP': ['10.96.1.1,tcp:443'], 'KUBE-IPVS-IPS': ['10.96.1.1'] },
    bound: ['10.96.1.1'],
  },
];

describe('translate: ClusterIP', () => {
  it.each(cases)('$name', (testCase) => {
    expectTranslation(testCase);
  });
});
