// Invalid objects: each problem names the object and the reason; the rest of that Service and
// every other Service keep working. Every case translates a good Service next to the bad one.
import { describe, it } from 'vitest';
import type { TranslationProblem } from '../../../src/model/desired.js';
import type { EndpointSlice, Service } from '../../../src/model/kubernetes.js';
import { DUAL_NODE, RR_V4, endpoint, expectTranslation, service, slice, type TableVirtualServer } from './fixtures.js';

const good = service('good', { clusterIP: '10.96.0.1', ports: [{ name: 'https', port: 443 }] });
const goodSlice = slice('good-1', 'good', { endpoints: [endpoint('10.244.5.5')], ports: [{ name: 'https', port: 8443 }] });
const GOOD_VS = { 'TCP 10.96.0.1:443': { service: RR_V4, owner: 'default/good:https', realServers: ['10.244.5.5:8443 masq w=1'] } };

const bad = (spec: Record<string, unknown>, metadata: Record<string, unknown> = {}, status?: Record<string, unknown>): Service =>
  service('bad', { clusterIP: '10.96.0.2', ports: [{ name: 'http', port: 80 }], ...spec }, metadata, status);
const badVs = (owner = 'default/bad:http', realServers: string[] = []): TableVirtualServer => ({ service: RR_V4, owner, realServers });
const problem = (reason: string, object = 'default/bad'): TranslationProblem => ({ object, reason });
const lbStatus = (...ingress: Record<string, unknown>[]) => ({ loadBalancer: { ingress } });

interface InvalidCase {
  readonly name: string;
  readonly bad: Service;
  readonly slices?: readonly EndpointSlice[];
  readonly dualStackNode?: boolean;
  /** What survives of the bad Service. */
  readonly virtualServers: Record<string, TableVirtualServer>;
  /** The bad Service's non-empty sets besides KUBE-CLUSTER-IP and KUBE-IPVS-IPS. */
  readonly otherIpsets?: Record<string, readonly string[]>;
  readonly clusterIpEntries: readonly string[];
  readonly bound: readonly string[];
  readonly problems: readonly TranslationProblem[];
}

const clusterIpOnly = { virtualServers: { 'TCP 10.96.0.2:80': badVs() }, clusterIpEntries: ['10.96.0.2,tcp:80'], bound: ['10.96.0.2'] };
const nothing = { virtualServers: {}, clusterIpEntries: [], bound: [] };

