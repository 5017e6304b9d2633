// Where the API server is and how to authenticate: a kubeconfig file, or the in-cluster service
// account; checked at start so that a bad configuration fails at once instead of retrying forever.
//
// The credentials kube-proxy is given in practice (a service account token, from the pod or a
// file the kubelet rotates; a client certificate; basic auth) are read here and sent by node's
// own http(s) agent. Exec plugins, auth providers, impersonation and proxy-url are left to client-node's
// KubeConfig, loaded only then: its generated API, which KubeConfig imports, is about 36 MB of
// resident memory and a second of start-up under UML.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { isIPv6 } from 'node:net';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { asError, KipvsError } from '../errors.js';

/** How to reach the API server: its URL, and what each request carries. */
export interface KubeAccess {
  /** The server's URL without a trailing slash, e.g. `https://10.96.0.1:443`. */
  readonly server: string;
  /** Where it came from, for messages: `--kubeconfig FILE` or `the in-cluster service account`. */
  readonly origin: string;
  /** The agent (TLS settings, kept-alive connections) and headers for one request. */
  requestOptions(): Promise<KubeRequestOptions>;
}

export interface KubeRequestOptions {
  readonly agent: HttpAgent;
  readonly headers: Readonly<Record<string, string>>;
}

const SERVICE_ACCOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';
/** client-go's cachedTokenSource reads a token file again after a minute (the kubelet rotates it). */
const TOKEN_FILE_PERIOD_MS = 60_000;
const USER_AGENT = 'kipvs';
/** A list page or a watch request unanswered this long is given up, its credentials included. */
export const REQUEST_TIMEOUT_MS = 60_000;
/** What an exec credential plugin may print (an ExecCredential is a few kB) before it is killed. */
const EXEC_PLUGIN_OUTPUT_BYTES = 1024 * 1024;

type YamlMap = Readonly<Record<string, unknown>>;

const asMap = (value: unknown): YamlMap => (value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as YamlMap) : {});
const asText = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);

/** The entry of a kubeconfig list (`clusters`, `users`, `contexts`) with this name. */
function named(list: unknown, name: string | undefined, field: string): YamlMap | undefined {
  if (name === undefined || !Array.isArray(list)) return undefined;
  const entry = (list as unknown[]).map(asMap).find((item) => item.name === name);
  return entry === undefined ? undefined : asMap(entry[field]);
}

/** A bearer token read from a file, again once it is a minute old; the last good one if a read fails. */
export class TokenFile {
  private token: string | undefined;
  private readAt = -Infinity;

  constructor(
    private readonly path: string,
    private readonly now: () => number = () => performance.now(),
  ) {}

  current(): string | undefined {
    if (this.now() - this.readAt < TOKEN_FILE_PERIOD_MS && this.token !== undefined) return this.token;
    try {
      this.token = readFileSync(this.path, 'utf8').trim();
      this.readAt = this.now();
    } catch {
      // As client-go: keep using the last token; the request's 401 says the rest.
    }
    return this.token;
  }
}

interface Credentials {
  readonly token?: string;
  readonly tokenFile?: TokenFile;
  readonly basic?: { readonly username: string; readonly password: string };
}

/** Our own access: node's agent with the cluster's TLS settings, and the user's token or password. */
function directAccess(server: string, origin: string, agent: HttpAgent, credentials: Credentials): KubeAccess {
  return {
    server,
    origin,
    requestOptions: () => {
      const headers: Record<string, string> = { Accept: 'application/json', 'User-Agent': USER_AGENT };
      // As client-go: the file's token, as last read, wins over an inline one.
      const token = credentials.tokenFile?.current() || credentials.token;
      if (token) headers.Authorization = `Bearer ${token}`;
      else if (credentials.basic !== undefined)
        headers.Authorization = `Basic ${Buffer.from(`${credentials.basic.username}:${credentials.basic.password}`).toString('base64')}`;
      return Promise.resolve({ agent, headers });
    },
  };
}

/** Where a pod finds the API server and its service account (tests give their own). */
export interface InCluster {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The service account's directory: `token` and `ca.crt`. */
  readonly directory: string;
}

const IN_CLUSTER: InCluster = { env: process.env, directory: SERVICE_ACCOUNT };

/** As client-go's rest.InClusterConfig: the service's env variables, the account's token and CA. */
function inCluster({ env, directory }: InCluster): KubeAccess {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw new KipvsError('KIPVS_KUBECONFIG', 'no --kubeconfig given and not running in a cluster (KUBERNETES_SERVICE_HOST/PORT are not set)');
  }
  const origin = 'the in-cluster service account';
  const ca = readCredentialFile(`${directory}/ca.crt`, `${directory}/ca.crt`, origin);
  const server = `https://${isIPv6(host) ? `[${host}]` : host}:${port}`;
  const agent = new HttpsAgent({ keepAlive: true, ca });
  return directAccess(server, origin, agent, { tokenFile: new TokenFile(`${directory}/token`) });
}

