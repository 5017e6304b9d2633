import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { goJsonTime, healthBody, parseBindAddress, ProxyHealth, startHealthServer } from '../../../src/agent/health-server.js';
import { ListenError, type HttpEndpoint } from '../../../src/agent/http.js';
import { toNodeInfo } from '../../../src/sources/kube-objects.js';
import { ProxyMetrics } from '../../../src/agent/metrics.js';

const T0 = Date.UTC(2025, 4, 1, 12, 0, 0, 0);
const TIMEOUT = 60_000;

/** A ProxyHealth on a clock the test moves. */
function fakeHealth(families?: ('inet' | 'inet6')[]) {
  const clock = { now: T0 };
  const health = new ProxyHealth({ healthTimeoutMs: TIMEOUT, clock: () => clock.now, ...(families ? { families } : {}) });
  return { clock, health };
}

describe('ProxyHealth', () => {
  it('is healthy at start, before anything is queued or synced', () => {
    const { health } = fakeHealth();
    expect(health.status()).toMatchObject({ healthy: true, nodeEligible: true, lastUpdated: undefined, currentTime: T0 });
  });

  it('stays healthy while a queued update is younger than the timeout, and not once it reaches it', () => {
    const { clock, health } = fakeHealth();
    health.updated();
    health.queued();
    clock.now = T0 + TIMEOUT - 1;
    expect(health.status().healthy).toBe(true);
    clock.now = T0 + TIMEOUT;
    expect(health.status().healthy).toBe(false);
    expect(health.status().lastUpdated).toBe(T0);
    health.updated();
    expect(health.status()).toMatchObject({ healthy: true, lastUpdated: T0 + TIMEOUT });
  });

  it('measures from the oldest pending change, not the latest', () => {
    const { clock, health } = fakeHealth();
    health.queued();
    clock.now = T0 + TIMEOUT / 2;
    health.queued();
    clock.now = T0 + TIMEOUT;
    expect(health.status().healthy).toBe(false);
  });

  it('becomes unhealthy when the first sync never completes', () => {
    const { health } = fakeHealth();
    health.queued(T0);
    expect(health.status(T0 + TIMEOUT).healthy).toBe(false);
  });

  it('is healthy with no pending change however long ago the last sync was', () => {
    const { health } = fakeHealth();
    health.updated(T0);
    expect(health.status(T0 + 100 * TIMEOUT).healthy).toBe(true);
  });

  it('takes the node out of eligibility while it is deleted or tainted for deletion by the autoscaler', () => {
    const { health } = fakeHealth();
    health.setNode(toNodeInfo({ metadata: { deletionTimestamp: '2025-05-01T12:00:00Z' } }));
    expect(health.nodeEligible).toBe(false);
    health.setNode(toNodeInfo({ spec: { taints: [{ key: 'ToBeDeletedByClusterAutoscaler' }] } }));
    expect(health.nodeEligible).toBe(false);
    health.setNode(toNodeInfo({ metadata: { deletionTimestamp: null }, spec: { taints: [{ key: 'node.kubernetes.io/unschedulable' }] } }));
    expect(health.nodeEligible).toBe(true);
    health.setNode(toNodeInfo({ metadata: { deletionTimestamp: new Date(T0) } }));
    expect(health.nodeEligible).toBe(false);
    health.setNode(undefined);
    expect(health.nodeEligible).toBe(true);
  });
});

describe('health bodies', () => {
  it('formats times as Go marshals time.Time', () => {
    expect(goJsonTime(undefined)).toBe('0001-01-01T00:00:00Z');
    expect(goJsonTime(T0)).toBe('2025-05-01T12:00:00Z');
    expect(goJsonTime(T0 + 120)).toBe('2025-05-01T12:00:00.12Z');
    expect(goJsonTime(T0 + 7)).toBe('2025-05-01T12:00:00.007Z');
  });

  it('writes /healthz like kube-proxy: lastUpdated is now when healthy, status per family in key order', () => {
    const { clock, health } = fakeHealth(['inet6', 'inet']);
    health.updated();
    clock.now = T0 + 1500;
    expect(healthBody(health.status(), true)).toEqual({
      code: 200,
      body:
        '{"lastUpdated":"2025-05-01T12:00:01.5Z","currentTime":"2025-05-01T12:00:01.5Z","nodeEligible":true,"healthy":true,' +
        '"status":{"IPv4":{"lastUpdated":"2025-05-01T12:00:00Z","healthy":true},"IPv6":{"lastUpdated":"2025-05-01T12:00:00Z","healthy":true}}}',
    });
  });

  it('keeps the last sync time when unhealthy, and leaves nodeEligible out of /livez', () => {
    const { clock, health } = fakeHealth();
    health.updated();
    health.queued();
    clock.now = T0 + TIMEOUT;
    expect(healthBody(health.status(), false)).toEqual({
      code: 503,
      body: '{"lastUpdated":"2025-05-01T12:00:00Z","currentTime":"2025-05-01T12:01:00Z","healthy":false,"status":{"IPv4":{"lastUpdated":"2025-05-01T12:00:00Z","healthy":false}}}',
    });
  });

  it('answers 503 on /healthz for an ineligible node but reports the proxy itself healthy', () => {
    const { health } = fakeHealth();
    health.updated();
    health.setNode(toNodeInfo({ spec: { taints: [{ key: 'ToBeDeletedByClusterAutoscaler' }] } }));
    const healthz = healthBody(health.status(), true);
    expect(healthz.code).toBe(503);
    expect(JSON.parse(healthz.body)).toMatchObject({ nodeEligible: false, healthy: true, lastUpdated: '2025-05-01T12:00:00Z' });
    expect(healthBody(health.status(), false).code).toBe(200);
  });
});

