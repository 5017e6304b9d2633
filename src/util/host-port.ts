// host:port as kube-proxy takes a bind address (--healthz-bind-address, metricsBindAddress): a bare
// IP gets the default port (proxyutil.AppendPortIfNeeded), then net.SplitHostPort. One parser for
// the flags, the configuration file and the servers that listen on the result.
import { isIP } from 'node:net';

export interface HostPort {
  /** The IP as written ('' for `:port`); never a name. */
  readonly host: string;
  readonly port: number;
}

/**
 * `host:port`, `[v6]:port`, `:port`, or a bare IP that takes `defaultPort`; the reason when it is none of these.
 * `minPort` 1 for kube-proxy's configuration validation; the servers also take 0 (any free port).
 */
export function parseHostPort(text: string, defaultPort: number, minPort = 0): HostPort | { readonly error: string } {
  if (isIP(text) !== 0) return { host: text, port: defaultPort };
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d+)$/.exec(text);
  if (match === null) return { error: `"${text}" must be IP:port` };
  const host = match[1] ?? match[2] ?? '';
  const port = Number(match[3]);
  if (host !== '' && isIP(host) === 0) return { error: `"${host}" must be a valid IP` };
  if (port < minPort || port > 0xffff) return { error: `port ${String(port)} must be ${String(minPort)}-65535` };
  return { host, port };
}

/** The canonical `host:port` text of a parsed address (`[v6]:port` for IPv6). */
export const formatBindAddress = ({ host, port }: HostPort): string => (host.includes(':') ? `[${host}]:${String(port)}` : `${host}:${String(port)}`);
