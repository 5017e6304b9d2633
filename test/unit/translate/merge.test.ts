// Merging per-Service translations: every kube-proxy ipset per node family, conflicts between
// Services, and the whole-cluster translate() being the same as translating Service by Service.
import { describe, expect, it } from 'vitest';
import { KUBE_IPSETS } from '../../../src/model/ipsets.js';
import type { EndpointSlice, Service } from '../../../src/model/kubernetes.js';
import { mergeTranslations, translate, translateService } from '../../../src/translate/translate.js';
import { DUAL_NODE, NODE, RR_V4, SETTINGS, boundAddresses, endpoint, expectTranslation, ipsetTable, service, slice, virtualServerTable } from './fixtures.js';

describe('mergeTranslations: ipsets', () => {
  it('creates every kube-proxy set of the node family, empty, with kube-proxy spec', () => {
    const state = mergeTranslations([], NODE);
    expect(Object.fromEntries([...state.ipsets].map(([name, set]) => [name, { ...set.spec, entries: set.entries.size, name: set.name === name }]))).toEqual({
      'KUBE-LOOP-BACK': { type: 'hash:ip,port,ip', family: 'inet', comment: false, entries: 0, name: true },
      'KUBE-CLUSTER-IP': { type: 'hash:ip,port', family: 'inet', comment: false, entries: 0, name: true },
      'KUBE-EXTERNAL-IP': { type: 'hash:ip,port', family: 'inet', comment: false, entries: 0, name: true },
      'KUBE-EXTERNAL-IP-LOCAL': { type: 'hash:ip,port', family: 'inet', comment: false, entries: 0, name: true },
      'KUBE-LOAD-BALANCER': { type: 'hash:ip,port', family: 'inet', comment: false, entries: 0, name: true },
      'KUBE-LOAD-BALANCER-FW': { type: 'hash:ip,port', family: 'inet', comment: false, entries: 0, name: true },
      'KUBE-LOAD-BALANCER-LOCAL': { type: 'hash:ip,port', family: 'inet', comment: false, entries: 0, name: true },
      'KUBE-LOAD-BALANCER-SOURCE-IP': { type: 'hash:ip,port,ip', family: 'inet', comment: false, entries: 0, name: true },
      'KUBE-LOAD-BALANCER-SOURCE-CIDR': { type: 'hash:ip,port,net', family: 'inet', comment: false, entries: 0, name: true },
      'KUBE-NODE-PORT-TCP': { type: 'bitmap:port', range: { from: 0, to: 65535 }, comment: false, entries: 0, name: true },
      'KUBE-NODE-PORT-LOCAL-TCP': { type: 'bitmap:port', range: { from: 0, to: 65535 }, comment: false, entries: 0, name: true },
      'KUBE-NODE-PORT-UDP': { type: 'bitmap:port', range: { from: 0, to: 65535 }, comment: false, entries: 0, name: true },
      'KUBE-NODE-PORT-LOCAL-UDP': { type: 'bitmap:port', range: { from: 0, to: 65535 }, comment: false, entries: 0, name: true },
      'KUBE-NODE-PORT-SCTP-HASH': { type: 'hash:ip,port', family: 'inet', comment: false, entries: 0, name: true },
      'KUBE-NODE-PORT-LOCAL-SCTP-HASH': { type: 'hash:ip,port', family: 'inet', comment: false, entries: 0, name: true },
      'KUBE-HEALTH-CHECK-NODE-PORT': { type: 'bitmap:port', range: { from: 0, to: 65535 }, comment: false, entries: 0, name: true },
      'KUBE-IPVS-IPS': { type: 'hash:ip', family: 'inet', comment: false, entries: 0, name: true },
    });
    expect(state.virtualServers.size).toBe(0);
    expect(state.boundAddresses.size).toBe(0);
    expect(state.problems).toEqual([]);
  });

  it('creates the IPv6 sets under KUBE-6- names on a dual-stack node', () => {
    const state = mergeTranslations([], DUAL_NODE);
    expect(state.ipsets.size).toBe(2 * Object.keys(KUBE_IPSETS).length);
    expect(state.ipsets.get('KUBE-6-CLUSTER-IP')?.spec).toEqual({ type: 'hash:ip,port', family: 'inet6', comment: false });
    expect(state.ipsets.get('KUBE-6-NODE-PORT-TCP')?.spec).toEqual({ type: 'bitmap:port', range: { from: 0, to: 65535 }, comment: false });
    expect(state.ipsets.get('KUBE-6-IPVS-IPS')?.spec).toEqual({ type: 'hash:ip', family: 'inet6', comment: false });
  });

  // ipset names hold at most 31 characters (IPSET_MAXNAMELEN 32 with the NUL); kube-proxy's
  // NewIPSet cuts the two longer IPv6 names (its log: "Ipset name truncated"). This needs
  // src/model/ipsets.ts ipsetName() to cut them the same way.
  it('names the two long IPv6 sets as kube-proxy truncates them, within 31 characters', () => {
    const state = mergeTranslations([], DUAL_NODE);
    expect(state.ipsets.get('KUBE-6-LOAD-BALANCER-SOURCE-CID')?.spec).toEqual({ type: 'hash:ip,port,net', family: 'inet6', comment: false });
    expect(state.ipsets.get('KUBE-6-NODE-PORT-LOCAL-SCTP-HAS')?.spec).toEqual({ type: 'hash:ip,port', family: 'inet6', comment: false });
    for (const name of state.ipsets.keys()) expect(name.length).toBeLessThanOrEqual(31);
  });

  it('creates only the IPv6 sets on an IPv6-only node', () => {
    const state = mergeTranslations([], { name: 'node-a', addresses: ['2001:db8::10'], families: ['inet6'] });
    expect([...state.ipsets.keys()].every((name) => name.startsWith('KUBE-6-'))).toBe(true);
    expect(state.ipsets.size).toBe(Object.keys(KUBE_IPSETS).length);
  });
});

