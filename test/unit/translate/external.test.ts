// Traffic from outside: NodePorts on every node address, external IPs, load balancer ingress IPs
// with their source ranges, and the ipsets kube-proxy's iptables rules match them with.
import { describe, it } from 'vitest';
import { DUAL_NODE, RR_V4, RR_V6, endpoint, expectTranslation, service, settings, slice, type TranslationCase } from './fixtures.js';

const TWO_ADDRESS_NODE = { name: 'node-a', addresses: ['192.168.1.10', '10.0.0.10'], families: ['inet' as const] };
const servers = ['10.244.1.5:8080 masq w=1'];
const localServers = ['10.244.0.5:8080 masq w=1'];
const webSlice = slice('web-abc', 'web', { endpoints: [endpoint('10.244.1.5')], ports: [{ name: 'http', port: 8080 }] });
const mixedSlice = slice('web-abc', 'web', {
  endpoints: [endpoint('10.244.1.5'), endpoint('10.244.0.5', { nodeName: 'node-a' })],
  ports: [{ name: 'http', port: 8080 }],
});
const web = (spec: Record<string, unknown>, status?: Record<string, unknown>) =>
  service('web', { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80 }], ...spec }, {}, status);
const vs = (realServers: string[], service = RR_V4) => ({ service, owner: 'default/web:http', realServers });
const CLUSTER = { 'KUBE-CLUSTER-IP': ['10.96.0.10,tcp:80'] };
const lbStatus = (...ingress: Record<string, unknown>[]) => ({ loadBalancer: { ingress } });

