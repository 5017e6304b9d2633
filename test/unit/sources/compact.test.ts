import { describe, expect, it } from 'vitest';
import { compactEndpointSlice, compactService } from '../../../src/sources/compact.js';
import type { EndpointSlice, Service } from '../../../src/model/kubernetes.js';
import { asJson, endpointAsRead as asRead } from '../../support/read-endpoints.js';

const asService = (object: object): Service => object as Service;
const asSlice = (object: object): EndpointSlice => object as EndpointSlice;

describe('compact objects', () => {
  it('keeps every field translation reads and drops the rest', () => {
    const service = compactService(
      asService({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: {
          name: 'web',
          namespace: 'shop',
          uid: 'u',
          resourceVersion: '7',
          creationTimestamp: '2024-01-01T00:00:00Z',
          labels: { app: 'web' },
          annotations: { 'kipvs.io/scheduler': 'wrr', 'kubectl.kubernetes.io/last-applied-configuration': '{"huge":true}' },
          managedFields: [{ manager: 'kubectl' }],
        },
        spec: {
          type: 'LoadBalancer',
          clusterIP: '10.96.0.10',
          clusterIPs: ['10.96.0.10'],
          ipFamilies: ['IPv4'],
          selector: { app: 'web' },
          ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 'http', nodePort: 30080, appProtocol: 'http' }],
          externalIPs: ['192.0.2.7'],
          loadBalancerSourceRanges: ['203.0.113.0/24'],
          externalTrafficPolicy: 'Local',
          internalTrafficPolicy: 'Cluster',
          healthCheckNodePort: 30999,
          sessionAffinity: 'ClientIP',
          sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } },
        },
        status: { loadBalancer: { ingress: [{ ip: '192.0.2.1', ipMode: 'VIP', ports: [] }, { hostname: 'lb.example.com' }] }, conditions: [] },
      }),
    );
    expect(service).toEqual({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: 'shop', resourceVersion: '7', labels: { app: 'web' }, annotations: { 'kipvs.io/scheduler': 'wrr' } },
      spec: {
        type: 'LoadBalancer',
        clusterIP: '10.96.0.10',
        clusterIPs: ['10.96.0.10'],
        ipFamilies: ['IPv4'],
        ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 'http', nodePort: 30080 }],
        externalIPs: ['192.0.2.7'],
        loadBalancerSourceRanges: ['203.0.113.0/24'],
        externalTrafficPolicy: 'Local',
        internalTrafficPolicy: 'Cluster',
        healthCheckNodePort: 30999,
        sessionAffinity: 'ClientIP',
        sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } },
      },
      status: { loadBalancer: { ingress: [{ ip: '192.0.2.1', ipMode: 'VIP' }, { hostname: 'lb.example.com' }] } },
    });
  });

  it('keeps an endpoint as translation and the names record read it, and shares repeated values', () => {
    const endpoint = (address: string): object => ({
      addresses: [address],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: ['node', 'b'].join('-'),
      zone: 'z1',
      hostname: 'web-0',
      targetRef: { kind: 'Pod', name: 'web-0', namespace: 'shop', uid: 'u' },
      hints: { forZones: [{ name: 'z1' }] },
      deprecatedTopology: { a: 'b' },
    });
    const slice = compactEndpointSlice(
      asSlice({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: 's', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' }, generateName: 'web-' },
        addressType: 'IPv4',
        endpoints: [endpoint('10.244.0.1'), endpoint('10.244.0.2')],
        ports: [{ name: 'http', protocol: 'TCP', port: 8080, appProtocol: 'http' }],
      }),
    );
    expect(asJson(slice)).toEqual({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 's', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      endpoints: ['10.244.0.1', '10.244.0.2'].map((address) => ({
        addresses: [address],
        conditions: { ready: true, serving: true, terminating: false },
        nodeName: 'node-b',
        zone: 'z1',
        targetRef: { kind: 'Pod', name: 'web-0', namespace: 'shop' },
        hints: { forZones: [{ name: 'z1' }] },
      })),
      ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
    });
    const [first, second] = slice.endpoints ?? [];
    // The usual shape is kept compact: no address list or targetRef object of its own.
    expect(Object.hasOwn(first ?? {}, 'addresses') || Object.hasOwn(first ?? {}, 'targetRef')).toBe(false);
    expect(first?.conditions).toBe(second?.conditions);
    expect(Object.isFrozen(first?.conditions)).toBe(true);
  });

  it('passes values of the wrong type through, for translation to report', () => {
    const slice = compactEndpointSlice(
      asSlice({
        metadata: { name: 's' },
        addressType: 'FQDN',
        endpoints: [{ addresses: 'not-a-list', conditions: { ready: 'yes' } }, 7],
        ports: null,
      }),
    );
    expect(slice).toEqual({
      metadata: { name: 's' },
      addressType: 'FQDN',
      endpoints: [{ addresses: 'not-a-list', conditions: { ready: 'yes' } }, 7],
      ports: null,
    });
    expect(compactService(asService({ metadata: { name: 'x' }, spec: 'broken' }))).toEqual({ metadata: { name: 'x' }, spec: 'broken' });
  });

  it('reads every endpoint shape as it was parsed, the usual one compact or not', () => {
    const conditions = { ready: true };
    const shapes: object[] = [
      { addresses: ['10.244.0.1'], conditions },
      { addresses: ['10.244.0.1'], conditions, targetRef: { kind: 'Pod', name: 'web-0' } },
      { addresses: ['10.244.0.1'], conditions, targetRef: { kind: 'Pod', name: 'web-0', namespace: 'other' }, nodeName: 'n', zone: 'z' },
      { addresses: ['10.244.0.1', '10.244.0.2'], conditions, targetRef: { kind: 'Pod', name: 'web-0', namespace: 'shop' } },
      { addresses: ['10.244.0.1'], conditions, targetRef: { kind: 'Node', name: 'n', namespace: 'shop' } },
      { addresses: ['10.244.0.1'], conditions, targetRef: { kind: 'Pod' } },
      { addresses: ['10.244.0.1'], conditions, targetRef: { kind: 'Pod', name: 'web-0', namespace: 7 } },
      { addresses: ['10.244.0.1'], conditions, targetRef: null },
      { addresses: [7], conditions },
      { addresses: [], conditions },
    ];
    const slice = compactEndpointSlice(asSlice({ metadata: { name: 's', namespace: 'shop' }, addressType: 'IPv4', endpoints: shapes }));
    const expected = shapes.map((shape) => {
      const { addresses, targetRef } = shape as { addresses: unknown; targetRef?: unknown };
      return {
        addresses,
        conditions,
        nodeName: (shape as { nodeName?: string }).nodeName,
        zone: (shape as { zone?: string }).zone,
        // A targetRef keeps kind, name and namespace, each present even when absent in the input.
        targetRef: typeof targetRef === 'object' && targetRef !== null ? { kind: undefined, name: undefined, namespace: undefined, ...targetRef } : targetRef,
        hints: undefined,
      };
    });
    expect(slice.endpoints?.map(asRead)).toStrictEqual(expected);
    // Read twice, a compact endpoint answers the same.
    expect(slice.endpoints?.map(asRead)).toStrictEqual(expected);
  });
});