/** A `*-data` field (base64) or a file named by the other field (relative to the kubeconfig). */
function dataOrFile(entry: YamlMap, dataField: string, fileField: string, directory: string, origin: string): Buffer | undefined {
  const data = asText(entry[dataField]);
  if (data !== undefined) return Buffer.from(data, 'base64');
  const file = asText(entry[fileField]);
  if (file === undefined) return undefined;
  return readCredentialFile(resolve(directory, file), `${fileField} ${file}`, origin);
}

/** A file the credentials name; one that cannot be read fails the start, named as `what`. */
function readCredentialFile(path: string, what: string, origin: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new KipvsError('KIPVS_KUBECONFIG', `${origin}: cannot read ${what}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

/** The server's URL as requests are built on it (`server + path`). */
const withoutTrailingSlash = (server: string): string => server.replace(/\/+$/, '');

/** What only client-node's KubeConfig does: exec plugins, auth providers, impersonation, a proxy. */
function needsClientNode(cluster: YamlMap, user: YamlMap): boolean {
  return (
    ['exec', 'auth-provider', 'as', 'as-uid', 'as-groups', 'as-user-extra'].some((field) => user[field] !== undefined) || cluster['proxy-url'] !== undefined
  );
}

function fromFile(path: string, execTimeoutMs: number): Promise<KubeAccess> | KubeAccess {
  const origin = `kubeconfig ${path}`;
  let config: YamlMap;
  try {
    config = asMap(parseYaml(readFileSync(path, 'utf8')));
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message.split('\n')[0];
    throw new KipvsError('KIPVS_KUBECONFIG', `cannot read kubeconfig ${path}: ${reason}`);
  }
  const contextName = asText(config['current-context']);
  const context = named(config.contexts, contextName, 'context') ?? {};
  const cluster = named(config.clusters, asText(context.cluster), 'cluster');
  const server = asText(cluster?.server);
  if (cluster === undefined || server === undefined) {
    throw new KipvsError('KIPVS_KUBECONFIG', `${origin}: no cluster for current context "${contextName ?? ''}"`);
  }
  if (!URL.canParse(server)) throw new KipvsError('KIPVS_KUBECONFIG', `${origin}: server "${server}" is not a URL`);
  const userName = asText(context.user);
  const listedUser = named(config.users, userName, 'user');
  // As client-go's validation: a context naming a user the file lacks is a mistake, not anonymity.
  if (userName !== undefined && listedUser === undefined) {
    throw new KipvsError('KIPVS_KUBECONFIG', `${origin}: user "${userName}" was not found for context "${contextName ?? ''}"`);
  }
  const user = listedUser ?? {};
  if (needsClientNode(cluster, user)) return clientNodeAccess(path, origin, execTimeoutMs);
  const directory = dirname(path);
  const insecure = cluster['insecure-skip-tls-verify'] === true;
  const tls = {
    ca: dataOrFile(cluster, 'certificate-authority-data', 'certificate-authority', directory, origin),
    cert: dataOrFile(user, 'client-certificate-data', 'client-certificate', directory, origin),
    key: dataOrFile(user, 'client-key-data', 'client-key', directory, origin),
    servername: asText(cluster['tls-server-name']),
    rejectUnauthorized: !insecure,
  };
  const agent = new URL(server).protocol === 'http:' ? new HttpAgent({ keepAlive: true }) : new HttpsAgent({ keepAlive: true, ...tls });
  // `tokenFile` is what kubeadm writes for kube-proxy; `token-file` is client-node's spelling.
  const tokenFile = asText(user.tokenFile) ?? asText(user['token-file']);
  const username = asText(user.username);
  return directAccess(withoutTrailingSlash(server), origin, agent, {
    token: asText(user.token),
    tokenFile: tokenFile === undefined ? undefined : new TokenFile(resolve(directory, tokenFile)),
    basic: username === undefined ? undefined : { username, password: asText(user.password) ?? '' },
  });
}

/**
 * client-node's ExecAuth starts the plugin for each request that finds no cached credential, with
 * no deadline, and keeps all it prints: a plugin that hung kept running after kipvs had given its
 * request up, and each retry started one more. Its spawn function (`execFn`, private in its
 * types, so found by name) is replaced by one that kills the plugin past `timeoutMs` or past
 * EXEC_PLUGIN_OUTPUT_BYTES of output; client-node then fails that request as for any plugin that
 * exits unsuccessfully. The plugin gets a process group of its own, killed whole: a plugin that
 * is a script leaves its children holding its output pipes, and client-node answers only once
 * those close.
 */
function boundExecPlugins(config: object, timeoutMs: number, userHasExec: boolean): void {
  const authenticators = (config as { authenticators?: unknown }).authenticators;
  const exec = Array.isArray(authenticators)
    ? (authenticators as unknown[]).find((each): each is { execFn: unknown } => typeof each === 'object' && each !== null && 'execFn' in each)
    : undefined;
  if (!exec) {
    if (!userHasExec) return;
    throw new KipvsError('KIPVS_INTERNAL', "client-node's exec authenticator (its execFn) was not found: the bounds on exec plugins cannot be set");
  }
  exec.execFn = (command: string, args: readonly string[], options: SpawnOptions): ChildProcess => {
    const plugin = spawn(command, args, { ...options, detached: true });
    const killAll = (): void => {
      try {
        if (plugin.pid !== undefined) process.kill(-plugin.pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
      plugin.stdout?.destroy();
      plugin.stderr?.destroy();
    };
    // Until the pipes close, not until the plugin exits: a child left behind may hold them.
    const deadline = setTimeout(killAll, timeoutMs);
    deadline.unref();
    plugin.on('close', () => clearTimeout(deadline));
    let printed = 0;
    const count = (chunk: { length: number }): void => {
      printed += chunk.length;
      if (printed > EXEC_PLUGIN_OUTPUT_BYTES) killAll();
    };
    plugin.stdout?.on('data', count);
    plugin.stderr?.on('data', count);
    return plugin;
  };
}

/** client-node's KubeConfig for what only it does; each request gets its agent and headers. */
async function clientNodeAccess(path: string, origin: string, execTimeoutMs: number): Promise<KubeAccess> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const config = new KubeConfig();
  try {
    config.loadFromFile(path);
  } catch (error) {
    throw new KipvsError('KIPVS_KUBECONFIG', `cannot read kubeconfig ${path}: ${(error as Error).message.split('\n')[0]}`);
  }
  const user = config.getCurrentUser();
  const authProvider = user?.authProvider as { readonly name?: unknown; readonly config?: { readonly exec?: unknown } } | undefined;
  boundExecPlugins(config, execTimeoutMs, user?.exec !== undefined || authProvider?.name === 'exec' || authProvider?.config?.exec !== undefined);
  const cluster = config.getCurrentCluster();
  // client-node refuses every request to an http:// server without this (config.js createAgent):
  // say so now rather than retry forever.
  if (cluster?.server.startsWith('http:') && !cluster.skipTLSVerify) {
    throw new KipvsError(
      'KIPVS_KUBECONFIG',
      `${origin}: server ${cluster.server} is plain HTTP, which needs insecure-skip-tls-verify: true with this user's exec or auth-provider`,
    );
  }
  return {
    server: withoutTrailingSlash(cluster?.server ?? ''),
    origin,
    requestOptions: async () => {
      const options: { headers: Record<string, string>; agent?: HttpAgent; auth?: string } = { headers: {} };
      await config.applyToHTTPSOptions(options).catch((error: unknown) => {
        // client-node's message for a failed exec plugin is the plugin's stderr: often empty, or
        // up to the output bound from one that was killed.
        const reason =
          asError(error).message.trim().slice(0, 1024) ||
          `the exec plugin failed and printed nothing on stderr (it exited unsuccessfully, or was killed: still running after ${execTimeoutMs / 1000} s, or more than ${EXEC_PLUGIN_OUTPUT_BYTES} bytes printed)`;
        throw new KipvsError('KIPVS_KUBE_CREDENTIALS', `${origin}: no credentials: ${reason}`);
      });
      const headers: Record<string, string> = { Accept: 'application/json', 'User-Agent': USER_AGENT, ...options.headers };
      if (options.auth !== undefined) headers.Authorization = `Basic ${Buffer.from(options.auth).toString('base64')}`;
      return { agent: options.agent ?? new HttpsAgent(), headers };
    },
  };
}

export interface KubeAccessOptions {
  /** Where the pod's service account is, without a kubeconfig (the tests give their own). */
  readonly pod?: InCluster;
  /** An exec credential plugin still running this long is killed (the request's timeout). */
  readonly execTimeoutMs?: number;
}

/** The API server and credentials of `path`, or of the pod's service account without one. */
export async function loadKubeAccess(
  path: string | undefined,
  { pod = IN_CLUSTER, execTimeoutMs = REQUEST_TIMEOUT_MS }: KubeAccessOptions = {},
): Promise<KubeAccess> {
  return path === undefined ? inCluster(pod) : fromFile(path, execTimeoutMs);
}
