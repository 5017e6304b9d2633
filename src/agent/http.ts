// The HTTP plumbing the agent's servers share (/healthz, /metrics, the per-Service health checks):
// listening with errors that name the address, closing without waiting on keep-alive clients,
// and Go's answers for unknown paths.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { formatHostPort } from '../ip.js';
import { KipvsError } from '../errors.js';

/** A listener that could not be opened: names the address and the errno (`EADDRINUSE`). */
export class ListenError extends KipvsError {
  constructor(
    readonly what: string,
    readonly address: string,
    readonly errno: string,
  ) {
    super('KIPVS_LISTEN', `listen on ${address} for ${what}: ${errno}`);
  }
}

export interface BindAddress {
  /** undefined: every address, both families (Go listens dual-stack on 0.0.0.0 and :: alike). */
  readonly host: string | undefined;
  readonly port: number;
}

export interface HttpEndpoint {
  /** The address actually bound, with the port the kernel chose for port 0. */
  readonly address: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Opens `server` on `bind`; a bind failure becomes a ListenError naming `what` and the address. */
export function listen(server: Server, bind: BindAddress, what: string): Promise<HttpEndpoint> {
  const shown = formatHostPort(bind.host ?? '0.0.0.0', bind.port);
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => reject(new ListenError(what, shown, error.code ?? error.message));
    server.once('error', onError);
    server.listen({ host: bind.host, port: bind.port }, () => {
      server.off('error', onError);
      const bound = server.address();
      const port = typeof bound === 'object' && bound !== null ? bound.port : bind.port;
      const host = typeof bound === 'object' && bound !== null ? bound.address : (bind.host ?? '::');
      resolve({ address: formatHostPort(host, port), port, close: () => closeServer(server) });
    });
  });
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Keep-alive connections would hold close() open and keep answering for a removed listener.
    server.closeAllConnections();
  });
}

/** Go's http.NotFound, which kube-proxy's muxes answer for unknown paths. */
export function notFound(response: ServerResponse): void {
  response.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
  response.end('404 page not found\n');
}

export const pathOf = (request: IncomingMessage): string => new URL(request.url ?? '/', 'http://localhost').pathname;
