// Properties of translation over arbitrary objects: JSON that parses, with any value in any field
// (plausible ones mostly, anything JSON at times). Translation never throws, what it produces is
// well formed, a bad Service never takes anything from a good one, and order does not matter.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { canonicalAddress, familyOf } from '../../../src/ip.js';
import { ipsetEntryKey, realServerKey, virtualServerKey } from '../../../src/model/desired.js';
import type { EndpointSlice, Service } from '../../../src/model/kubernetes.js';
import type { NodeFacts, ProxySettings } from '../../../src/model/settings.js';
import { KUBE_IPSETS } from '../../../src/model/ipsets.js';
import { isFwmarkKey } from '../../../src/netlink/ipvs/types.js';
import { translate, translateService } from '../../../src/translate/translate.js';
import { identityOf } from '../../../src/translate/translation.js';
import { DEFAULT_SETTINGS } from '../../../src/model/settings.js';
import { service, slice } from './fixtures.js';

/** Mostly the plausible arbitrary, now and then any JSON value instead. */
const orAnything = <T>(plausible: fc.Arbitrary<T>): fc.Arbitrary<unknown> =>
  fc.oneof({ arbitrary: plausible, weight: 5 }, { arbitrary: fc.jsonValue(), weight: 1 });
const optional = <T>(arbitrary: fc.Arbitrary<T>) => fc.option(arbitrary, { nil: undefined });

/** Never in 10.200.0.0/16: that range is kept for the good Service of the isolation property. */
const junkIPv4 = fc.ipV4().filter((address) => !address.startsWith('10.200.'));
const address = fc.oneof(
  { arbitrary: junkIPv4, weight: 4 },
  { arbitrary: fc.ipV6(), weight: 2 },
  { arbitrary: fc.constantFrom('None', '', '10.96.0.300', 'fd00::zz', '::', '0.0.0.0', '::ffff:1.2.3.4', 'fe80::1%eth0', '010.1.1.1', ' 10.1.1.1'), weight: 1 },
  { arbitrary: fc.string({ maxLength: 8 }), weight: 1 },
);
const cidr = fc.oneof(
  fc.tuple(address, fc.integer({ min: -1, max: 130 })).map(([network, prefix]) => `${network}/${prefix}`),
  fc.string({ maxLength: 8 }),
);
/** Never 31111 or 31112: the good Service's NodePorts in the isolation property. */
const port = fc.oneof(
  fc.integer({ min: -2, max: 70000 }).filter((value) => value !== 31111 && value !== 31112),
  fc.constantFrom(0, 80, 443, 8080, 30080, 65535, 65536, 1.5),
  fc.string({ maxLength: 3 }),
);
const protocol = fc.constantFrom(undefined, 'TCP', 'UDP', 'SCTP', 'tcp', 'ICMP');
const portName = fc.constantFrom(undefined, '', 'http', 'https', 'dns');
const junkName = fc.constantFrom('a', 'b', 'web', 'api', 'zz', '', '0');
const namespace = fc.constantFrom(undefined, 'default', 'kube-system', 'prod');

const servicePort = fc.record(
  { name: orAnything(portName), protocol: orAnything(protocol), port: orAnything(port), nodePort: orAnything(port), targetPort: orAnything(port) },
  { requiredKeys: [] },
);

const arbitraryService = fc
  .record({
    name: orAnything(junkName),
    namespace: orAnything(namespace),
    annotations: optional(
      fc.record(
        {
          'kipvs.io/scheduler': orAnything(fc.constantFrom('rr', 'wrr', 'mh', 'sh', 'fastest', '')),
          'kipvs.io/weights': orAnything(fc.oneof(fc.constantFrom('a=1,b=2', '10.0.0.1=3', 'x', '=', 'a=70000', ''), fc.string({ maxLength: 12 }))),
        },
        { requiredKeys: [] },
      ),
    ),
    spec: orAnything(
      fc.record(
        {
          type: orAnything(fc.constantFrom('ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName', 'Magic')),
          clusterIP: orAnything(address),
          clusterIPs: orAnything(fc.array(address, { maxLength: 3 })),
          ports: orAnything(fc.array(servicePort, { maxLength: 4 })),
          externalIPs: orAnything(fc.array(address, { maxLength: 3 })),
          loadBalancerSourceRanges: orAnything(fc.array(cidr, { maxLength: 3 })),
          externalTrafficPolicy: orAnything(fc.constantFrom('Cluster', 'Local', 'Other')),
          internalTrafficPolicy: orAnything(fc.constantFrom('Cluster', 'Local', 'Other')),
          sessionAffinity: orAnything(fc.constantFrom('None', 'ClientIP', 'Cookie')),
          sessionAffinityConfig: orAnything(fc.record({ clientIP: orAnything(fc.record({ timeoutSeconds: orAnything(port) })) })),
          healthCheckNodePort: orAnything(port),
        },
        { requiredKeys: [] },
      ),
    ),
    ingress: orAnything(
      fc.array(
        fc.record({ ip: orAnything(address), ipMode: orAnything(fc.constantFrom('VIP', 'Proxy', 'Odd')), hostname: fc.string() }, { requiredKeys: [] }),
        { maxLength: 3 },
      ),
    ),
  })
  .map(
    ({ name, namespace, annotations, spec, ingress }) =>
      ({ metadata: { name, namespace, annotations }, spec, status: { loadBalancer: { ingress } } }) as unknown as Service,
  );