const cases: InvalidCase[] = [
  {
    name: 'missing metadata.name',
    bad: bad({}, { name: undefined }),
    ...nothing,
    problems: [problem('metadata.name is missing; Service ignored', 'default/(unnamed)')],
  },
  { name: 'clusterIP not set', bad: bad({ clusterIP: undefined }), ...nothing, problems: [problem('spec.clusterIP is not set; Service ignored')] },
  {
    name: 'clusterIP not an IP',
    bad: bad({ clusterIP: '10.96.0.300' }),
    ...nothing,
    problems: [problem('clusterIP "10.96.0.300" is not a valid IP address; ignored')],
  },
  {
    name: 'clusterIPs with two addresses of one family: the first is used',
    bad: bad({ clusterIPs: ['10.96.0.2', '10.96.0.3'] }),
    ...clusterIpOnly,
    problems: [problem('clusterIPs has more than one IPv4 address; 10.96.0.3 ignored')],
  },
  {
    name: 'clusterIPs with a bad second address: the first is used',
    bad: bad({ clusterIPs: ['10.96.0.2', 'fd00::zz'] }),
    dualStackNode: true,
    ...clusterIpOnly,
    problems: [problem('clusterIP "fd00::zz" is not a valid IP address; ignored')],
  },
  {
    name: 'unknown type is read as ClusterIP',
    bad: bad({ type: 'Magic' }),
    ...clusterIpOnly,
    problems: [problem('spec.type "Magic" is not ClusterIP, NodePort, LoadBalancer or ExternalName; ClusterIP used')],
  },
  {
    name: 'port 0, port above 65535 and a port that is a string skip those ports only',
    bad: bad({
      ports: [
        { name: 'zero', port: 0 },
        { name: 'big', port: 70000 },
        { name: 'text', port: '81' },
        { name: 'http', port: 80 },
      ],
    }),
    ...clusterIpOnly,
    problems: [
      problem('port "zero": port 0 is not in 1..65535; port skipped'),
      problem('port "big": port 70000 is not in 1..65535; port skipped'),
      problem('port "text": port "81" is not in 1..65535; port skipped'),
    ],
  },
  {
    name: 'an unknown protocol skips that port only',
    bad: bad({
      ports: [
        { name: 'ping', port: 7, protocol: 'ICMP' },
        { name: 'http', port: 80 },
      ],
    }),
    ...clusterIpOnly,
    problems: [problem('port "ping": protocol "ICMP" is not TCP, UDP or SCTP; port skipped')],
  },
  {
    name: 'nodePort 0 on a NodePort Service skips the NodePort part only',
    bad: bad({ type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 0 }] }),
    ...clusterIpOnly,
    problems: [problem('port "http": nodePort is not set; NodePort skipped')],
  },
  {
    name: 'nodePort above 65535 skips the NodePort part only',
    bad: bad({ type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 70000 }] }),
    ...clusterIpOnly,
    problems: [problem('port "http": nodePort 70000 is not in 1..65535; NodePort skipped')],
  },
  {
    name: 'a nodePort on a ClusterIP Service is ignored',
    bad: bad({ ports: [{ name: 'http', port: 80, nodePort: 30080 }] }),
    ...clusterIpOnly,
    problems: [problem('port "http": nodePort 30080 is only valid for type NodePort or LoadBalancer; ignored')],
  },
  {
    name: 'bad, duplicate and unusable external IPs are ignored one by one',
    bad: bad({ externalIPs: ['203.0.113.7', 'not-an-ip', '203.0.113.07', '203.0.113.7', '2001:db8::7'] }),
    virtualServers: { 'TCP 10.96.0.2:80': badVs(), 'TCP 203.0.113.7:80': badVs() },
    otherIpsets: { 'KUBE-EXTERNAL-IP': ['203.0.113.7,tcp:80'] },
    clusterIpEntries: ['10.96.0.2,tcp:80'],
    bound: ['10.96.0.2', '203.0.113.7'],
    problems: [
      problem('externalIP "not-an-ip" is not a valid IP address; ignored'),
      problem('externalIP "203.0.113.07" is not a valid IP address; ignored'),
      problem('externalIP 203.0.113.7 is listed twice; the duplicate is ignored'),
      problem('externalIP 2001:db8::7 is IPv6, which this node does not have; ignored'),
    ],
  },
  {
    name: 'an external IP of a family the Service has no clusterIP of is ignored',
    bad: bad({ externalIPs: ['2001:db8::7'] }),
    dualStackNode: true,
    ...clusterIpOnly,
    problems: [problem('externalIP 2001:db8::7 is IPv6 but the Service has no IPv6 clusterIP; ignored')],
  },
  {
    name: 'bad load balancer ingress IPs and unknown ipModes are ignored',
    bad: bad({ type: 'LoadBalancer' }, {}, lbStatus({ ip: '198.51.100.1' }, { ip: '198.51.100.x' }, { ip: '198.51.100.2', ipMode: 'Tunnel' })),
    virtualServers: { 'TCP 10.96.0.2:80': badVs(), 'TCP 198.51.100.1:80': badVs() },
    otherIpsets: { 'KUBE-LOAD-BALANCER': ['198.51.100.1,tcp:80'] },
    clusterIpEntries: ['10.96.0.2,tcp:80'],
    bound: ['10.96.0.2', '198.51.100.1'],
    problems: [
      problem('load balancer ingress "198.51.100.2" has unknown ipMode "Tunnel"; ignored'),
      problem('load balancer ingress IP "198.51.100.x" is not a valid IP address; ignored'),
    ],
  },
  {
    name: 'a bad source range is ignored; the good ones still filter',
    bad: bad({ type: 'LoadBalancer', loadBalancerSourceRanges: ['203.0.113.0/24', '203.0.113.0/33', '203.0.113.0'] }, {}, lbStatus({ ip: '198.51.100.1' })),
    virtualServers: { 'TCP 10.96.0.2:80': badVs(), 'TCP 198.51.100.1:80': badVs() },
    otherIpsets: {
      'KUBE-LOAD-BALANCER': ['198.51.100.1,tcp:80'],
      'KUBE-LOAD-BALANCER-FW': ['198.51.100.1,tcp:80'],
      'KUBE-LOAD-BALANCER-SOURCE-CIDR': ['198.51.100.1,tcp:80,203.0.113.0/24'],
    },
    clusterIpEntries: ['10.96.0.2,tcp:80'],
    bound: ['10.96.0.2', '198.51.100.1'],
    problems: [
      problem('loadBalancerSourceRanges entry "203.0.113.0/33" is not a valid CIDR; ignored'),
      problem('loadBalancerSourceRanges entry "203.0.113.0" is not a valid CIDR; ignored'),
    ],
  },
  {
    name: 'unknown traffic policies and session affinity fall back to Cluster and None',
    bad: bad({ externalIPs: ['203.0.113.7'], externalTrafficPolicy: 'Nearby', internalTrafficPolicy: 'Node', sessionAffinity: 'Cookie' }),
    virtualServers: { 'TCP 10.96.0.2:80': badVs(), 'TCP 203.0.113.7:80': badVs() },
    otherIpsets: { 'KUBE-EXTERNAL-IP': ['203.0.113.7,tcp:80'] },
    clusterIpEntries: ['10.96.0.2,tcp:80'],
    bound: ['10.96.0.2', '203.0.113.7'],
    problems: [
      problem('externalTrafficPolicy "Nearby" is not Cluster or Local; Cluster used'),
      problem('internalTrafficPolicy "Node" is not Cluster or Local; Cluster used'),
      problem('sessionAffinity "Cookie" is not None or ClientIP; None used'),
    ],
  },
  {
    name: 'an affinity timeout out of range uses the default',
    bad: bad({ sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 0 } } }),
    virtualServers: { 'TCP 10.96.0.2:80': { ...badVs(), service: 'rr flags=0x1 timeout=10800 netmask=32' } },
    clusterIpEntries: ['10.96.0.2,tcp:80'],
    bound: ['10.96.0.2'],
    problems: [problem('sessionAffinityConfig.clientIP.timeoutSeconds 0 is not in 1..86400; 10800 used')],
  },
  {
    name: 'a LoadBalancer with externalTrafficPolicy Local and no healthCheckNodePort still works',
    bad: bad({ type: 'LoadBalancer', externalTrafficPolicy: 'Local' }, {}, lbStatus({ ip: '198.51.100.1' })),
    virtualServers: { 'TCP 10.96.0.2:80': badVs(), 'TCP 198.51.100.1:80': badVs() },
    otherIpsets: { 'KUBE-LOAD-BALANCER': ['198.51.100.1,tcp:80'], 'KUBE-LOAD-BALANCER-LOCAL': ['198.51.100.1,tcp:80'] },
    clusterIpEntries: ['10.96.0.2,tcp:80'],
    bound: ['10.96.0.2', '198.51.100.1'],
    problems: [problem('healthCheckNodePort undefined is not in 1..65535; no health check port')],
  },
  {
    name: 'two ports of one Service on the same port and protocol: the first keeps the virtual server',
    bad: bad({
      ports: [
        { name: 'http', port: 80 },
        { name: 'web', port: 80 },
      ],
    }),
    ...clusterIpOnly,
    problems: [problem('port "web" (clusterIP): virtual server TCP 10.96.0.2:80 duplicates the one of port "http" (clusterIP); skipped')],
  },
  {
    name: 'an external IP equal to the clusterIP duplicates its virtual server',
    bad: bad({ externalIPs: ['10.96.0.2'] }),
    virtualServers: { 'TCP 10.96.0.2:80': badVs() },
    otherIpsets: { 'KUBE-EXTERNAL-IP': ['10.96.0.2,tcp:80'] },
    clusterIpEntries: ['10.96.0.2,tcp:80'],
    bound: ['10.96.0.2'],
    problems: [problem('port "http" (externalIP): virtual server TCP 10.96.0.2:80 duplicates the one of port "http" (clusterIP); skipped')],
  },
  {
    name: 'malformed kipvs.io/weights: weights ignored, Service works',
    bad: bad({}, { annotations: { 'kipvs.io/weights': 'a=1,b=70000' } }),
    slices: [slice('bad-1', 'bad', { endpoints: [endpoint('10.244.1.5', { targetRef: { name: 'a' } })], ports: [{ name: 'http', port: 8080 }] })],
    virtualServers: { 'TCP 10.96.0.2:80': badVs('default/bad:http', ['10.244.1.5:8080 masq w=1']) },
    clusterIpEntries: ['10.96.0.2,tcp:80'],
    bound: ['10.96.0.2'],
    problems: [problem('annotation kipvs.io/weights "a=1,b=70000" is malformed: weight "70000" of "b" is not an integer in 0..65535; weights ignored')],
  },
  {
    name: 'kipvs.io/weights naming one endpoint twice is malformed',
    bad: bad({}, { annotations: { 'kipvs.io/weights': 'fd00::1=2,FD00:0::1=3' } }),
    ...clusterIpOnly,
    problems: [problem('annotation kipvs.io/weights "fd00::1=2,FD00:0::1=3" is malformed: "FD00:0::1" is named twice; weights ignored')],
  },
  {
    name: 'a scheduler annotation that is not a string uses the default',
    bad: bad({}, { annotations: { 'kipvs.io/scheduler': 7 } }),
    ...clusterIpOnly,
    problems: [problem('annotation kipvs.io/scheduler 7 is not an IPVS scheduler (rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos); rr used')],
  },
];

describe('translate: invalid objects', () => {
  it.each(cases)('$name', (testCase) => {
    const otherIpsets = testCase.otherIpsets ?? {};
    const ipsets: Record<string, readonly string[]> = {
      'KUBE-CLUSTER-IP': [...testCase.clusterIpEntries, '10.96.0.1,tcp:443'].sort(),
      'KUBE-IPVS-IPS': [...testCase.bound, '10.96.0.1'].filter((address) => !address.includes(':')).sort(),
      ...otherIpsets,
    };
    expectTranslation({
      name: testCase.name,
      node: testCase.dualStackNode ? DUAL_NODE : undefined,
      services: [testCase.bad, good],
      slices: [...(testCase.slices ?? []), goodSlice],
      virtualServers: { ...testCase.virtualServers, ...GOOD_VS },
      ipsets,
      bound: [...testCase.bound, '10.96.0.1'].sort(),
      problems: testCase.problems,
    });
  });
});
