// The Kubernetes API source through the real client library (client-node's informers) against the
// test API server on 127.0.0.1, into a real ClusterStore.
import * as k8s from '@kubernetes/client-node';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterStore } from '../../../src/sources/cluster-store.js';
import { backoffDelay, KubeSource, toEndpointSlice, toNodeInfo, toService, type KubeSourceOptions, type NodeInfo } from '../../../src/sources/kube-source.js';
import { TestApiServer, type ApiObject, type Resource } from '../../support/api-server.js';
import { defined } from '../../support/defined.js';
import { asJson } from '../../support/read-endpoints.js';

const BACKOFF = { initialMs: 40, maxMs: 160 };

const service = (name: string, clusterIP: string, extra: Record<string, unknown> = {}): ApiObject => ({
  metadata: { name, namespace: 'default', labels: { app: name } },
  spec: {
    type: 'ClusterIP',
    clusterIP,
    clusterIPs: [clusterIP],
    ipFamilies: ['IPv4'],
    ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }],
    selector: { app: name },
    ...extra,
  },
});

const slice = (name: string, serviceName: string, addresses: string[]): ApiObject => ({
  metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': serviceName } },
  addressType: 'IPv4',
  endpoints: addresses.map((address, i) => ({
    addresses: [address],
    conditions: { ready: true, serving: true, terminating: false },
    nodeName: 'node-a',
    targetRef: { kind: 'Pod', name: `${serviceName}-${i}`, namespace: 'default' },
  })),
  ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
});