const endpointArbitrary = fc.record(
  {
    addresses: orAnything(fc.array(address, { maxLength: 2 })),
    conditions: orAnything(
      fc.record({ ready: orAnything(fc.boolean()), serving: orAnything(fc.boolean()), terminating: orAnything(fc.boolean()) }, { requiredKeys: [] }),
    ),
    nodeName: orAnything(fc.constantFrom('node-a', 'node-b')),
    targetRef: orAnything(fc.record({ name: orAnything(fc.constantFrom('a', 'b', 'web-0')) }, { requiredKeys: [] })),
  },
  { requiredKeys: [] },
);

const arbitrarySlice = fc
  .record({
    name: orAnything(fc.constantFrom('s1', 's2', 's3')),
    namespace: orAnything(namespace),
    serviceName: orAnything(junkName),
    addressType: orAnything(fc.constantFrom('IPv4', 'IPv6', 'FQDN', 'IPv5')),
    endpoints: orAnything(fc.array(endpointArbitrary, { maxLength: 4 })),
    ports: orAnything(
      fc.array(fc.record({ name: orAnything(portName), protocol: orAnything(protocol), port: orAnything(port) }, { requiredKeys: [] }), { maxLength: 3 }),
    ),
  })
  .map(
    ({ name, namespace, serviceName, addressType, endpoints, ports }) =>
      ({ metadata: { name, namespace, labels: { 'kubernetes.io/service-name': serviceName } }, addressType, endpoints, ports }) as unknown as EndpointSlice,
  );

const arbitraryNode: fc.Arbitrary<NodeFacts> = fc.record({
  name: fc.constantFrom('node-a', ''),
  addresses: fc.array(fc.oneof(fc.constantFrom('192.168.1.10', '2001:db8::10', '10.0.0.10'), junkIPv4), { maxLength: 3 }),
  families: fc.constantFrom<NodeFacts['families']>(['inet'], ['inet6'], ['inet', 'inet6']),
});

const arbitrarySettings: fc.Arbitrary<ProxySettings> = fc
  .record({ scheduler: fc.constantFrom('rr', 'lc', 'mh'), excludeCidrs: fc.array(cidr, { maxLength: 2 }) })
  .map((overrides) => ({ ...DEFAULT_SETTINGS, ...overrides }));

