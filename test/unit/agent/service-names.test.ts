// The agent's record of Service names, and names computed from the API server's objects.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readServiceNamesRecord, serviceNamesFromObjects, serviceNamesPath, ServiceNamesRecorder } from '../../../src/agent/service-names.js';
import type { DesiredState, DesiredVirtualServer } from '../../../src/model/desired.js';
import type { EndpointSlice, Service } from '../../../src/model/kubernetes.js';

const virtualServer = (address: string, port: number, owner: DesiredVirtualServer['owner']): [string, DesiredVirtualServer] => [
  `TCP ${address}:${port}`,
  { service: { key: { family: 'inet', protocol: 'TCP', address, port }, scheduler: 'rr', flags: 0, timeout: 0, netmask: 32 }, realServers: new Map(), owner },
];
const desired = (entries: [string, DesiredVirtualServer][]): DesiredState => ({
  virtualServers: new Map(entries),
  boundAddresses: new Set(),
  ipsets: new Map(),
  problems: [],
});
const slice: EndpointSlice = {
  metadata: { name: 'web-abc', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
  addressType: 'IPv4',
  endpoints: [{ addresses: ['10.244.1.2'], targetRef: { kind: 'Pod', name: 'web-0', namespace: 'shop' } }, { addresses: ['10.244.1.3'] }],
};

describe('the Service names record', () => {
  let directory: string | undefined;
  afterEach(() => {
    if (directory) rmSync(directory, { recursive: true, force: true });
  });

  it('is one file per namespace beside the ownership state, by the namespace path', () => {
    expect(serviceNamesPath(undefined)).toBe('/run/kipvs/service-names.json');
    expect(serviceNamesPath('node-a')).toBe(serviceNamesPath('/run/netns/node-a'));
    expect(serviceNamesPath('node-a')).toMatch(/^\/run\/kipvs\/service-names-[0-9a-f]{12}\.json$/);
  });

  it('records virtual servers and pods, replaced whole, and reads back what it wrote', () => {
    directory = mkdtempSync(join(tmpdir(), 'kipvs-names-'));
    const path = join(directory, 'service-names.json');
    const recorder = new ServiceNamesRecorder(path);
    const state = desired([
      virtualServer('10.96.0.10', 80, { namespace: 'shop', name: 'web', port: 'http' }),
      virtualServer('192.0.2.1', 30080, { namespace: 'shop', name: 'web', port: 'http' }),
    ]);
    recorder.record(state, ['shop/web'], { serviceIds: () => ['shop/web'], slicesOf: () => [slice] }, () => new Date('2026-12-02T10:00:00Z'));
    expect(readdirSync(directory)).toEqual(['service-names.json']);
    const names = readServiceNamesRecord(path);
    expect(names).toEqual({
      virtualServers: new Map([
        ['TCP 10.96.0.10:80', 'shop/web:http'],
        ['TCP 192.0.2.1:30080', 'shop/web:http'],
      ]),
      nodePorts: new Map(),
      pods: new Map([['10.244.1.2', 'shop/web-0']]),
      source: `the agent's record ${path}, written 2026-12-02T10:00:00.000Z`,
      truncated: false,
    });
    // Nothing changed: not written again (the time stays).
    recorder.record(state, ['shop/web'], { serviceIds: () => ['shop/web'], slicesOf: () => [slice] }, () => new Date('2026-12-02T11:00:00Z'));
    expect(readFileSync(path, 'utf8')).toContain('2026-12-02T10:00:00.000Z');
    // The Service gone: its names go.
    recorder.record(desired([]), ['shop/web'], { serviceIds: () => [], slicesOf: () => [] }, () => new Date('2026-12-02T12:00:00Z'));
    expect(readServiceNamesRecord(path)).toMatchObject({ virtualServers: new Map(), pods: new Map() });
  });

  it('writes names that JSON must escape, canonical IPv6 addresses, and records larger than one piece, as JSON.stringify would', () => {
    directory = mkdtempSync(join(tmpdir(), 'kipvs-names-'));
    const path = join(directory, 'service-names.json');
    // Quotes, a backslash, a control character, an emoji (a surrogate pair), a lone surrogate, and accents (2-byte UTF-8).
    const odd = ['we"b', 'back\\slash', 'tab\tbed', 'cat-\u{1F431}', 'lone-\ud800', 'café'];
    const slices: EndpointSlice[] = odd.map((name, i) => ({
      metadata: { name: `s-${i}`, namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv6',
      endpoints: [{ addresses: [`2001:0db8:0000::${i + 1}`], targetRef: { kind: 'Pod', name, namespace: `ns-${name}` } }],
    }));
    // 3,000 pods more of long names: the record spans several 64 KB pieces.
    const many: EndpointSlice = {
      metadata: { name: 'many', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'many' } },
      addressType: 'IPv4',
      endpoints: Array.from({ length: 3000 }, (_, i) => ({
        addresses: [`10.1.${i >> 8}.${i & 255}`],
        targetRef: { kind: 'Pod', name: `pod-${'x'.repeat(40)}-${i}`, namespace: 'shop' },
      })),
    };
    const recorder = new ServiceNamesRecorder(path);
    const owner = { namespace: 'shop', name: odd[0] ?? '', port: 'h"ttp' };
    recorder.record(desired([virtualServer('10.96.0.10', 80, owner)]), ['shop/web', 'shop/many'], {
      serviceIds: () => ['shop/web', 'shop/many'],
      slicesOf: (id) => (id === 'shop/web' ? slices : [many]),
    });
    const names = readServiceNamesRecord(path);
    expect(names?.virtualServers).toEqual(new Map([['TCP 10.96.0.10:80', 'shop/we"b:h"ttp']]));
    const expected = new Map([
      ...odd.map((name, i): [string, string] => [`2001:db8::${i + 1}`, `ns-${name}/${name}`]),
      ...Array.from({ length: 3000 }, (_, i): [string, string] => [`10.1.${i >> 8}.${i & 255}`, `shop/pod-${'x'.repeat(40)}-${i}`]),
    ]);
    expect(names?.pods).toEqual(expected);
    expect(readFileSync(path).length).toBeGreaterThan(3 * 64 * 1024);
  });

  it('is absent when the agent never wrote one', () => {
    expect(readServiceNamesRecord('/nonexistent/service-names.json')).toBeUndefined();
  });
});

describe('names from the API server', () => {
  it('names each port on the ClusterIPs, external IPs and load balancer IPs, and NodePorts by port', () => {
    const service: Service = {
      metadata: { name: 'web', namespace: 'shop' },
      spec: {
        type: 'LoadBalancer',
        clusterIPs: ['10.96.0.10', 'fd00::a'],
        externalIPs: ['198.51.100.7'],
        ports: [
          { name: 'http', protocol: 'TCP', port: 80, nodePort: 30080 },
          { protocol: 'UDP', port: 53 },
        ],
      },
      status: { loadBalancer: { ingress: [{ ip: '203.0.113.9' }, { hostname: 'lb.example' }] } },
    };
    const names = serviceNamesFromObjects([service], [slice], 'the API server');
    expect([...names.virtualServers].sort()).toEqual(
      [
        ['TCP 10.96.0.10:80', 'shop/web:http'],
        ['TCP [fd00::a]:80', 'shop/web:http'],
        ['TCP 198.51.100.7:80', 'shop/web:http'],
        ['TCP 203.0.113.9:80', 'shop/web:http'],
        ['UDP 10.96.0.10:53', 'shop/web:53'],
        ['UDP [fd00::a]:53', 'shop/web:53'],
        ['UDP 198.51.100.7:53', 'shop/web:53'],
        ['UDP 203.0.113.9:53', 'shop/web:53'],
      ].sort(),
    );
    expect([...names.nodePorts]).toEqual([['TCP 30080', 'shop/web:http']]);
    expect([...names.pods]).toEqual([['10.244.1.2', 'shop/web-0']]);
  });
});