const node = (name: string, extra: Record<string, unknown> = {}): ApiObject => ({
  metadata: { name, labels: { 'kubernetes.io/hostname': name }, ...extra },
  spec: { taints: [{ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' }] },
});

async function waitFor(what: string, condition: () => boolean, timeoutMs = 3_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A pino logger whose records a test can read. */
function capturedLog(): { log: Logger; records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, records };
}

/** What the server holds, as the store should hold it: names and resourceVersions. */
const versions = (objects: readonly { metadata: { namespace?: string; name: string; resourceVersion?: string } }[]): string[] =>
  objects.map((object) => `${object.metadata.namespace}/${object.metadata.name}@${object.metadata.resourceVersion}`).sort();

describe('KubeSource against an API server', () => {
  let server: TestApiServer;
  let dir: string;
  let store: ClusterStore;
  let source: KubeSource | undefined;
  let logged: ReturnType<typeof capturedLog>;

  const start = async (options: Partial<KubeSourceOptions> = {}): Promise<KubeSource> => {
    source = await KubeSource.start({
      kubeconfig: server.writeKubeconfig(dir),
      nodeName: 'node-a',
      sink: store,
      log: logged.log,
      backoff: BACKOFF,
      ...options,
    });
    return source;
  };
  /** Started, and its three watches (Services, EndpointSlices, the Node) open. */
  const startWatching = async (options: Partial<KubeSourceOptions> = {}): Promise<KubeSource> => {
    const started = await start(options);
    await waitFor('watching', () => server.openWatches === 3 && started.status().connected);
    return started;
  };
  const inSync = (resource: Resource): boolean =>
    JSON.stringify(versions(resource === 'services' ? store.snapshot().services : store.snapshot().endpointSlices)) ===
    JSON.stringify(versions(server.list(resource)));
  const converged = (): boolean => inSync('services') && inSync('endpointslices');
  const listRequests = () => server.requests.filter((request) => !request.watch);

  beforeEach(async () => {
    server = await TestApiServer.start();
    dir = mkdtempSync(join(tmpdir(), 'kipvs-kube-'));
    store = new ClusterStore();
    logged = capturedLog();
    server.create('services', service('web', '10.96.0.10', { healthCheckNodePort: 30999 }));
    server.create('services', service('db', '10.96.0.20'));
    server.create('endpointslices', slice('web-abc', 'web', ['10.244.1.2', '10.244.2.2']));
    server.create('endpointslices', slice('db-abc', 'db', ['10.244.1.3']));
  });
  afterEach(async () => {
    await source?.stop();
    source = undefined;
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists Services and EndpointSlices into the store before start() resolves, every model field intact', async () => {
    // Every field of src/model/kubernetes.ts: list items pass through client-node's model classes,
    // which would drop a field they do not know.
    server.update('services', {
      metadata: { name: 'web', namespace: 'default', labels: { app: 'web' }, annotations: { 'kipvs.io/scheduler': 'wrr' } },
      spec: {
        type: 'LoadBalancer',
        clusterIP: '10.96.0.10',
        clusterIPs: ['10.96.0.10', 'fd00::10'],
        ipFamilies: ['IPv4', 'IPv6'],
        ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 'http', nodePort: 30080 }],
        selector: { app: 'web' },
        externalIPs: ['192.0.2.7'],
        loadBalancerSourceRanges: ['203.0.113.0/24'],
        externalTrafficPolicy: 'Local',
        internalTrafficPolicy: 'Cluster',
        healthCheckNodePort: 30999,
        sessionAffinity: 'ClientIP',
        sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } },
      },
      status: { loadBalancer: { ingress: [{ ip: '192.0.2.1', ipMode: 'Proxy' }, { hostname: 'lb.example.com' }] } },
    });
    server.update('endpointslices', {
      ...slice('web-abc', 'web', []),
      endpoints: [
        {
          addresses: ['10.244.1.2'],
          conditions: { ready: false, serving: true, terminating: true },
          nodeName: 'node-a',
          zone: 'z1',
          hostname: 'web-0',
          targetRef: { kind: 'Pod', name: 'web-0', namespace: 'default' },
          hints: { forZones: [{ name: 'z1' }] },
        },
      ],
    });
    const ready = await start();
    expect(ready.status()).toMatchObject({ synced: true, relists: 0 });
    expect(versions(store.snapshot().services)).toEqual(versions(server.list('services')));
    // List items arrive as client-node's classes (Date timestamps); the store gets the wire JSON
    // less what the agent never reads (src/sources/compact.ts): uid, timestamps, the selector, and
    // an endpoint's hostname.
    const listed = server.list('services').find((object) => object.metadata.name === 'web') as unknown as Record<string, Record<string, unknown>>;
    const { uid: _uid, creationTimestamp: _created, ...metadata } = listed.metadata ?? {};
    const { selector: _selector, ...spec } = listed.spec ?? {};
    expect(store.service('default/web')).toEqual({ ...listed, metadata, spec });
    const listedSlice = defined(
      server.list('endpointslices').find((object) => object.metadata.name === 'web-abc'),
      'the listed slice',
    ) as unknown as Record<string, unknown>;
    const { uid: _sliceUid, creationTimestamp: _sliceCreated, ...sliceMetadata } = listedSlice.metadata as Record<string, unknown>;
    const endpoints = (listedSlice.endpoints as Record<string, unknown>[]).map(({ hostname: _hostname, ...endpoint }) => endpoint);
    expect(asJson(store.slicesOf('default/web'))).toEqual([{ ...listedSlice, metadata: sliceMetadata, endpoints }]);
    expect(store.service('default/web')?.status?.loadBalancer?.ingress?.[0]?.ipMode).toBe('Proxy');
  });

  it('passes added, changed and deleted Services and EndpointSlices on to the store', async () => {
    const kube = await start();
    server.create('services', service('cache', '10.96.0.30'));
    server.create('endpointslices', slice('cache-abc', 'cache', ['10.244.1.4']));
    await waitFor('added', () => store.slicesOf('default/cache').length === 1 && store.service('default/cache') !== undefined);
    server.update('endpointslices', slice('web-abc', 'web', ['10.244.1.2', '10.244.2.2', '10.244.3.2']));
    await waitFor('endpoint added', () => store.slicesOf('default/web')[0]?.endpoints?.length === 3);
    server.delete('services', 'db', 'default');
    server.delete('endpointslices', 'db-abc', 'default');
    await waitFor('deleted', () => store.service('default/db') === undefined && store.slicesOf('default/db').length === 0);
    expect(converged()).toBe(true);
    expect(kube.status()).toMatchObject({ relists: 0, watchRestarts: 0, connected: true });
  });

  it('resumes a dropped watch from its resourceVersion, without listing again', async () => {
    const kube = await startWatching();
    const watchesBefore = server.requests.filter((request) => request.watch).length;
    server.dropWatches();
    // Changed before the informers can reconnect: they must get these from the watch history.
    server.update('services', service('web', '10.96.0.11'));
    server.delete('endpointslices', 'db-abc', 'default');
    await waitFor('converged after the drop', converged);
    await waitFor('watching again', () => server.openWatches === 3);
    expect(listRequests()).toHaveLength(3); // the first list of each informer, no more
    const resumed = server.requests.filter((request) => request.watch).slice(watchesBefore);
    expect(resumed.map((request) => request.query.resourceVersion).every((version) => Number(version) > 1000)).toBe(true);
    expect(kube.status()).toMatchObject({ relists: 0, watchRestarts: 3, connected: true });
  });

  for (const expiredWatch of ['event', 'status'] as const) {
    it(`relists after 410 Gone (${expiredWatch === 'event' ? 'an ERROR event' : 'HTTP 410'}) and ends with exactly the server's objects`, async () => {
      server.create('services', service('unchanged', '10.96.0.40'));
      const kube = await startWatching();
      const unchanged = store.service('default/unchanged');
      server.expiredWatch = expiredWatch;
      await server.stop();
      await waitFor('disconnected', () => !kube.status().connected);
      // While it is away: a deletion, a change, an addition, and the history compacted.
      server.delete('services', 'db', 'default');
      server.delete('endpointslices', 'db-abc', 'default');
      server.update('services', service('web', '10.96.0.11'));
      server.create('services', service('new', '10.96.0.50'));
      server.compact();
      await server.start();
      await waitFor('converged after the relist', converged);
      expect(kube.status().relists).toBeGreaterThanOrEqual(2); // services and endpointslices
      expect(store.service('default/db')).toBeUndefined();
      expect(store.service('default/web')?.spec?.clusterIP).toBe('10.96.0.11');
      // An object the relist found unchanged is still the very object the store had.
      expect(store.service('default/unchanged')).toBe(unchanged);
    });
  }

  it('keeps its objects while the API server is away, retries with growing backoff, and converges after', async () => {
    const kube = await startWatching();
    const before = store.snapshot();
    store.takeChanged();
    await server.stop();
    await waitFor('disconnected', () => !kube.status().connected);
    const retries = (): number[] =>
      logged.records.filter((record) => record.retryInMs !== undefined && record.resource === 'services').map((record) => record.retryInMs as number);
    await waitFor('several retries', () => retries().length >= 4);
    expect(store.snapshot()).toEqual(before);
    expect(store.takeChanged()).toEqual(new Set());
    retries().forEach((delay, i) => {
      const base = Math.min(BACKOFF.maxMs, BACKOFF.initialMs * 2 ** i);
      expect(delay).toBeGreaterThanOrEqual(base / 2);
      expect(delay).toBeLessThanOrEqual(base);
    });
    server.update('endpointslices', slice('web-abc', 'web', ['10.244.9.9']));
    server.delete('services', 'db', 'default');
    await server.start();
    await waitFor('converged after the outage', converged);
    await waitFor('connected', () => kube.status().connected);
    // The history was kept, so the watches resumed where they were.
    expect(kube.status().relists).toBe(0);
  });

  it('start() keeps retrying until the API server answers', async () => {
    await server.stop();
    let done = false;
    const starting = start().then(() => (done = true));
    await waitFor('retried', () => logged.records.some((record) => record.retryInMs !== undefined));
    expect(done).toBe(false);
    await server.start();
    await starting;
    expect(converged()).toBe(true);
  });

  it('with bookmarks, quiet watches survive a compaction without a relist', async () => {
    const kube = await startWatching();
    // Only Services change: the EndpointSlice and Node watches' resourceVersions stay behind...
    server.create('services', service('cache', '10.96.0.30'));
    await waitFor('added', () => store.service('default/cache') !== undefined);
    expect(kube.status().resourceVersions).toEqual({ services: server.currentResourceVersion, endpointslices: '1004', nodes: '1004' });
    // ...until a bookmark moves them forward.
    server.bookmark();
    const current = { services: server.currentResourceVersion, endpointslices: server.currentResourceVersion, nodes: server.currentResourceVersion };
    await waitFor('bookmarks seen', () => JSON.stringify(kube.status().resourceVersions) === JSON.stringify(current));
    server.compact();
    server.dropWatches();
    await waitFor('watching again', () => server.openWatches === 3);
    server.create('endpointslices', slice('cache-abc', 'cache', ['10.244.1.4']));
    await waitFor('converged', converged);
    expect(kube.status().relists).toBe(0);
    expect(server.requests.filter((request) => request.watch).every((request) => request.query.allowWatchBookmarks === 'true')).toBe(true);
  });

  it('without a bookmark, the same compaction makes the quiet watches relist', async () => {
    const kube = await startWatching();
    server.create('services', service('cache', '10.96.0.30'));
    await waitFor('added', () => store.service('default/cache') !== undefined);
    server.compact();
    server.dropWatches();
    await waitFor('relisted', () => kube.status().relists === 2);
    await waitFor('watching again', () => server.openWatches === 3);
    const lists = listRequests().map((request) => request.path);
    expect(lists.filter((path) => path.endsWith('/services'))).toHaveLength(1);
    expect(lists.filter((path) => path.endsWith('/endpointslices'))).toHaveLength(2);
    expect(lists.filter((path) => path.endsWith('/nodes'))).toHaveLength(2);
    expect(converged()).toBe(true);
  });

  it('backs off before watching again when the server ends every watch at once without events', async () => {
    await startWatching();
    server.closeWatchesAtOnce = true;
    server.dropWatches();
    const count = (): number => server.requests.filter((request) => request.watch).length;
    const before = count();
    await new Promise((resolve) => setTimeout(resolve, 600));
    // With the backoff (40 ms doubling to 160 ms, halved at worst by jitter) about 5 per informer;
    // reconnecting at once, as ListWatch would, makes hundreds.
    expect(count() - before).toBeGreaterThan(3);
    expect(count() - before).toBeLessThan(3 * 12);
    server.closeWatchesAtOnce = false;
    server.update('services', service('web', '10.96.0.11'));
    await waitFor('converged', converged);
  });

  it('reports this node (and only it) to onNode: labels, taints, deletion', async () => {
    server.create('nodes', node('node-a'));
    server.create('nodes', node('node-b'));
    const seen: (NodeInfo | undefined)[] = [];
    await start({ onNode: (info) => seen.push(info) });
    await waitFor('node listed', () => seen.length === 1);
    expect(seen[0]).toEqual({
      name: 'node-a',
      labels: { 'kubernetes.io/hostname': 'node-a' },
      deleting: false,
      taints: [{ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' }],
      podCIDRs: [],
      nodeIPs: [],
    });
    server.update('nodes', node('node-b', { labels: { changed: 'yes' } }));
    server.update('nodes', node('node-a', { deletionTimestamp: new Date().toISOString() }));
    await waitFor('deleting', () => seen.at(-1)?.deleting === true);
    server.delete('nodes', 'node-a');
    await waitFor('deleted', () => seen.length === 3 && seen[2] === undefined);
    expect(seen.every((info) => info === undefined || info.name === 'node-a')).toBe(true);
    const nodeRequests = server.requests.filter((request) => request.path === '/api/v1/nodes');
    expect(nodeRequests.every((request) => request.query.fieldSelector === 'metadata.name=node-a')).toBe(true);
  });

  it('lists in pages and asks only with GET: list, and watch with bookmarks and a timeout', async () => {
    for (let i = 0; i < 5; i++) server.create('services', service(`page-${i}`, `10.96.1.${i}`));
    const kube = await start({ pageSize: 3, watchTimeoutSeconds: 1 });
    expect(store.size.services).toBe(7);
    expect(
      listRequests()
        .filter((request) => request.path === '/api/v1/services')
        .map((request) => request.query.limit),
    ).toEqual(['3', '3', '3']);
    expect(server.requests.every((request) => request.method === 'GET')).toBe(true);
    const watches = server.requests.filter((request) => request.watch);
    expect(watches.every((request) => request.query.allowWatchBookmarks === 'true' && request.query.timeoutSeconds === '1')).toBe(true);
    // At its timeout the server ends the watch (with a bookmark); the informer watches again at once.
    await waitFor('rewatched after the timeout', () => kube.status().watchRestarts >= 3, 4_000);
    expect(kube.status().relists).toBe(0);
  });

  it("authenticates with a kubeconfig's tokenFile, as kubeadm writes it for kube-proxy (relative to the kubeconfig)", async () => {
    writeFileSync(join(dir, 'token'), 'token-from-file');
    const kubeconfig = server.writeKubeconfig(dir, { tokenFile: 'token' });
    source = await KubeSource.start({ kubeconfig, nodeName: 'node-a', sink: store, log: logged.log, backoff: BACKOFF });
    expect(server.requests.length).toBeGreaterThan(0);
    expect(server.requests.every((request) => request.authorization === 'Bearer token-from-file')).toBe(true);
  });

  it('rejects an unreadable kubeconfig with an error that names it', async () => {
    const missing = join(dir, 'missing-kubeconfig');
    await expect(KubeSource.start({ kubeconfig: missing, nodeName: 'node-a', sink: store, log: logged.log })).rejects.toMatchObject({
      code: 'KIPVS_KUBECONFIG',
      message: `cannot read kubeconfig ${missing}: ENOENT`,
    });
    const noCluster = join(dir, 'empty-kubeconfig');
    writeFileSync(noCluster, 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n');
    await expect(KubeSource.start({ kubeconfig: noCluster, nodeName: 'node-a', sink: store, log: logged.log })).rejects.toMatchObject({
      code: 'KIPVS_KUBECONFIG',
    });
    // A server that is not a URL: said at start, not retried forever. (A plain-HTTP server is
    // reached as kubectl reaches it: test/unit/sources/kube-config.test.ts.)
    const notUrl = join(dir, 'bad-server-kubeconfig');
    writeFileSync(notUrl, readFileSync(server.writeKubeconfig(dir), 'utf8').replace(server.url, 'not a url'));
    await expect(KubeSource.start({ kubeconfig: notUrl, nodeName: 'node-a', sink: store, log: logged.log })).rejects.toThrow(/server "not a url" is not a URL/);
  });

  it('stopped while its watches are being opened, it leaves none open (the process can exit)', async () => {
    const started = await start();
    await started.stop();
    source = undefined;
    const watchesSeen = () => server.requests.filter((request) => request.watch).length;
    await waitFor('the watch requests arrived', () => watchesSeen() >= 1);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await waitFor('no watch left open', () => server.openWatches === 0);
  });

  it('gives up a watch request that is never answered, and watches again', async () => {
    server.holdWatches = true;
    const started = await start({ requestTimeoutMs: 300 });
    await waitFor('held', () => server.heldWatches >= 3);
    await waitFor('given up and retried', () => logged.records.some((record) => /no answer to the watch/.test(String(record.err))));
    server.holdWatches = false;
    server.create('services', service('late', '10.96.0.99'));
    await waitFor('watching again', () => server.openWatches === 3 && started.status().connected);
    await waitFor('the new Service arrives', () => store.service('default/late') !== undefined);
  });

  it('an aborted start() rejects and stops asking', async () => {
    await server.stop();
    const controller = new AbortController();
    const starting = start({ signal: controller.signal });
    await waitFor('retried', () => logged.records.some((record) => record.retryInMs !== undefined));
    controller.abort();
    await expect(starting).rejects.toMatchObject({ code: 'KIPVS_ABORTED' });
    await server.start();
    const count = server.requests.length;
    await new Promise((resolve) => setTimeout(resolve, 4 * BACKOFF.maxMs));
    expect(server.requests.length).toBe(count);
  });
});

/** A client-node model object: an instance of its class, with these fields. */
const model = <T extends object>(Model: new () => T, fields: Partial<T>): T => Object.assign(new Model(), fields);

describe('conversion of client-node objects', () => {
  it('client-node model classes use the JSON field names for every field (so JSON.stringify gives the wire form)', () => {
    const mismatches: string[] = [];
    const seen = new Set<string>();
    const models = k8s as unknown as Record<string, { getAttributeTypeMap?: () => { name: string; baseName: string; type: string }[] }>;
    const walk = (type: string): void => {
      const name = type.replace(/^Array<(.*)>$/, '$1').replace(/^\{ \[key: string\]: (.*); \}$/, '$1');
      if (seen.has(name) || !models[name]?.getAttributeTypeMap) return;
      seen.add(name);
      for (const attribute of models[name].getAttributeTypeMap()) {
        if (attribute.name !== attribute.baseName) mismatches.push(`${name}.${attribute.name}`);
        walk(attribute.type);
      }
    };
    for (const root of ['V1Service', 'V1EndpointSlice', 'V1Node']) walk(root);
    expect(seen.size).toBeGreaterThan(20);
    expect(mismatches).toEqual([]);
  });

  it('turns a V1Service and a V1EndpointSlice into the JSON model, without managedFields or timestamps', () => {
    const created = new Date('2024-05-01T10:00:00Z');
    // As client-node's deserializer makes them: an instance of each model class, Dates for times.
    const typed = model(k8s.V1Service, {
      metadata: model(k8s.V1ObjectMeta, {
        name: 'web',
        namespace: 'default',
        resourceVersion: '7',
        creationTimestamp: created,
        managedFields: [model(k8s.V1ManagedFieldsEntry, { manager: 'kubectl', time: created })],
      }),
      spec: model(k8s.V1ServiceSpec, {
        clusterIP: '10.96.0.10',
        clusterIPs: ['10.96.0.10'],
        ipFamilies: ['IPv4'],
        healthCheckNodePort: 30999,
        ports: [model(k8s.V1ServicePort, { port: 80, targetPort: 'http' })],
      }),
      status: model(k8s.V1ServiceStatus, {
        loadBalancer: model(k8s.V1LoadBalancerStatus, { ingress: [model(k8s.V1LoadBalancerIngress, { ip: '192.0.2.1', ipMode: 'Proxy' })] }),
      }),
    });
    expect(toService(typed)).toEqual({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: 'default', resourceVersion: '7' },
      spec: {
        clusterIP: '10.96.0.10',
        clusterIPs: ['10.96.0.10'],
        ipFamilies: ['IPv4'],
        healthCheckNodePort: 30999,
        ports: [{ port: 80, targetPort: 'http' }],
      },
      status: { loadBalancer: { ingress: [{ ip: '192.0.2.1', ipMode: 'Proxy' }] } },
    });
    const endpoint = {
      addresses: ['10.244.1.2'],
      conditions: { ready: false, serving: true, terminating: true },
      nodeName: 'node-a',
      zone: 'z1',
      targetRef: { kind: 'Pod', name: 'web-0' },
      hints: { forZones: [{ name: 'z1' }] },
    };
    expect(
      asJson(
        toEndpointSlice(
          Object.assign(new k8s.V1EndpointSlice(), { metadata: { name: 's' }, addressType: 'IPv4', endpoints: [endpoint], ports: [{ port: 8080 }] }),
        ),
      ),
    ).toEqual({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 's' },
      addressType: 'IPv4',
      endpoints: [endpoint],
      ports: [{ port: 8080 }],
    });
    expect(toNodeInfo({ metadata: { name: 'n', deletionTimestamp: '2024-05-01T10:00:00Z' } })).toEqual({
      name: 'n',
      labels: {},
      deleting: true,
      taints: [],
      podCIDRs: [],
      nodeIPs: [],
    });
  });

  it("reads a Node's podCIDRs and its node IPs as kube-proxy's GetNodeHostIPs picks them", () => {
    const addresses = [
      { type: 'Hostname', address: 'node-a' },
      { type: 'ExternalIP', address: '203.0.113.5' },
      { type: 'InternalIP', address: '192.0.2.10' },
      { type: 'InternalIP', address: '192.0.2.11' },
      { type: 'ExternalIP', address: '2001:db8::5' },
    ];
    const node = toNodeInfo({ metadata: { name: 'node-a' }, spec: { podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'] }, status: { addresses } });
    expect(node.podCIDRs).toEqual(['10.244.1.0/24', 'fd00:10:244:1::/64']);
    // The first InternalIP, then the first address of the other family, InternalIP or ExternalIP.
    expect(node.nodeIPs).toEqual(['192.0.2.10', '2001:db8::5']);
    expect(toNodeInfo({ metadata: { name: 'old' }, spec: { podCIDR: '10.244.2.0/24' } }).podCIDRs).toEqual(['10.244.2.0/24']);
  });

  it('backs off exponentially with jitter, capped', () => {
    const backoff = { initialMs: 500, maxMs: 30_000 };
    expect([1, 2, 3, 7, 8, 20].map((attempt) => backoffDelay(attempt, backoff, () => 1))).toEqual([500, 1000, 2000, 30_000, 30_000, 30_000]);
    expect([1, 2, 3, 7].map((attempt) => backoffDelay(attempt, backoff, () => 0))).toEqual([250, 500, 1000, 15_000]);
  });
});
