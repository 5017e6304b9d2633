// kube-proxy's ServiceHealthServer (pkg/proxy/healthcheck/service_health.go): one HTTP listener
// per health check node port, which a cloud load balancer probes to learn whether this node has
// local endpoints for a Service with externalTrafficPolicy Local. Every path answers; 200 when
// the node has local ready endpoints and the proxy is healthy, 503 otherwise.
import { createServer } from 'node:http';
import type { Logger } from 'pino';
import { healthCheckKey, type ServiceHealthCheck } from '../translate/health-check.js';
import type { ProxyHealth } from './health-server.js';
import { ListenError, listen, type HttpEndpoint } from './http.js';

export interface ServiceHealthServerOptions {
  /**
   * The node addresses to listen on: those matching --nodeport-addresses. Empty (no
   * --nodeport-addresses) listens on every address, as kube-proxy does.
   */
  readonly addresses: readonly string[];
  readonly health: ProxyHealth;
  readonly log: Logger;
}

interface Listener {
  readonly namespace: string;
  readonly name: string;
  readonly port: number;
  localEndpoints: number;
  readonly servers: readonly HttpEndpoint[];
}

/**
 * The response body exactly as kube-proxy writes it: a dedented, tab-indented template, no
 * trailing newline. (Namespaces and names are DNS labels, so Go's %q and JSON quote them alike.)
 */
export function serviceHealthBody(namespace: string, name: string, localEndpoints: number, proxyHealthy: boolean): string {
  return [
    '{',
    '\t"service": {',
    `\t\t"namespace": ${JSON.stringify(namespace)},`,
    `\t\t"name": ${JSON.stringify(name)}`,
    '\t},',
    `\t"localEndpoints": ${localEndpoints},`,
    `\t"serviceProxyHealthy": ${proxyHealthy}`,
    '}',
  ].join('\n');
}

export class ServiceHealthServer {
  private readonly listeners = new Map<string, Listener>();
  private queue: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly options: ServiceHealthServerOptions) {}

  /**
   * Makes the listeners match `checks` (keyed by healthCheckKey()): closes those of Services that
   * are gone or changed port, opens new ones, and updates every count. A port that cannot be
   * bound is logged with its Service and errno and retried at the next sync; the others work.
   * Calls run one after another.
   */
  sync(checks: ReadonlyMap<string, ServiceHealthCheck>): Promise<void> {
    const run = this.queue.then(() => this.apply(checks));
    this.queue = run.catch(() => {});
    return run;
  }

  /** The ports listening now, by `namespace/name`. */
  listening(): ReadonlyMap<string, number> {
    return new Map([...this.listeners].map(([key, listener]) => [key, listener.port]));
  }

  close(): Promise<void> {
    const run = this.queue.then(async () => {
      this.closed = true;
      const listeners = [...this.listeners.values()];
      this.listeners.clear();
      await Promise.all(listeners.flatMap((listener) => listener.servers.map((server) => server.close())));
    });
    this.queue = run.catch(() => {});
    return run;
  }

  private async apply(checks: ReadonlyMap<string, ServiceHealthCheck>): Promise<void> {
    if (this.closed) return;
    const { log } = this.options;
    for (const [key, listener] of [...this.listeners]) {
      const wanted = checks.get(key);
      if (wanted && wanted.port === listener.port) continue;
      log.info({ service: key, port: listener.port }, 'closing health check');
      this.listeners.delete(key);
      await Promise.all(listener.servers.map((server) => server.close()));
    }
    for (const [key, check] of checks) {
      const listener = this.listeners.get(key);
      if (listener) {
        listener.localEndpoints = check.localEndpoints;
        continue;
      }
      const opened = await this.open(key, check);
      if (opened) {
        log.info({ service: key, port: check.port }, 'opened health check');
        this.listeners.set(key, opened);
      }
    }
  }

  private async open(key: string, check: ServiceHealthCheck): Promise<Listener | undefined> {
    const hosts = this.options.addresses.length > 0 ? this.options.addresses : [undefined];
    const servers: HttpEndpoint[] = [];
    for (const host of hosts) {
      try {
        servers.push(await listen(this.serverFor(key), { host, port: check.port }, `health check of ${key}`));
      } catch (error) {
        // As kube-proxy: close what did open, so that a retry (or another owner of the port) can have it.
        await Promise.all(servers.map((server) => server.close()));
        const errno = error instanceof ListenError ? error.errno : error instanceof Error ? error.message : String(error);
        const address = error instanceof ListenError ? error.address : String(host);
        this.options.log.error({ service: key, port: check.port, address, errno }, 'failed to start health check');
        return undefined;
      }
    }
    return { namespace: check.namespace, name: check.name, port: check.port, localEndpoints: check.localEndpoints, servers };
  }

  private serverFor(key: string): ReturnType<typeof createServer> {
    return createServer((_request, response) => {
      const listener = this.listeners.get(key);
      if (!listener) {
        // A request on a connection accepted just before the listener closed. kube-proxy answers
        // an empty 200 here; "unavailable" is the safer answer for a Service we no longer serve.
        response.writeHead(503).end();
        return;
      }
      const healthy = this.options.health.status().healthy;
      const count = listener.localEndpoints;
      response.writeHead(count !== 0 && healthy ? 200 : 503, {
        'Content-Type': 'application/json',
        'X-Content-Type-Options': 'nosniff',
        // Weighted load balancers (GCE WEIGHTED_MAGLEV) spread traffic by local endpoint count.
        'X-Load-Balancing-Endpoint-Weight': String(count),
      });
      response.end(serviceHealthBody(listener.namespace, listener.name, count, healthy));
    });
  }
}

/** Checks keyed as sync() wants them. */
export const healthChecksByKey = (checks: Iterable<ServiceHealthCheck>): Map<string, ServiceHealthCheck> =>
  new Map([...checks].map((check) => [healthCheckKey(check), check]));
