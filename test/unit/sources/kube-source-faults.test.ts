// Issue 11 (d) and issue 12 item 4: the API source through the real client library against a
// test API server that misbehaves (500s, slow, truncated and endless lists, garbage on a watch):
// the store keeps the last good state throughout and converges once the server behaves.
// And kube-proxy's label selector, asked of the server.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterStore } from '../../../src/sources/cluster-store.js';
import { KubeSource, type KubeSourceOptions } from '../../../src/sources/kube-source.js';
import { TestApiServer, type ApiObject } from '../../support/api-server.js';

const service = (name: string, clusterIP: string, labels: Record<string, string> = {}): ApiObject => ({
  metadata: { name, namespace: 'default', labels: { app: name, ...labels } },
  spec: { type: 'ClusterIP', clusterIP, clusterIPs: [clusterIP], ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }] },
});

const slice = (name: string, serviceName: string, addresses: string[], labels: Record<string, string> = {}): ApiObject => ({
  metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': serviceName, ...labels } },
  addressType: 'IPv4',
  endpoints: addresses.map((address) => ({ addresses: [address], conditions: { ready: true } })),
  ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
});

async function waitFor(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const names = (store: ClusterStore): string[] =>
  store
    .snapshot()
    .services.map((s) => s.metadata.name)
    .sort();

describe('KubeSource under API server faults', { timeout: 30_000 }, () => {
  let server: TestApiServer;
  let dir: string;
  let store: ClusterStore;
  let source: KubeSource | undefined;

  const start = async (options: Partial<KubeSourceOptions> = {}): Promise<KubeSource> => {
    const log = pino({ level: 'silent' });
    source = await KubeSource.start({
      kubeconfig: server.writeKubeconfig(dir),
      nodeName: 'node-a',
      sink: store,
      log,
      backoff: { initialMs: 40, maxMs: 160 },
      requestTimeoutMs: 1000,
      ...options,
    });
    return source;
  };
  const watching = async (): Promise<void> => waitFor('watching', () => server.openWatches === 3 && source?.status().connected === true);

  beforeEach(async () => {
    server = await TestApiServer.start();
    dir = mkdtempSync(join(tmpdir(), 'kipvs-kube-faults-'));
    store = new ClusterStore();
    server.create('services', service('web', '10.96.0.10'));
    server.create('endpointslices', slice('web-1', 'web', ['10.244.1.2']));
  });
  afterEach(async () => {
    await source?.stop();
    source = undefined;
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts through 500s, a truncated list, a slow list and a list that never ends', async () => {
    server.faults = { internalErrors: 3, truncatedLists: 1, endlessLists: 1 };
    await start();
    expect(names(store)).toEqual(['web']);
    await watching();
    // db only through a relist (its watch event compacted away), and every list slow.
    server.faults = { slowListMs: 3000 };
    server.create('services', service('db', '10.96.0.20'));
    server.compact();
    server.dropWatches();
    // The relist is slower than the request timeout: given up and tried again, the store intact.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(names(store)).toEqual(['web']);
    server.faults = {};
    await waitFor('db after the slow lists', () => names(store).includes('db'));
    expect(names(store)).toEqual(['db', 'web']);
  });

  it('keeps its objects through 500s on every request, and converges after', async () => {
    await start();
    await watching();
    server.faults = { internalErrors: 1_000_000 };
    server.compact();
    server.dropWatches();
    server.delete('services', 'web', 'default');
    server.create('services', service('db', '10.96.0.20'));
    await waitFor('failing requests', () => server.requests.filter((request) => request.path === '/api/v1/services').length > 6);
    expect(names(store)).toEqual(['web']);
    server.faults = {};
    await waitFor('converged', () => JSON.stringify(names(store)) === JSON.stringify(['db']));
  });

  it('ignores garbage on a watch and takes the events after it', async () => {
    await start();
    await watching();
    server.sendGarbage();
    server.create('services', service('db', '10.96.0.20'));
    await waitFor('db', () => names(store).includes('db'));
    expect(names(store)).toEqual(['db', 'web']);
  });

  it("asks with kube-proxy's label selector, and a Service that gains the label leaves as if deleted", async () => {
    server.create('services', service('other', '10.96.0.30', { 'service.kubernetes.io/service-proxy-name': 'foo-proxy' }));
    server.create('services', service('headless', '10.96.0.40', { 'service.kubernetes.io/headless': '' }));
    server.create('endpointslices', slice('headless-1', 'headless', ['10.244.1.4'], { 'service.kubernetes.io/headless': '' }));
    await start();
    await watching();
    expect(names(store)).toEqual(['web']);
    expect(store.snapshot().endpointSlices.map((s) => s.metadata.name)).toEqual(['web-1']);
    const selectors = server.requests.filter((request) => request.path !== '/api/v1/nodes').map((request) => request.query.labelSelector);
    expect(new Set(selectors)).toEqual(new Set(['!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name']));

    server.update('services', service('web', '10.96.0.10', { 'service.kubernetes.io/service-proxy-name': 'foo-proxy' }));
    await waitFor('web gone', () => names(store).length === 0);
    server.update('services', service('web', '10.96.0.10'));
    await waitFor('web back', () => names(store).includes('web'));
  });

  it("finishes a list whose continue token expired with one unpaged list, as client-go's pager", async () => {
    for (let i = 0; i < 5; i++) server.create('services', service(`page-${i}`, `10.96.1.${i}`));
    server.faults = { expiredContinues: 1 };
    await start({ pageSize: 2 });
    expect(names(store)).toEqual(['page-0', 'page-1', 'page-2', 'page-3', 'page-4', 'web']);
    const lists = server.requests.filter((request) => request.path === '/api/v1/services' && !request.watch);
    expect(lists.map((request) => request.query.limit ?? 'none')).toEqual(['2', '2', 'none']);
  });

  it('backs off between relists when every watch is answered 410 Gone, and converges after', async () => {
    const kube = await start();
    await watching();
    server.faults = { goneWatches: 1_000_000 };
    server.dropWatches();
    const lists = (): number => server.requests.filter((request) => !request.watch).length;
    const before = lists();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // With the backoff (40 ms doubling to 160 ms, halved at worst by jitter) about 10 lists per
    // informer in a second; relisting at once, as ListWatch did, made thousands.
    expect(lists() - before).toBeLessThan(60);
    server.faults = {};
    server.create('services', service('db', '10.96.0.20'));
    await waitFor('db after the relists', () => names(store).includes('db'));
    await waitFor('connected', () => kube.status().connected);
  });

  it('lets a relist of many pages outlast the request timeout while its pages come, check() or not', async () => {
    for (let i = 0; i < 6; i++) server.create('services', service(`page-${i}`, `10.96.1.${i}`));
    const kube = await start({ pageSize: 1, requestTimeoutMs: 400 });
    await watching();
    // check() as every full sync calls it; it restarts an informer neither connected nor retrying.
    const checking = setInterval(() => kube.check(), 50);
    try {
      // The watches fail (500: not connected), then HTTP 410 (compacted): a relist of 8 pages of
      // 150 ms each, three times the request timeout, while not connected.
      server.expiredWatch = 'status';
      server.faults = { internalErrors: 3, slowListMs: 150 };
      server.dropWatches();
      server.create('services', service('late', '10.96.2.1'));
      server.compact();
      await waitFor('every informer relisted', () => kube.status().relists === 3 && kube.status().connected);
      expect(names(store)).toHaveLength(8);
      expect(kube.status().resourceVersions.services).toBe(server.currentResourceVersion);
    } finally {
      clearInterval(checking);
    }
  });
});