describe('mergeTranslations: conflicts', () => {
  const a = service(
    'a',
    {
      clusterIP: '10.96.0.10',
      ports: [
        { name: 'http', port: 80 },
        { name: 'https', port: 443 },
      ],
    },
    { namespace: 'team-b' },
  );
  const b = service('b', { clusterIP: '10.96.0.10', ports: [{ name: 'web', port: 80 }] }, { namespace: 'team-a' });
  const c = service(
    'c',
    { clusterIP: '10.96.0.30', externalIPs: ['10.96.0.10'], ports: [{ name: 'http', port: 443, protocol: 'TCP' }] },
    { namespace: 'team-c' },
  );
  const slices = [
    slice(
      'a-1',
      'a',
      {
        endpoints: [endpoint('10.244.1.1')],
        ports: [
          { name: 'http', port: 8080 },
          { name: 'https', port: 8443 },
        ],
      },
      { namespace: 'team-b' },
    ),
  ];

  it('gives a contested virtual server to the Service whose namespace/name sorts first; the other is told who has it', () => {
    expectTranslation({
      name: 'conflict',
      services: [a, b, c],
      slices,
      virtualServers: {
        'TCP 10.96.0.10:80': { service: RR_V4, owner: 'team-a/b:web', realServers: [] },
        'TCP 10.96.0.10:443': { service: RR_V4, owner: 'team-b/a:https', realServers: ['10.244.1.1:8443 masq w=1'] },
        'TCP 10.96.0.30:443': { service: RR_V4, owner: 'team-c/c:http', realServers: [] },
      },
      ipsets: {
        'KUBE-CLUSTER-IP': ['10.96.0.10,tcp:443', '10.96.0.10,tcp:80', '10.96.0.30,tcp:443'],
        'KUBE-EXTERNAL-IP': ['10.96.0.10,tcp:443'],
        'KUBE-IPVS-IPS': ['10.96.0.10', '10.96.0.30'],
      },
      bound: ['10.96.0.10', '10.96.0.30'],
      problems: [
        { object: 'team-b/a', reason: 'virtual server TCP 10.96.0.10:80 is also claimed by team-a/b, which sorts first and keeps it; skipped' },
        { object: 'team-c/c', reason: 'virtual server TCP 10.96.0.10:443 is also claimed by team-b/a, which sorts first and keeps it; skipped' },
      ],
    });
  });

  it('settles conflicts the same whatever the order of the Services', () => {
    const forward = translate({ services: [a, b, c], endpointSlices: slices }, NODE, SETTINGS);
    const backward = translate({ services: [c, b, a], endpointSlices: [...slices].reverse() }, NODE, SETTINGS);
    expect(virtualServerTable(backward)).toEqual(virtualServerTable(forward));
    expect(ipsetTable(backward)).toEqual(ipsetTable(forward));
    expect(backward.problems).toEqual(forward.problems);
  });

  it('reports a Service listed twice in the snapshot and uses the first copy', () => {
    const first = service('web', { clusterIP: '10.96.0.10', ports: [{ port: 80 }] });
    const second = service('web', { clusterIP: '10.96.0.11', ports: [{ port: 80 }] });
    const state = translate({ services: [first, second], endpointSlices: [] }, NODE, SETTINGS);
    expect([...state.virtualServers.keys()]).toEqual(['TCP 10.96.0.10:80']);
    expect(state.problems).toEqual([{ object: 'default/web', reason: 'the snapshot holds this Service twice; the later copy is ignored' }]);
  });
});