const cases: TranslationCase[] = [
  {
    name: 'a TCP NodePort is a virtual server on every node address, and an entry of KUBE-NODE-PORT-TCP',
    node: TWO_ADDRESS_NODE,
    services: [web({ type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30080 }] })],
    slices: [webSlice],
    virtualServers: { 'TCP 10.96.0.10:80': vs(servers), 'TCP 192.168.1.10:30080': vs(servers), 'TCP 10.0.0.10:30080': vs(servers) },
    ipsets: { ...CLUSTER, 'KUBE-IPVS-IPS': ['10.96.0.10'], 'KUBE-NODE-PORT-TCP': ['30080'] },
    bound: ['10.96.0.10'],
  },
  {
    name: 'a UDP NodePort goes to KUBE-NODE-PORT-UDP',
    services: [web({ type: 'NodePort', ports: [{ name: 'dns', port: 53, protocol: 'UDP', nodePort: 30053 }] })],
    virtualServers: {
      'UDP 10.96.0.10:53': { service: RR_V4, owner: 'default/web:dns', realServers: [] },
      'UDP 192.168.1.10:30053': { service: RR_V4, owner: 'default/web:dns', realServers: [] },
    },
    ipsets: { 'KUBE-CLUSTER-IP': ['10.96.0.10,udp:53'], 'KUBE-IPVS-IPS': ['10.96.0.10'], 'KUBE-NODE-PORT-UDP': ['30053'] },
    bound: ['10.96.0.10'],
  },
  {
    name: 'an SCTP NodePort is one (node IP, sctp:port) entry per node address in KUBE-NODE-PORT-SCTP-HASH, and -LOCAL with policy Local',
    node: TWO_ADDRESS_NODE,
    services: [web({ type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ name: 'sig', port: 3868, protocol: 'SCTP', nodePort: 30868 }] })],
    virtualServers: {
      'SCTP 10.96.0.10:3868': { service: RR_V4, owner: 'default/web:sig', realServers: [] },
      'SCTP 192.168.1.10:30868': { service: RR_V4, owner: 'default/web:sig', realServers: [] },
      'SCTP 10.0.0.10:30868': { service: RR_V4, owner: 'default/web:sig', realServers: [] },
    },
    ipsets: {
      'KUBE-CLUSTER-IP': ['10.96.0.10,sctp:3868'],
      'KUBE-IPVS-IPS': ['10.96.0.10'],
      'KUBE-NODE-PORT-SCTP-HASH': ['10.0.0.10,sctp:30868', '192.168.1.10,sctp:30868'],
      'KUBE-NODE-PORT-LOCAL-SCTP-HASH': ['10.0.0.10,sctp:30868', '192.168.1.10,sctp:30868'],
    },
    bound: ['10.96.0.10'],
  },
  {
    name: 'externalTrafficPolicy Local puts the NodePort in KUBE-NODE-PORT-LOCAL-TCP too, and the NodePort gets local endpoints',
    services: [web({ type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, nodePort: 30080 }] })],
    slices: [mixedSlice],
    virtualServers: { 'TCP 10.96.0.10:80': vs([...localServers, ...servers]), 'TCP 192.168.1.10:30080': vs(localServers) },
    ipsets: {
      ...CLUSTER,
      'KUBE-IPVS-IPS': ['10.96.0.10'],
      'KUBE-LOOP-BACK': ['10.244.0.5,tcp:8080,10.244.0.5'],
      'KUBE-NODE-PORT-TCP': ['30080'],
      'KUBE-NODE-PORT-LOCAL-TCP': ['30080'],
    },
    bound: ['10.96.0.10'],
  },
  {
    name: 'on a dual-stack node each family serves its NodePort on its own addresses, in its own sets',
    node: DUAL_NODE,
    services: [web({ type: 'NodePort', clusterIPs: ['10.96.0.10', 'fd00:10:96::a'], ports: [{ name: 'http', port: 80, nodePort: 30080 }] })],
    slices: [webSlice, slice('web-v6', 'web', { addressType: 'IPv6', endpoints: [endpoint('fd00:10:244:1::5')], ports: [{ name: 'http', port: 8080 }] })],
    virtualServers: {
      'TCP 10.96.0.10:80': vs(servers),
      'TCP 192.168.1.10:30080': vs(servers),
      'TCP [fd00:10:96::a]:80': vs(['[fd00:10:244:1::5]:8080 masq w=1'], RR_V6),
      'TCP [2001:db8::10]:30080': vs(['[fd00:10:244:1::5]:8080 masq w=1'], RR_V6),
    },
    ipsets: {
      ...CLUSTER,
      'KUBE-IPVS-IPS': ['10.96.0.10'],
      'KUBE-NODE-PORT-TCP': ['30080'],
      'KUBE-6-CLUSTER-IP': ['fd00:10:96::a,tcp:80'],
      'KUBE-6-IPVS-IPS': ['fd00:10:96::a'],
      'KUBE-6-NODE-PORT-TCP': ['30080'],
    },
    bound: ['10.96.0.10', 'fd00:10:96::a'],
  },
  {
    name: 'a node without an address of the family serves no NodePort of it, as kube-proxy',
    node: { name: 'node-a', addresses: [], families: ['inet'] },
    services: [web({ type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30080 }] })],
    virtualServers: { 'TCP 10.96.0.10:80': vs([]) },
    ipsets: { ...CLUSTER, 'KUBE-IPVS-IPS': ['10.96.0.10'] },
    bound: ['10.96.0.10'],
  },
  {
    name: 'externalIPs are virtual servers bound to the dummy interface, in KUBE-EXTERNAL-IP',
    services: [web({ externalIPs: ['203.0.113.7', '203.0.113.8'] })],
    slices: [webSlice],
    virtualServers: { 'TCP 10.96.0.10:80': vs(servers), 'TCP 203.0.113.7:80': vs(servers), 'TCP 203.0.113.8:80': vs(servers) },
    ipsets: {
      ...CLUSTER,
      'KUBE-EXTERNAL-IP': ['203.0.113.7,tcp:80', '203.0.113.8,tcp:80'],
      'KUBE-IPVS-IPS': ['10.96.0.10', '203.0.113.7', '203.0.113.8'],
    },
    bound: ['10.96.0.10', '203.0.113.7', '203.0.113.8'],
  },
  {
    name: 'with externalTrafficPolicy Local an external IP is in KUBE-EXTERNAL-IP-LOCAL only, and gets local endpoints',
    services: [web({ externalIPs: ['203.0.113.7'], externalTrafficPolicy: 'Local' })],
    slices: [mixedSlice],
    virtualServers: { 'TCP 10.96.0.10:80': vs([...localServers, ...servers]), 'TCP 203.0.113.7:80': vs(localServers) },
    ipsets: {
      ...CLUSTER,
      'KUBE-EXTERNAL-IP-LOCAL': ['203.0.113.7,tcp:80'],
      'KUBE-IPVS-IPS': ['10.96.0.10', '203.0.113.7'],
      'KUBE-LOOP-BACK': ['10.244.0.5,tcp:8080,10.244.0.5'],
    },
    bound: ['10.96.0.10', '203.0.113.7'],
  },
  {
    name: 'an external IP that is a node address is served but not bound (kube-proxy shouldBind)',
    services: [web({ externalIPs: ['192.168.1.10'] })],
    virtualServers: { 'TCP 10.96.0.10:80': vs([]), 'TCP 192.168.1.10:80': vs([]) },
    ipsets: { ...CLUSTER, 'KUBE-EXTERNAL-IP': ['192.168.1.10,tcp:80'], 'KUBE-IPVS-IPS': ['10.96.0.10'] },
    bound: ['10.96.0.10'],
  },
  {
    name: 'VIP-mode load balancer ingress IPs are virtual servers in KUBE-LOAD-BALANCER; Proxy mode and hostnames get nothing',
    services: [
      web(
        { type: 'LoadBalancer', ports: [{ name: 'http', port: 80, nodePort: 30080 }] },
        lbStatus({ ip: '198.51.100.1' }, { ip: '198.51.100.2', ipMode: 'VIP' }, { ip: '198.51.100.3', ipMode: 'Proxy' }, { hostname: 'lb.example.com' }),
      ),
    ],
    slices: [webSlice],
    virtualServers: {
      'TCP 10.96.0.10:80': vs(servers),
      'TCP 198.51.100.1:80': vs(servers),
      'TCP 198.51.100.2:80': vs(servers),
      'TCP 192.168.1.10:30080': vs(servers),
    },
    ipsets: {
      ...CLUSTER,
      'KUBE-IPVS-IPS': ['10.96.0.10', '198.51.100.1', '198.51.100.2'],
      'KUBE-LOAD-BALANCER': ['198.51.100.1,tcp:80', '198.51.100.2,tcp:80'],
      'KUBE-NODE-PORT-TCP': ['30080'],
    },
    bound: ['10.96.0.10', '198.51.100.1', '198.51.100.2'],
  },
  {
    name: 'a LoadBalancer without NodePorts (allocateLoadBalancerNodePorts false) is no problem',
    services: [web({ type: 'LoadBalancer' }, lbStatus({ ip: '198.51.100.1' }))],
    virtualServers: { 'TCP 10.96.0.10:80': vs([]), 'TCP 198.51.100.1:80': vs([]) },
    ipsets: { ...CLUSTER, 'KUBE-IPVS-IPS': ['10.96.0.10', '198.51.100.1'], 'KUBE-LOAD-BALANCER': ['198.51.100.1,tcp:80'] },
    bound: ['10.96.0.10', '198.51.100.1'],
  },
  {
    name: 'a LoadBalancer with externalTrafficPolicy Local: KUBE-LOAD-BALANCER-LOCAL, local endpoints, and its health check node port',
    services: [
      web(
        { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 32000, ports: [{ name: 'http', port: 80, nodePort: 30080 }] },
        lbStatus({ ip: '198.51.100.1' }),
      ),
    ],
    slices: [mixedSlice],
    virtualServers: {
      'TCP 10.96.0.10:80': vs([...localServers, ...servers]),
      'TCP 198.51.100.1:80': vs(localServers),
      'TCP 192.168.1.10:30080': vs(localServers),
    },
    ipsets: {
      ...CLUSTER,
      'KUBE-HEALTH-CHECK-NODE-PORT': ['32000'],
      'KUBE-IPVS-IPS': ['10.96.0.10', '198.51.100.1'],
      'KUBE-LOAD-BALANCER': ['198.51.100.1,tcp:80'],
      'KUBE-LOAD-BALANCER-LOCAL': ['198.51.100.1,tcp:80'],
      'KUBE-LOOP-BACK': ['10.244.0.5,tcp:8080,10.244.0.5'],
      'KUBE-NODE-PORT-TCP': ['30080'],
      'KUBE-NODE-PORT-LOCAL-TCP': ['30080'],
    },
    bound: ['10.96.0.10', '198.51.100.1'],
  },
  {
    name: 'loadBalancerSourceRanges put the IP in KUBE-LOAD-BALANCER-FW and each range in -SOURCE-CIDR (host bits cleared, other family left out)',
    services: [web({ type: 'LoadBalancer', loadBalancerSourceRanges: ['203.0.113.0/24', ' 10.1.2.3/8 ', '2001:db8::/32'] }, lbStatus({ ip: '198.51.100.1' }))],
    virtualServers: { 'TCP 10.96.0.10:80': vs([]), 'TCP 198.51.100.1:80': vs([]) },
    ipsets: {
      ...CLUSTER,
      'KUBE-IPVS-IPS': ['10.96.0.10', '198.51.100.1'],
      'KUBE-LOAD-BALANCER': ['198.51.100.1,tcp:80'],
      'KUBE-LOAD-BALANCER-FW': ['198.51.100.1,tcp:80'],
      'KUBE-LOAD-BALANCER-SOURCE-CIDR': ['198.51.100.1,tcp:80,10.0.0.0/8', '198.51.100.1,tcp:80,203.0.113.0/24'],
    },
    bound: ['10.96.0.10', '198.51.100.1'],
  },
  {
    name: 'a source range holding a node address lets the node in: (lbIP, port, lbIP) in KUBE-LOAD-BALANCER-SOURCE-IP',
    services: [web({ type: 'LoadBalancer', loadBalancerSourceRanges: ['192.168.0.0/16'] }, lbStatus({ ip: '198.51.100.1' }))],
    virtualServers: { 'TCP 10.96.0.10:80': vs([]), 'TCP 198.51.100.1:80': vs([]) },
    ipsets: {
      ...CLUSTER,
      'KUBE-IPVS-IPS': ['10.96.0.10', '198.51.100.1'],
      'KUBE-LOAD-BALANCER': ['198.51.100.1,tcp:80'],
      'KUBE-LOAD-BALANCER-FW': ['198.51.100.1,tcp:80'],
      'KUBE-LOAD-BALANCER-SOURCE-CIDR': ['198.51.100.1,tcp:80,192.168.0.0/16'],
      'KUBE-LOAD-BALANCER-SOURCE-IP': ['198.51.100.1,tcp:80,198.51.100.1'],
    },
    bound: ['10.96.0.10', '198.51.100.1'],
  },
  {
    name: 'a /0 source range means every source: no firewall entries (kube-proxy IsZeroCIDR)',
    services: [web({ type: 'LoadBalancer', loadBalancerSourceRanges: ['203.0.113.0/24', '0.0.0.0/0'] }, lbStatus({ ip: '198.51.100.1' }))],
    virtualServers: { 'TCP 10.96.0.10:80': vs([]), 'TCP 198.51.100.1:80': vs([]) },
    ipsets: { ...CLUSTER, 'KUBE-IPVS-IPS': ['10.96.0.10', '198.51.100.1'], 'KUBE-LOAD-BALANCER': ['198.51.100.1,tcp:80'] },
    bound: ['10.96.0.10', '198.51.100.1'],
  },
  {
    name: 'session affinity applies to every virtual server of the port',
    services: [
      web(
        { type: 'LoadBalancer', sessionAffinity: 'ClientIP', externalIPs: ['203.0.113.7'], ports: [{ name: 'http', port: 80, nodePort: 30080 }] },
        lbStatus({ ip: '198.51.100.1' }),
      ),
    ],
    virtualServers: {
      'TCP 10.96.0.10:80': vs([], 'rr flags=0x1 timeout=10800 netmask=32'),
      'TCP 203.0.113.7:80': vs([], 'rr flags=0x1 timeout=10800 netmask=32'),
      'TCP 198.51.100.1:80': vs([], 'rr flags=0x1 timeout=10800 netmask=32'),
      'TCP 192.168.1.10:30080': vs([], 'rr flags=0x1 timeout=10800 netmask=32'),
    },
    ipsets: {
      ...CLUSTER,
      'KUBE-EXTERNAL-IP': ['203.0.113.7,tcp:80'],
      'KUBE-IPVS-IPS': ['10.96.0.10', '198.51.100.1', '203.0.113.7'],
      'KUBE-LOAD-BALANCER': ['198.51.100.1,tcp:80'],
      'KUBE-NODE-PORT-TCP': ['30080'],
    },
    bound: ['10.96.0.10', '198.51.100.1', '203.0.113.7'],
  },
  {
    name: '--ipvs-exclude-cidrs leaves out external, load balancer and node addresses inside them, and their entries',
    node: TWO_ADDRESS_NODE,
    settings: settings({ excludeCidrs: ['10.0.0.0/8', '198.51.100.1'] }),
    services: [
      web(
        {
          clusterIP: '172.30.0.10',
          type: 'LoadBalancer',
          externalIPs: ['10.9.9.9', '203.0.113.7'],
          ports: [{ name: 'sig', port: 3868, protocol: 'SCTP', nodePort: 30868 }],
        },
        lbStatus({ ip: '198.51.100.1' }, { ip: '198.51.100.2' }),
      ),
    ],
    virtualServers: {
      'SCTP 172.30.0.10:3868': { service: RR_V4, owner: 'default/web:sig', realServers: [] },
      'SCTP 203.0.113.7:3868': { service: RR_V4, owner: 'default/web:sig', realServers: [] },
      'SCTP 198.51.100.2:3868': { service: RR_V4, owner: 'default/web:sig', realServers: [] },
      'SCTP 192.168.1.10:30868': { service: RR_V4, owner: 'default/web:sig', realServers: [] },
    },
    ipsets: {
      'KUBE-CLUSTER-IP': ['172.30.0.10,sctp:3868'],
      'KUBE-EXTERNAL-IP': ['203.0.113.7,sctp:3868'],
      'KUBE-IPVS-IPS': ['172.30.0.10', '198.51.100.2', '203.0.113.7'],
      'KUBE-LOAD-BALANCER': ['198.51.100.2,sctp:3868'],
      'KUBE-NODE-PORT-SCTP-HASH': ['192.168.1.10,sctp:30868'],
    },
    bound: ['172.30.0.10', '198.51.100.2', '203.0.113.7'],
  },
];

describe('translate: NodePort, external IPs, load balancers', () => {
  it.each(cases)('$name', (testCase) => {
    expectTranslation(testCase);
  });
});
