import { describe, expect, it } from 'vitest';
import { ClusterStore } from '../../../src/sources/cluster-store.js';
import type { EndpointSlice, Service } from '../../../src/model/kubernetes.js';

const service = (name: string, namespace = 'default'): Service => ({ metadata: { name, namespace }, spec: { clusterIP: '10.96.0.1', ports: [{ port: 80 }] } });
const slice = (name: string, serviceName: string | undefined, namespace = 'default'): EndpointSlice => ({
  metadata: { name, namespace, labels: serviceName ? { 'kubernetes.io/service-name': serviceName } : {} },
  addressType: 'IPv4',
  endpoints: [],
});

describe('ClusterStore', () => {
  it('marks the Service an object belongs to, and nothing for an object seen before (the same object)', () => {
    const store = new ClusterStore();
    const web = service('web');
    const webSlice = slice('web-1', 'web');
    store.upsertService(web);
    store.upsertEndpointSlice(webSlice);
    store.upsertService(service('db', 'data'));
    expect(store.takeChanged()).toEqual(new Set(['default/web', 'data/db']));
    store.upsertService(web);
    store.upsertEndpointSlice(webSlice);
    expect(store.takeChanged()).toEqual(new Set());
    store.upsertEndpointSlice(slice('web-1', 'web'));
    expect(store.takeChanged()).toEqual(new Set(['default/web']));
  });

  it('files slices under their Service, in name order; a relabelled slice leaves its old Service; an unlabelled one belongs to none', () => {
    const store = new ClusterStore();
    store.upsertEndpointSlice(slice('web-b', 'web'));
    store.upsertEndpointSlice(slice('web-a', 'web'));
    store.upsertEndpointSlice(slice('stray', undefined));
    expect(store.slicesOf('default/web').map((s) => s.metadata.name)).toEqual(['web-a', 'web-b']);
    store.takeChanged();
    store.upsertEndpointSlice(slice('web-b', 'api'));
    expect(store.takeChanged()).toEqual(new Set(['default/web', 'default/api']));
    expect(store.slicesOf('default/web').map((s) => s.metadata.name)).toEqual(['web-a']);
    expect(store.slicesOf('default/api').map((s) => s.metadata.name)).toEqual(['web-b']);
    store.deleteEndpointSlice(slice('web-a', 'web'));
    expect(store.slicesOf('default/web')).toEqual([]);
    expect(store.size).toEqual({ services: 0, endpointSlices: 2 });
  });

  it('hands out the same slices until one of the Service changes, and never changes what it handed out', () => {
    const store = new ClusterStore();
    store.upsertEndpointSlice(slice('web-c', 'web'));
    store.upsertEndpointSlice(slice('web-a', 'web'));
    const before = store.slicesOf('default/web');
    expect(store.slicesOf('default/web')).toBe(before);
    store.upsertEndpointSlice(slice('web-b', 'web'));
    store.upsertEndpointSlice(slice('web-a', 'web'));
    expect(before.map((s) => s.metadata.name)).toEqual(['web-a', 'web-c']);
    expect(store.slicesOf('default/web').map((s) => s.metadata.name)).toEqual(['web-a', 'web-b', 'web-c']);
    const updated = store.slicesOf('default/web');
    store.deleteEndpointSlice(slice('web-b', 'web'));
    expect(updated.map((s) => s.metadata.name)).toEqual(['web-a', 'web-b', 'web-c']);
    expect(store.slicesOf('default/web').map((s) => s.metadata.name)).toEqual(['web-a', 'web-c']);
  });

  it('replaceAll deletes what is no longer there, keeps the first of a repeated Service and says which', () => {
    const store = new ClusterStore();
    const web = service('web');
    store.replaceAll([web, service('db')], [slice('web-1', 'web'), slice('db-1', 'db')]);
    store.takeChanged();
    const repeated = store.replaceAll([web, { ...service('web'), spec: { clusterIP: '10.96.0.9', ports: [{ port: 81 }] } }], [slice('web-1', 'web')]);
    expect(repeated).toEqual(['default/web']);
    expect(store.service('default/web')).toBe(web);
    expect(store.service('default/db')).toBeUndefined();
    expect(store.takeChanged()).toEqual(new Set(['default/db', 'default/web']));
  });

  it('replaceAll again and again: an object given last time is no repeat, one left out is deleted, one given again comes back', () => {
    const store = new ClusterStore();
    const web = service('web');
    const webSlice = slice('web-1', 'web');
    expect(store.replaceAll([web, service('db')], [webSlice, slice('db-1', 'db')])).toEqual([]);
    store.takeChanged();
    expect(store.replaceAll([web], [webSlice])).toEqual([]);
    expect(store.takeChanged()).toEqual(new Set(['default/db']));
    expect(store.size).toEqual({ services: 1, endpointSlices: 1 });
    const db = service('db');
    expect(store.replaceAll([web, db, db], [webSlice, slice('db-1', 'db')])).toEqual(['default/db']);
    expect(store.takeChanged()).toEqual(new Set(['default/db']));
    expect(store.service('default/db')).toBe(db);
    expect(store.slicesOf('default/db').map((s) => s.metadata.name)).toEqual(['db-1']);
    expect(store.replaceAll([], [])).toEqual([]);
    expect(store.size).toEqual({ services: 0, endpointSlices: 0 });
    expect(store.takeChanged()).toEqual(new Set(['default/db', 'default/web']));
  });

  it('tells its listeners once per synchronous burst of changes', async () => {
    const store = new ClusterStore();
    let calls = 0;
    store.onChange(() => calls++);
    store.replaceAll(
      Array.from({ length: 1000 }, (_, i) => service(`svc-${i}`)),
      [],
    );
    await Promise.resolve();
    expect(calls).toBe(1);
    store.deleteService(service('svc-1'));
    await Promise.resolve();
    expect(calls).toBe(2);
  });
});