describe('translation properties', () => {
  it('never throws, and what it produces is well formed', () => {
    fc.assert(
      fc.property(
        fc.array(arbitraryService, { maxLength: 6 }),
        fc.array(arbitrarySlice, { maxLength: 6 }),
        arbitraryNode,
        arbitrarySettings,
        (services, endpointSlices, node, settings) => {
          const state = translate({ services, endpointSlices }, node, settings);
          expect(state.ipsets.size).toBe(Object.keys(KUBE_IPSETS).length * new Set(node.families).size);
          for (const [key, { service: virtual, realServers, owner }] of state.virtualServers) {
            expect(virtualServerKey(virtual.key)).toBe(key);
            if (isFwmarkKey(virtual.key)) throw new Error('no fwmark virtual servers are produced');
            expect(node.families).toContain(virtual.key.family);
            expect(canonicalAddress(virtual.key.address)).toBe(virtual.key.address);
            expect(virtual.key.port).toBeGreaterThanOrEqual(1);
            expect(virtual.key.port).toBeLessThanOrEqual(65535);
            expect(owner.name).not.toBe('');
            for (const [realKey, destination] of realServers) {
              expect(realServerKey(destination)).toBe(realKey);
              expect(destination.family).toBe(virtual.key.family);
              expect(destination.weight).toBeGreaterThanOrEqual(0);
            }
          }
          for (const address of state.boundAddresses) expect(node.families).toContain(familyOf(address));
          for (const [name, ipset] of state.ipsets) {
            expect(ipset.name).toBe(name);
            for (const [key, entry] of ipset.entries) expect(ipsetEntryKey(entry)).toBe(key);
          }
          for (const problem of state.problems) {
            expect(problem.object).toMatch(/^.+\/.+$/s);
            expect(problem.reason).not.toBe('');
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it('translateService never throws for any object at all', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.jsonValue(), arbitraryNode, (anyService, anySlices, node) => {
        translateService(anyService as unknown as Service, anySlices as unknown as EndpointSlice[], node, DEFAULT_SETTINGS);
        translateService(
          { metadata: { name: 'x' }, spec: anyService } as unknown as Service,
          [anySlices] as unknown as EndpointSlice[],
          node,
          DEFAULT_SETTINGS,
        );
      }),
      { numRuns: 300 },
    );
  });

  it('a bad Service never takes virtual servers, real servers or entries from a good one', () => {
    const good = service(
      'good',
      {
        type: 'NodePort',
        clusterIP: '10.200.0.10',
        externalIPs: ['10.200.0.11'],
        sessionAffinity: 'ClientIP',
        ports: [
          { name: 'http', port: 80, nodePort: 31111 },
          { name: 'dns', port: 53, protocol: 'UDP', nodePort: 31112 },
        ],
      },
      { namespace: 'prod' },
    );
    const goodSlices = [
      slice(
        'good-1',
        'good',
        {
          endpoints: [{ addresses: ['10.244.1.5'], nodeName: 'node-a' }, { addresses: ['10.244.2.5'] }],
          ports: [
            { name: 'http', port: 8080 },
            { name: 'dns', port: 5353, protocol: 'UDP' },
          ],
        },
        { namespace: 'prod' },
      ),
    ];
    const node: NodeFacts = { name: 'node-a', addresses: ['10.200.1.1'], families: ['inet', 'inet6'] };
    const alone = translate({ services: [good], endpointSlices: goodSlices }, node, DEFAULT_SETTINGS);
    expect(alone.virtualServers.size).toBe(6);
    expect(alone.problems).toEqual([]);
    fc.assert(
      fc.property(fc.array(arbitraryService, { maxLength: 6 }), fc.array(arbitrarySlice, { maxLength: 6 }), fc.boolean(), (others, otherSlices, goodFirst) => {
        const services = goodFirst ? [good, ...others] : [...others, good];
        const state = translate({ services, endpointSlices: [...otherSlices, ...goodSlices] }, node, DEFAULT_SETTINGS);
        for (const [key, virtualServer] of alone.virtualServers) expect(state.virtualServers.get(key)).toEqual(virtualServer);
        for (const address of alone.boundAddresses) expect(state.boundAddresses.has(address)).toBe(true);
        for (const [name, ipset] of alone.ipsets) {
          for (const key of ipset.entries.keys()) expect(state.ipsets.get(name)?.entries.has(key)).toBe(true);
        }
        expect(state.problems.filter((problem) => problem.object === 'prod/good' || problem.object.startsWith('prod/good-'))).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it('gives the same state whatever the order of Services and EndpointSlices', () => {
    const uniqueServices = fc.uniqueArray(arbitraryService, {
      maxLength: 6,
      selector: (candidate) => identityOf(candidate).id,
    });
    fc.assert(
      fc.property(uniqueServices, fc.array(arbitrarySlice, { maxLength: 6 }), arbitraryNode, (services, endpointSlices, node) => {
        const forward = translate({ services, endpointSlices }, node, DEFAULT_SETTINGS);
        const backward = translate({ services: [...services].reverse(), endpointSlices: [...endpointSlices].reverse() }, node, DEFAULT_SETTINGS);
        expect(new Set(backward.virtualServers.keys())).toEqual(new Set(forward.virtualServers.keys()));
        for (const [key, virtualServer] of forward.virtualServers) {
          expect(backward.virtualServers.get(key)?.owner).toEqual(virtualServer.owner);
          expect(new Set(backward.virtualServers.get(key)?.realServers.keys())).toEqual(new Set(virtualServer.realServers.keys()));
        }
        expect(backward.boundAddresses).toEqual(forward.boundAddresses);
        expect(new Set(backward.problems.map((problem) => JSON.stringify(problem)))).toEqual(
          new Set(forward.problems.map((problem) => JSON.stringify(problem))),
        );
      }),
      { numRuns: 200 },
    );
  });
});
