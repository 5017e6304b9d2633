import { createServer, type Server } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ProxyHealth } from '../../../src/agent/health-server.js';
import { healthChecksByKey, ServiceHealthServer, serviceHealthBody } from '../../../src/agent/service-health.js';
import type { ServiceHealthCheck } from '../../../src/translate/health-check.js';

/** A port that was free a moment ago (health check node ports are fixed numbers, not 0). */
async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function occupy(port: number, host = '127.0.0.1'): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  return server;
}

function recordingLog() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { lines, log: pino({ level: 'info' }, stream) };
}

const check = (name: string, port: number, localEndpoints: number): ServiceHealthCheck => ({ namespace: 'shop', name, port, localEndpoints });

describe('ServiceHealthServer', () => {
  const servers: ServiceHealthServer[] = [];
  const blockers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.close()));
    await Promise.all(blockers.splice(0).map((blocker) => new Promise((resolve) => blocker.close(resolve))));
  });

  function make(addresses: string[] = ['127.0.0.1'], health = new ProxyHealth({ healthTimeoutMs: 60_000 })) {
    const { lines, log } = recordingLog();
    const server = new ServiceHealthServer({ addresses, health, log });
    servers.push(server);
    return { server, lines, health };
  }

  it("answers every path with kube-proxy's body and headers, 200 while there are local endpoints", async () => {
    const { server } = make();
    const port = await freePort();
    await server.sync(healthChecksByKey([check('web', port, 3)]));
    for (const path of ['/', '/healthz', '/anything?at=all']) {
      const response = await fetch(`http://127.0.0.1:${port}${path}`);
      expect(response.status, path).toBe(200);
      expect(response.headers.get('content-type')).toBe('application/json');
      expect(response.headers.get('x-content-type-options')).toBe('nosniff');
      expect(response.headers.get('x-load-balancing-endpoint-weight')).toBe('3');
      const body = await response.text();
      expect(body).toBe('{\n\t"service": {\n\t\t"namespace": "shop",\n\t\t"name": "web"\n\t},\n\t"localEndpoints": 3,\n\t"serviceProxyHealthy": true\n}');
      expect(JSON.parse(body)).toEqual({ service: { namespace: 'shop', name: 'web' }, localEndpoints: 3, serviceProxyHealthy: true });
    }
    expect(server.listening()).toEqual(new Map([['shop/web', port]]));
  });

  it('answers 503 with no local endpoints, and follows the counts of later syncs', async () => {
    const { server } = make();
    const port = await freePort();
    await server.sync(healthChecksByKey([check('web', port, 0)]));
    const none = await fetch(`http://127.0.0.1:${port}/`);
    expect([none.status, none.headers.get('x-load-balancing-endpoint-weight')]).toEqual([503, '0']);
    expect(await none.json()).toMatchObject({ localEndpoints: 0, serviceProxyHealthy: true });
    await server.sync(healthChecksByKey([check('web', port, 2)]));
    const some = await fetch(`http://127.0.0.1:${port}/`);
    expect([some.status, ((await some.json()) as { localEndpoints: number }).localEndpoints]).toEqual([200, 2]);
  });

  it('answers 503 while the proxy is unhealthy, whatever the endpoints', async () => {
    let now = 0;
    const { server, health } = make(['127.0.0.1'], new ProxyHealth({ healthTimeoutMs: 1000, clock: () => now }));
    const port = await freePort();
    await server.sync(healthChecksByKey([check('web', port, 4)]));
    health.queued();
    now = 1000;
    const response = await fetch(`http://127.0.0.1:${port}/`);
    expect(response.status).toBe(503);
    expect(response.headers.get('x-load-balancing-endpoint-weight')).toBe('4');
    expect(await response.json()).toMatchObject({ localEndpoints: 4, serviceProxyHealthy: false });
  });

  it('closes the port of a Service that no longer needs one, and moves one whose port changed', async () => {
    const { server, lines } = make();
    const [first, second] = [await freePort(), await freePort()];
    await server.sync(healthChecksByKey([check('web', first, 1), check('api', second, 1)]));
    const moved = await freePort();
    await server.sync(healthChecksByKey([check('web', moved, 1)]));
    await expect(fetch(`http://127.0.0.1:${second}/`)).rejects.toThrow();
    await expect(fetch(`http://127.0.0.1:${first}/`)).rejects.toThrow();
    expect((await fetch(`http://127.0.0.1:${moved}/`)).status).toBe(200);
    expect(server.listening()).toEqual(new Map([['shop/web', moved]]));
    expect(lines.filter((line) => line.msg === 'closing health check').map((line) => line.service)).toEqual(['shop/web', 'shop/api']);
  });

  it('listens on each node address given', async () => {
    const { server } = make(['127.0.0.1', '127.0.0.2']);
    const port = await freePort();
    await server.sync(healthChecksByKey([check('web', port, 1)]));
    expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.2:${port}/`)).status).toBe(200);
    // Not on addresses it was not given.
    await expect(fetch(`http://127.0.0.3:${port}/`)).rejects.toThrow();
  });

  it('listens on every address when none are given', async () => {
    const { server } = make([]);
    const port = await freePort();
    await server.sync(healthChecksByKey([check('web', port, 1)]));
    expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.5:${port}/`)).status).toBe(200);
  });

  it('logs a port it cannot bind with the Service and errno, keeps the others, and retries at the next sync', async () => {
    const { server, lines } = make(['127.0.0.1', '127.0.0.2']);
    const [taken, free] = [await freePort(), await freePort()];
    // Taken on the second address only: the first must not be left half-open.
    const blocker = await occupy(taken, '127.0.0.2');
    blockers.push(blocker);
    await server.sync(healthChecksByKey([check('web', taken, 1), check('api', free, 1)]));
    expect(lines.find((line) => line.msg === 'failed to start health check')).toMatchObject({
      service: 'shop/web',
      port: taken,
      address: `127.0.0.2:${taken}`,
      errno: 'EADDRINUSE',
    });
    expect(server.listening()).toEqual(new Map([['shop/api', free]]));
    expect((await fetch(`http://127.0.0.1:${free}/`)).status).toBe(200);
    await expect(fetch(`http://127.0.0.1:${taken}/`)).rejects.toThrow();

    blockers.splice(0);
    await new Promise((resolve) => blocker.close(resolve));
    await server.sync(healthChecksByKey([check('web', taken, 1), check('api', free, 1)]));
    expect((await fetch(`http://127.0.0.2:${taken}/`)).status).toBe(200);
  });

  it('closes every listener on close()', async () => {
    const { server } = make();
    const port = await freePort();
    await server.sync(healthChecksByKey([check('web', port, 1)]));
    await server.close();
    await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
    await server.sync(healthChecksByKey([check('web', port, 1)]));
    expect(server.listening().size).toBe(0);
  });
});

describe('serviceHealthBody', () => {
  it('is the tab-indented JSON kube-proxy writes, without a trailing newline', () => {
    expect(serviceHealthBody('default', 'lb', 0, false)).toBe(
      '{\n\t"service": {\n\t\t"namespace": "default",\n\t\t"name": "lb"\n\t},\n\t"localEndpoints": 0,\n\t"serviceProxyHealthy": false\n}',
    );
  });
});