describe('translate = translateService per Service + mergeTranslations', () => {
  const services: [Service, Service, Service] = [
    service('web', { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80 }] }),
    service('web', { clusterIP: '10.96.1.10', type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30080 }] }, { namespace: 'shop' }),
    service('bad', { clusterIP: 'nope', ports: [{ port: 1 }] }),
  ];
  const endpointSlices: [EndpointSlice, EndpointSlice, EndpointSlice] = [
    slice('web-1', 'web', { endpoints: [endpoint('10.244.1.5')], ports: [{ name: 'http', port: 8080 }] }),
    slice('web-1', 'web', { endpoints: [endpoint('10.244.2.5', { nodeName: 'node-a' })], ports: [{ name: 'http', port: 8080 }] }, { namespace: 'shop' }),
    slice('orphan', 'gone', { endpoints: [endpoint('10.244.3.5')], ports: [{ port: 1 }] }),
  ];

  it('groups slices by namespace and kubernetes.io/service-name, so that both ways give the same state', () => {
    const whole = translate({ services, endpointSlices }, NODE, SETTINGS);
    const incremental = mergeTranslations(
      [
        translateService(services[2], [], NODE, SETTINGS),
        translateService(services[0], [endpointSlices[0]], NODE, SETTINGS),
        translateService(services[1], [endpointSlices[1]], NODE, SETTINGS),
      ],
      NODE,
    );
    expect(incremental).toEqual(whole);
    expect(virtualServerTable(whole)).toEqual({
      'TCP 10.96.0.10:80': { service: RR_V4, owner: 'default/web:http', realServers: ['10.244.1.5:8080 masq w=1'] },
      'TCP 10.96.1.10:80': { service: RR_V4, owner: 'shop/web:http', realServers: ['10.244.2.5:8080 masq w=1'] },
      'TCP 192.168.1.10:30080': { service: RR_V4, owner: 'shop/web:http', realServers: ['10.244.2.5:8080 masq w=1'] },
    });
    expect(boundAddresses(whole)).toEqual(['10.96.0.10', '10.96.1.10']);
    expect(whole.problems).toEqual([{ object: 'default/bad', reason: 'clusterIP "nope" is not a valid IP address; ignored' }]);
  });

  it('a ServiceTranslation holds the Service own parts: virtual servers, addresses, entries by set, problems', () => {
    const translation = translateService(services[1], [endpointSlices[1]], NODE, SETTINGS);
    expect(translation.service).toBe('shop/web');
    expect([...translation.virtualServers.keys()]).toEqual(['TCP 10.96.1.10:80', 'TCP 192.168.1.10:30080']);
    expect(boundAddresses(translation)).toEqual(['10.96.1.10']);
    expect(ipsetTable(translation)).toEqual({
      'KUBE-CLUSTER-IP': ['10.96.1.10,tcp:80'],
      'KUBE-IPVS-IPS': ['10.96.1.10'],
      'KUBE-LOOP-BACK': ['10.244.2.5,tcp:8080,10.244.2.5'],
      'KUBE-NODE-PORT-TCP': ['30080'],
    });
    expect(translation.problems).toEqual([]);
  });

  it('produces the kernel objects exactly, down to each field', () => {
    const translation = translateService(
      service('web', { clusterIP: '10.96.0.10', sessionAffinity: 'ClientIP', ports: [{ name: 'http', port: 80 }] }),
      [slice('web-1', 'web', { endpoints: [endpoint('10.244.1.5')], ports: [{ name: 'http', port: 8080 }] })],
      NODE,
      SETTINGS,
    );
    expect(translation.virtualServers).toEqual(
      new Map([
        [
          'TCP 10.96.0.10:80',
          {
            service: { key: { family: 'inet', protocol: 'TCP', address: '10.96.0.10', port: 80 }, scheduler: 'rr', flags: 1, timeout: 10800, netmask: 32 },
            realServers: new Map([
              ['10.244.1.5:8080', { address: '10.244.1.5', port: 8080, family: 'inet', forwarding: 'masq', weight: 1, upperThreshold: 0, lowerThreshold: 0 }],
            ]),
            owner: { namespace: 'default', name: 'web', port: 'http' },
          },
        ],
      ]),
    );
    expect(translation.ipsetEntries).toEqual(
      new Map([
        ['KUBE-CLUSTER-IP', new Map([['10.96.0.10,tcp:80', { ip: '10.96.0.10', protocol: 'tcp', port: 80 }]])],
        ['KUBE-IPVS-IPS', new Map([['10.96.0.10', { ip: '10.96.0.10' }]])],
      ]),
    );
  });
});