describe('parseBindAddress', () => {
  it('reads host:port, bracketed IPv6, an empty host and a bare address', () => {
    expect(parseBindAddress('127.0.0.1:0', 10256)).toEqual({ host: '127.0.0.1', port: 0 });
    expect(parseBindAddress('0.0.0.0:10256', 1)).toEqual({ host: undefined, port: 10256 });
    expect(parseBindAddress('[::1]:9000', 1)).toEqual({ host: '::1', port: 9000 });
    expect(parseBindAddress('[::]:9000', 1)).toEqual({ host: undefined, port: 9000 });
    expect(parseBindAddress(':9000', 1)).toEqual({ host: undefined, port: 9000 });
    expect(parseBindAddress('10.1.2.3', 10256)).toEqual({ host: '10.1.2.3', port: 10256 });
    expect(parseBindAddress('fd00::1', 10256)).toEqual({ host: 'fd00::1', port: 10256 });
  });

  it('refuses what is not an address and port', () => {
    for (const text of ['localhost:10256', '10.1.2.3:99999', '10.1.2.3:', 'nonsense']) {
      expect(() => parseBindAddress(text, 1), text).toThrow(expect.objectContaining({ code: 'KIPVS_BIND_ADDRESS' }));
    }
  });
});

describe('startHealthServer', () => {
  const opened: HttpEndpoint[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((endpoint) => endpoint.close()));
  });

  async function start(health: ProxyHealth, metrics?: ProxyMetrics): Promise<string> {
    const endpoint = await startHealthServer('127.0.0.1:0', health, metrics);
    opened.push(endpoint);
    expect(endpoint.address).toBe(`127.0.0.1:${endpoint.port}`);
    return `http://${endpoint.address}`;
  }

  it('serves /healthz and /livez with kube-proxy headers and counts the answers by code', async () => {
    const { clock, health } = fakeHealth();
    const metrics = new ProxyMetrics({ defaultMetrics: false });
    const base = await start(health, metrics);
    health.updated();

    const ok = await fetch(`${base}/healthz`);
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toBe('application/json');
    expect(ok.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await ok.json()).toEqual({
      lastUpdated: '2025-05-01T12:00:00Z',
      currentTime: '2025-05-01T12:00:00Z',
      nodeEligible: true,
      healthy: true,
      status: { IPv4: { lastUpdated: '2025-05-01T12:00:00Z', healthy: true } },
    });

    health.queued();
    clock.now = T0 + TIMEOUT;
    const late = await fetch(`${base}/healthz?verbose`);
    expect(late.status).toBe(503);
    expect(await late.json()).toMatchObject({ healthy: false, lastUpdated: '2025-05-01T12:00:00Z', currentTime: '2025-05-01T12:01:00Z' });
    const livez = await fetch(`${base}/livez`);
    expect(livez.status).toBe(503);
    expect(Object.keys((await livez.json()) as object)).toEqual(['lastUpdated', 'currentTime', 'healthy', 'status']);

    const text = await metrics.registry.metrics();
    expect(text).toContain('kubeproxy_proxy_healthz_total{code="200"} 1');
    expect(text).toContain('kubeproxy_proxy_healthz_total{code="503"} 1');
    expect(text).toContain('kubeproxy_proxy_livez_total{code="503"} 1');
  });

  it('answers /livez 200 for a node being deleted while /healthz says 503', async () => {
    const { health } = fakeHealth();
    const base = await start(health);
    health.setNode(toNodeInfo({ metadata: { deletionTimestamp: '2025-05-01T11:59:00Z' } }));
    const healthz = await fetch(`${base}/healthz`);
    expect(healthz.status).toBe(503);
    expect(await healthz.json()).toMatchObject({ nodeEligible: false, healthy: true });
    expect((await fetch(`${base}/livez`)).status).toBe(200);
  });

  it("answers 404 for other paths, as Go's ServeMux", async () => {
    const { health } = fakeHealth();
    const base = await start(health);
    for (const path of ['/', '/metrics', '/healthz/']) {
      const response = await fetch(`${base}${path}`);
      expect(response.status, path).toBe(404);
      expect(await response.text()).toBe('404 page not found\n');
    }
  });

  it('reports a port in use as a ListenError naming the address and errno', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const error = await startHealthServer(`127.0.0.1:${port}`, fakeHealth().health).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ListenError);
      expect(error).toMatchObject({ code: 'KIPVS_LISTEN', errno: 'EADDRINUSE', address: `127.0.0.1:${port}` });
      expect((error as Error).message).toBe(`listen on 127.0.0.1:${port} for healthz: EADDRINUSE`);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it('stops answering once closed', async () => {
    const endpoint = await startHealthServer('127.0.0.1:0', fakeHealth().health);
    const url = `http://${endpoint.address}/healthz`;
    expect((await fetch(url)).status).toBe(200);
    await endpoint.close();
    await expect(fetch(url)).rejects.toThrow();
  });
});
