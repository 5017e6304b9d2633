// The test API server speaks the list/watch protocol the way kube-apiserver does, checked with
// plain HTTP requests (the KubeSource tests then use it through client-node).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TestApiServer } from '../../support/api-server.js';
import { defined } from '../../support/defined.js';

interface WatchEvent {
  type: string;
  object: { kind?: string; code?: number; reason?: string; metadata: { name?: string; resourceVersion?: string } };
}

/** The watch events of a response: `count` of them, or all until the server ends it. */
async function events(response: Response, count = Infinity): Promise<WatchEvent[]> {
  // A byte stream: fetch's types leave the chunk type open (any).
  const reader = (defined(response.body, 'a response body') as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = '';
  const lines = (): string[] => text.split('\n').filter(Boolean);
  while (lines().length < count) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  await reader.cancel();
  return lines().map((line) => JSON.parse(line) as WatchEvent);
}

const summary = (list: WatchEvent[]): string[] =>
  list.map((event) => `${event.type} ${event.object.metadata.name ?? ''}@${event.object.metadata.resourceVersion ?? ''}`);

describe('test API server', () => {
  let server: TestApiServer;
  const get = (path: string): Promise<Response> => fetch(`${server.url}${path}`);

  beforeEach(async () => {
    server = await TestApiServer.start();
    server.create('services', { metadata: { name: 'a', namespace: 'default' }, spec: { clusterIP: '10.96.0.1' } });
    server.create('services', { metadata: { name: 'b', namespace: 'default' }, spec: { clusterIP: '10.96.0.2' } });
  });
  afterEach(() => server.stop());

  it('lists as kube-apiserver does: a typed List, items without kind, the resourceVersion of the list', async () => {
    const list = (await (await get('/api/v1/services')).json()) as {
      kind: string;
      metadata: { resourceVersion: string };
      items: { kind?: string; metadata: { name: string; uid: string } }[];
    };
    expect(list.kind).toBe('ServiceList');
    expect(list.metadata.resourceVersion).toBe('1002');
    expect(list.items.map((item) => item.metadata.name)).toEqual(['a', 'b']);
    const first = defined(list.items[0], 'a first item');
    expect(first.kind).toBeUndefined();
    expect(first.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('pages with limit/continue from one snapshot', async () => {
    server.create('services', { metadata: { name: 'c', namespace: 'default' } });
    const first = (await (await get('/api/v1/services?limit=2')).json()) as {
      metadata: { continue: string; resourceVersion: string };
      items: { metadata: { name: string } }[];
    };
    server.create('services', { metadata: { name: 'd', namespace: 'default' } });
    const second = (await (await get(`/api/v1/services?limit=2&continue=${first.metadata.continue}`)).json()) as typeof first;
    expect([...first.items, ...second.items].map((item) => item.metadata.name)).toEqual(['a', 'b', 'c']);
    expect(second.metadata.resourceVersion).toBe(first.metadata.resourceVersion);
    expect(second.metadata.continue).toBeUndefined();
  });

  it('replays the events after a resourceVersion, then streams new ones, deletions at their own resourceVersion', async () => {
    server.update('services', { metadata: { name: 'a', namespace: 'default' }, spec: { clusterIP: '10.96.0.9' } });
    const response = await get('/api/v1/services?watch=true&resourceVersion=1001');
    server.delete('services', 'b', 'default');
    expect(summary(await events(response, 2))).toEqual(['ADDED b@1002', 'MODIFIED a@1003']);
    expect(summary(await events(await get('/api/v1/services?watch=true&resourceVersion=1003'), 1))).toEqual(['DELETED b@1004']);
  });

  it('answers a watch from before a compaction with 410 Gone: an ERROR event, or the HTTP status', async () => {
    server.compact();
    server.create('services', { metadata: { name: 'c', namespace: 'default' } });
    const [error] = await events(await get('/api/v1/services?watch=true&resourceVersion=1001'));
    expect(error).toMatchObject({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } });
    expect(summary(await events(await get('/api/v1/services?watch=true&resourceVersion=1002'), 1))).toEqual(['ADDED c@1003']);
    server.expiredWatch = 'status';
    expect((await get('/api/v1/services?watch=true&resourceVersion=1001')).status).toBe(410);
  });

  it('filters by metadata.name, ends a watch at timeoutSeconds with a bookmark, and serves only GET', async () => {
    server.create('nodes', { metadata: { name: 'node-a' } });
    server.create('nodes', { metadata: { name: 'node-b' } });
    const nodes = (await (await get('/api/v1/nodes?fieldSelector=metadata.name%3Dnode-b')).json()) as { items: { metadata: { name: string } }[] };
    expect(nodes.items.map((item) => item.metadata.name)).toEqual(['node-b']);
    const watch = await get('/api/v1/nodes?watch=true&resourceVersion=1002&fieldSelector=metadata.name%3Dnode-b&allowWatchBookmarks=true&timeoutSeconds=1');
    expect(summary(await events(watch))).toEqual(['ADDED node-b@1004', 'BOOKMARK @1004']);
    expect((await fetch(`${server.url}/api/v1/services`, { method: 'POST', body: '{}' })).status).toBe(405);
    expect(server.requests.map((request) => `${request.method} ${request.path}${request.watch ? ' watch' : ''}`)).toEqual([
      'GET /api/v1/nodes',
      'GET /api/v1/nodes watch',
      'POST /api/v1/services',
    ]);
  });

  it('stops and starts again on the same port, losing nothing', async () => {
    const port = server.port;
    await server.stop();
    await expect(get('/api/v1/services')).rejects.toThrow();
    server.delete('services', 'a', 'default');
    await server.start();
    expect(server.port).toBe(port);
    const list = (await (await get('/api/v1/services')).json()) as { items: { metadata: { name: string } }[] };
    expect(list.items.map((item) => item.metadata.name)).toEqual(['b']);
  });
});
