import { createServer, type Server } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ProxyHealth } from '../../../src/agent/health-server.js';
import { ServiceHealthServer } from '../../../src/agent/service-health.js';
import { mallocTrimObserver, serviceHealthObserver } from '../../../src/agent/observers.js';
import { nativeShims } from '../../../src/native.js';
import type { SyncResult } from '../../../src/agent/proxier.js';
import { ClusterStore } from '../../../src/sources/cluster-store.js';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Only what the observer reads of a sync. */
const syncResult = (services: string[], full: boolean): SyncResult =>
  ({ full, changes: { services: new Set(services), endpointSlices: [], serviceEvents: 0, endpointSliceEvents: 0 } }) as unknown as SyncResult;

const waitFor = async (condition: () => boolean): Promise<void> => {
  for (let i = 0; i < 100 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  expect(condition()).toBe(true);
};

describe('serviceHealthObserver', () => {
  let server: ServiceHealthServer | undefined;
  let blocker: Server | undefined;
  afterEach(async () => {
    await server?.close();
    const open = blocker;
    if (open?.listening) await new Promise((resolve) => open.close(resolve));
  });

  it('opens a health-check node port that was taken once it is free, at the next sync, even one that changed nothing', async () => {
    const port = await freePort();
    const blocking = createServer();
    blocker = blocking;
    await new Promise<void>((resolve) => blocking.listen(port, '127.0.0.1', resolve));
    const cluster = new ClusterStore();
    cluster.upsertService({
      metadata: { name: 'lb', namespace: 'shop' },
      spec: { type: 'LoadBalancer', clusterIP: '10.96.0.5', externalTrafficPolicy: 'Local', healthCheckNodePort: port, ports: [{ port: 80, nodePort: 30080 }] },
    });
    const health = new ServiceHealthServer({ addresses: ['127.0.0.1'], health: new ProxyHealth({ healthTimeoutMs: 60_000 }), log: pino({ level: 'silent' }) });
    server = health;
    const observer = serviceHealthObserver(health, { name: 'node-a', addresses: ['127.0.0.1'], families: ['inet'] }, pino({ level: 'silent' }));

    if (!observer.synced) throw new Error('expected a synced hook on the observer');
    observer.synced(syncResult(['shop/lb'], false), cluster);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(health.listening().has('shop/lb')).toBe(false);

    await new Promise((resolve) => blocking.close(resolve));
    observer.synced(syncResult([], false), cluster);
    await waitFor(() => health.listening().get('shop/lb') === port);
    expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(503); // no local endpoint
  });
});

describe('mallocTrimObserver', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('trims once a while after a full sync, not after a partial one, one trim for syncs in a row', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const trim = vi.fn(() => true);
    const observer = mallocTrimObserver(trim, pino({ level: 'silent' }), 2000);
    const cluster = new ClusterStore();
    observer.synced?.(syncResult([], false), cluster);
    vi.advanceTimersByTime(5000);
    expect(trim).not.toHaveBeenCalled();
    observer.synced?.(syncResult([], true), cluster);
    observer.synced?.(syncResult([], true), cluster);
    vi.advanceTimersByTime(1999);
    expect(trim).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(trim).toHaveBeenCalledTimes(1);
    observer.synced?.(syncResult([], true), cluster);
    vi.advanceTimersByTime(2000);
    expect(trim).toHaveBeenCalledTimes(2);
  });

  it('gives up after a trim that throws, without throwing out of its timer', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const trim = vi.fn((): boolean => {
      throw new TypeError('mallocTrim is not a function');
    });
    const warnings: string[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => warnings.push(line) });
    const observer = mallocTrimObserver(trim, log, 2000);
    const cluster = new ClusterStore();
    observer.synced?.(syncResult([], true), cluster);
    expect(() => vi.advanceTimersByTime(2000)).not.toThrow();
    observer.synced?.(syncResult([], true), cluster);
    vi.advanceTimersByTime(2000);
    expect(trim).toHaveBeenCalledTimes(1);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('malloc trim failed');
  });

  it("is glibc's malloc_trim in the native shims", () => {
    // The test machine's C library is glibc: the call is there and answers.
    expect(typeof nativeShims().mallocTrim()).toBe('boolean');
  });
});
