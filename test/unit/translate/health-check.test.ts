import { describe, expect, it } from 'vitest';
import type { EndpointSlice, Service } from '../../../src/model/kubernetes.js';
import { healthCheckKey, healthCheckOf } from '../../../src/translate/health-check.js';
import { DUAL_NODE, NODE, sliceLabels } from './fixtures.js';
import { defined } from '../../support/defined.js';

const lb = (spec: Partial<NonNullable<Service['spec']>> = {}, metadata: Partial<Service['metadata']> = {}): Service => ({
  metadata: { name: 'web', namespace: 'shop', ...metadata },
  spec: {
    type: 'LoadBalancer',
    clusterIP: '10.96.0.10',
    externalTrafficPolicy: 'Local',
    healthCheckNodePort: 32000,
    ports: [{ name: 'http', port: 80, nodePort: 30080 }],
    ...spec,
  },
});

const slice = (name: string, endpoints: EndpointSlice['endpoints'], extra: Partial<EndpointSlice> = {}): EndpointSlice => ({
  metadata: { name, namespace: 'shop', labels: sliceLabels('web') },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints,
  ...extra,
});

const local = (address: string, conditions?: Record<string, boolean>) => ({ addresses: [address], nodeName: 'node-a', ...(conditions ? { conditions } : {}) });
const remote = (address: string) => ({ addresses: [address], nodeName: 'node-b', conditions: { ready: true } });

describe('healthCheckOf', () => {
  it('counts the ready endpoints on this node, not remote, unready or terminating ones', () => {
    const slices = [
      slice('web-1', [
        local('10.244.1.2', { ready: true }),
        local('10.244.1.3'), // readiness unknown counts as ready, as in kube-proxy
        remote('10.244.2.2'),
        local('10.244.1.4', { ready: false }),
        local('10.244.1.5', { ready: false, serving: true, terminating: true }),
      ]),
    ];
    expect(healthCheckOf(lb(), slices, NODE)).toEqual({ namespace: 'shop', name: 'web', port: 32000, localEndpoints: 2 });
  });

  it('counts an address once across ports and slices', () => {
    const slices = [
      slice('web-1', [local('10.244.1.2', { ready: true })], {
        ports: [
          { name: 'http', port: 8080, protocol: 'TCP' },
          { name: 'metrics', port: 9090, protocol: 'TCP' },
        ],
      }),
      slice('web-2', [local('10.244.1.2', { ready: true }), local('10.244.1.9', { ready: true })]),
    ];
    expect(healthCheckOf(lb(), slices, NODE)?.localEndpoints).toBe(2);
  });

  it('reports zero local endpoints when every endpoint is elsewhere or there are no slices', () => {
    expect(healthCheckOf(lb(), [slice('web-1', [remote('10.244.2.2')])], NODE)?.localEndpoints).toBe(0);
    expect(healthCheckOf(lb(), [], NODE)).toEqual({ namespace: 'shop', name: 'web', port: 32000, localEndpoints: 0 });
  });

  it('ignores slices of other Services and endpoints of a slice without ports', () => {
    const other: EndpointSlice = {
      ...slice('api-1', [local('10.244.1.7', { ready: true })]),
      metadata: { name: 'api-1', namespace: 'shop', labels: sliceLabels('api') },
    };
    const otherNamespace: EndpointSlice = {
      ...slice('web-x', [local('10.244.1.8', { ready: true })]),
      metadata: { name: 'web-x', namespace: 'prod', labels: sliceLabels('web') },
    };
    const portless = slice('web-3', [local('10.244.1.6', { ready: true })], { ports: [] });
    expect(healthCheckOf(lb(), [other, otherNamespace, portless], NODE)?.localEndpoints).toBe(0);
  });

  it('counts the pods of a dual-stack Service once, not once per family', () => {
    const service = lb({ clusterIPs: ['10.96.0.10', 'fd00::10'], ipFamilies: ['IPv4', 'IPv6'] });
    const slices = [
      slice('web-v4', [local('10.244.1.2', { ready: true }), local('10.244.1.3', { ready: true })]),
      slice('web-v6', [local('fd00:244::2', { ready: true })], { addressType: 'IPv6' }),
    ];
    expect(healthCheckOf(service, slices, DUAL_NODE)?.localEndpoints).toBe(2);
  });

  it('needs a LoadBalancer with externalTrafficPolicy Local and a valid healthCheckNodePort', () => {
    const cases: [string, Service][] = [
      ['ClusterIP', lb({ type: 'ClusterIP', externalTrafficPolicy: undefined, ports: [{ port: 80 }] })],
      ['NodePort with policy Local', lb({ type: 'NodePort' })],
      ['LoadBalancer with policy Cluster', lb({ externalTrafficPolicy: 'Cluster' })],
      ['no healthCheckNodePort', lb({ healthCheckNodePort: undefined })],
      ['healthCheckNodePort out of range', lb({ healthCheckNodePort: 70000 })],
      ['headless', lb({ clusterIP: 'None' })],
      ['ExternalName', lb({ type: 'ExternalName', externalName: 'example.com' })],
      ['no valid ports', lb({ ports: [{ port: 0 }] })],
      ['only a family the node lacks', lb({ clusterIP: 'fd00::10' })],
      ['no name', lb({}, { name: '' })],
      ['no type (ClusterIP)', lb({ type: undefined })],
      ['a type of another case', lb({ type: 'loadBalancer' })],
      ['a spec that is no object', { metadata: { name: 'web', namespace: 'shop' }, spec: 'LoadBalancer' } as unknown as Service],
    ];
    for (const [why, service] of cases) expect(healthCheckOf(service, [slice('web-1', [local('10.244.1.2')])], NODE), why).toBeUndefined();
  });

  it('takes a missing namespace as default, and keys checks by namespace/name', () => {
    const service: Service = { ...lb(), metadata: { name: 'web' } };
    const defaultSlice: EndpointSlice = { ...slice('web-1', [local('10.244.1.2')]), metadata: { name: 'web-1', labels: sliceLabels('web') } };
    const check = healthCheckOf(service, [defaultSlice], NODE);
    expect(check).toEqual({ namespace: 'default', name: 'web', port: 32000, localEndpoints: 1 });
    expect(healthCheckKey(defined(check, 'a health check'))).toBe('default/web');
  });

  it('has no local endpoints when the node has no name', () => {
    expect(healthCheckOf(lb(), [slice('web-1', [local('10.244.1.2', { ready: true })])], { ...NODE, name: '' })?.localEndpoints).toBe(0);
  });
});
