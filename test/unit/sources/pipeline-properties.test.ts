// Issue 11 (e): hostile Service and EndpointSlice objects through the whole path the agent takes
// — a source file, the store, translation, the diff, a fake kernel that refuses what the kernel
// refuses — never throw or hang (a time bound per case), and every good object is programmed.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Proxier } from '../../../src/agent/proxier.js';
import { MemoryOwnershipStore } from '../../../src/agent/ownership.js';
import { FakeKernel } from '../../support/fake-kernel.js';
import { DEFAULT_SETTINGS } from '../../../src/model/settings.js';
import { ClusterStore } from '../../../src/sources/cluster-store.js';
import { FileSource } from '../../../src/sources/file-source.js';

/** Mostly plausible, now and then any JSON value. */
const orAnything = <T>(plausible: fc.Arbitrary<T>): fc.Arbitrary<unknown> =>
  fc.oneof({ arbitrary: plausible, weight: 4 }, { arbitrary: fc.jsonValue({ maxDepth: 3 }), weight: 1 });
const field = <T>(plausible: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.option(orAnything(plausible), { nil: undefined });

/** Never in 10.200.0.0/16 nor on ports 31111-31112: the good Services' addresses and NodePorts. */
const address = fc.oneof(
  fc.ipV4().filter((ip) => !ip.startsWith('10.200.')),
  fc.ipV6(),
  fc.constantFrom('None', '', '10.96.0.300', '::', '0.0.0.0', ' 10.1.1.1'),
);
const port = fc.oneof(
  fc.integer({ min: -2, max: 70_000 }).filter((p) => p !== 31111 && p !== 31112),
  fc.constantFrom(0, 80, 65536, 1.5),
  fc.string({ maxLength: 3 }),
);
const label = fc.constantFrom('app', 'kubernetes.io/service-name', 'service.kubernetes.io/headless', 'service.kubernetes.io/service-proxy-name');
const metadata = (kindNames: fc.Arbitrary<string>) =>
  fc.record(
    {
      name: orAnything(kindNames),
      namespace: orAnything(fc.constantFrom('hostile', 'other')),
      labels: field(fc.dictionary(label, fc.oneof(fc.constantFrom('a', 'web', ''), fc.string({ maxLength: 4 })), { maxKeys: 3 })),
      annotations: field(
        fc.record(
          { 'kipvs.io/scheduler': orAnything(fc.constantFrom('rr', 'mh', 'nope')), 'kipvs.io/weights': orAnything(fc.string({ maxLength: 10 })) },
          { requiredKeys: [] },
        ),
      ),
    },
    { requiredKeys: [] },
  );

const hostileService = fc.record(
  {
    apiVersion: field(fc.constantFrom('v1', 'v2')),
    kind: fc.constant('Service'),
    metadata: orAnything(metadata(fc.constantFrom('a', 'web', 'x'))),
    spec: field(
      fc.record(
        {
          type: field(fc.constantFrom('ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName', 'Magic')),
          clusterIP: field(address),
          clusterIPs: field(fc.array(address, { maxLength: 3 })),
          ports: field(
            fc.array(
              fc.record(
                {
                  name: field(fc.constantFrom('', 'http')),
                  protocol: field(fc.constantFrom('TCP', 'UDP', 'SCTP', 'ICMP')),
                  port: field(port),
                  nodePort: field(port),
                  targetPort: field(port),
                },
                { requiredKeys: [] },
              ),
              { maxLength: 3 },
            ),
          ),
          externalIPs: field(fc.array(address, { maxLength: 2 })),
          sessionAffinity: field(fc.constantFrom('None', 'ClientIP')),
          externalTrafficPolicy: field(fc.constantFrom('Cluster', 'Local')),
        },
        { requiredKeys: [] },
      ),
    ),
  },
  { requiredKeys: ['kind'] },
);

const hostileSlice = fc.record(
  {
    apiVersion: field(fc.constantFrom('discovery.k8s.io/v1', 'discovery.k8s.io/v1beta1')),
    kind: fc.constant('EndpointSlice'),
    metadata: orAnything(metadata(fc.constantFrom('s1', 's2'))),
    addressType: field(fc.constantFrom('IPv4', 'IPv6', 'FQDN', 'IPv5')),
    endpoints: field(
      fc.array(
        fc.record(
          {
            addresses: field(fc.array(address, { maxLength: 2 })),
            conditions: field(fc.record({ ready: field(fc.boolean()), serving: field(fc.boolean()), terminating: field(fc.boolean()) }, { requiredKeys: [] })),
            nodeName: field(fc.constantFrom('node-a', 'node-b')),
          },
          { requiredKeys: [] },
        ),
        { maxLength: 3 },
      ),
    ),
    ports: field(
      fc.array(
        fc.record({ name: field(fc.constantFrom('', 'http')), protocol: field(fc.constantFrom('TCP', 'UDP')), port: field(port) }, { requiredKeys: [] }),
        { maxLength: 2 },
      ),
    ),
  },
  { requiredKeys: ['kind'] },
);

/** A good ClusterIP + NodePort Service in namespace default (which sorts before the hostile ones), with two endpoints. */
function good(index: number): unknown[] {
  const name = `good-${index}`;
  return [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: 'default' },
      spec: { type: 'NodePort', clusterIP: `10.200.0.${index + 1}`, ports: [{ name: 'http', port: 80, targetPort: 8080, nodePort: 31111 + index }] },
    },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${name}-1`, namespace: 'default', labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      endpoints: [{ addresses: [`10.200.1.${index + 1}`] }, { addresses: [`10.200.2.${index + 1}`] }],
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    },
  ];
}

describe('source → translate → diff → fake kernel, with hostile objects', () => {
  let dir: string;
  beforeAll(() => void (dir = mkdtempSync(join(tmpdir(), 'kipvs-pipeline-'))));
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('never throws or hangs, and programs every good Service with its endpoints', { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(hostileService, hostileSlice, fc.jsonValue({ maxDepth: 2 })), { maxLength: 8 }), fc.nat(), async (hostile, seed) => {
        const objects: unknown[] = [...hostile];
        // The good objects at a random place among the hostile ones.
        objects.splice(seed % (objects.length + 1), 0, ...good(0), ...good(1));
        writeFileSync(join(dir, 'objects.json'), JSON.stringify({ kind: 'List', items: objects }));
        const started = performance.now();
        const cluster = new ClusterStore();
        const snapshot = new FileSource(dir).read();
        cluster.replaceAll(snapshot.services, snapshot.endpointSlices);
        const kernel = new FakeKernel();
        const proxier = new Proxier({
          kernel,
          node: { name: 'node-a', addresses: ['192.0.2.1'], families: ['inet', 'inet6'] },
          settings: DEFAULT_SETTINGS,
          log: pino({ level: 'silent' }),
          ownership: new MemoryOwnershipStore(),
          cluster,
        });
        const result = await proxier.sync();
        expect(performance.now() - started).toBeLessThan(2000);
        expect(result.failures).toEqual([]);
        for (const index of [0, 1]) {
          for (const key of [`TCP 10.200.0.${index + 1}:80`, `TCP 192.0.2.1:${31111 + index}`]) {
            expect([...(kernel.virtualServers.get(key)?.realServers.keys() ?? [])].sort()).toEqual([
              `10.200.1.${index + 1}:8080`,
              `10.200.2.${index + 1}:8080`,
            ]);
          }
        }
      }),
      { numRuns: 150 },
    );
  });
});
