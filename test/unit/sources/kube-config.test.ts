// How kipvs reaches the API server: the credentials and TLS settings of a kubeconfig or of a pod's
// service account, against the test API server over HTTPS (test/fixtures/tls) and HTTP.
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterStore } from '../../../src/sources/cluster-store.js';
import { TokenFile, loadKubeAccess } from '../../../src/sources/kube-config.js';
import { KubeSource } from '../../../src/sources/kube-source.js';
import { TestApiServer } from '../../support/api-server.js';

const TLS_DIR = join(import.meta.dirname, '../../fixtures/tls');
const tlsFile = (name: string): Buffer => readFileSync(join(TLS_DIR, name));
const BACKOFF = { initialMs: 40, maxMs: 160 };

function capturedLog(): { log: Logger; records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, records };
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('reaching the API server', () => {
  let dir: string;
  let server: TestApiServer | undefined;
  let source: KubeSource | undefined;
  let logged: ReturnType<typeof capturedLog>;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'kipvs-kubeconfig-'));
    logged = capturedLog();
  });

  afterEach(async () => {
    await source?.stop();
    source = undefined;
    await server?.stop();
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  const startSource = async (kubeconfig: string | undefined, signal?: AbortSignal): Promise<KubeSource> => {
    source = await KubeSource.start({ kubeconfig, nodeName: 'node-a', sink: new ClusterStore(), log: logged.log, backoff: BACKOFF, signal });
    return source;
  };

  const httpsServer = async (clientCa = false): Promise<TestApiServer> => {
    server = await TestApiServer.start({ tls: { key: tlsFile('server.key'), cert: tlsFile('server.crt'), ...(clientCa ? { ca: tlsFile('ca.crt') } : {}) } });
    return server;
  };

  it('over HTTPS with a client certificate and a CA from files named relative to the kubeconfig', async () => {
    const api = await httpsServer(true);
    for (const name of ['ca.crt', 'client.crt', 'client.key']) copyFileSync(join(TLS_DIR, name), join(dir, name));
    const kubeconfig = api.writeKubeconfig(dir, { 'client-certificate': 'client.crt', 'client-key': 'client.key' }, { 'certificate-authority': 'ca.crt' });
    await startSource(kubeconfig);
    expect(api.requests.length).toBeGreaterThan(0);
    expect(api.requests.every((request) => request.clientCertificate === 'system:kube-proxy' && request.authorization === undefined)).toBe(true);
  });

  it('over HTTPS with inline data, a token and tls-server-name', async () => {
    const api = await httpsServer();
    const kubeconfig = api.writeKubeconfig(
      dir,
      { token: 'inline-token' },
      { 'certificate-authority-data': tlsFile('ca.crt').toString('base64'), 'tls-server-name': 'kubernetes.test' },
    );
    await startSource(kubeconfig);
    expect(api.requests.every((request) => request.authorization === 'Bearer inline-token')).toBe(true);
  });

  it('with basic auth', async () => {
    const api = (server = await TestApiServer.start());
    await startSource(api.writeKubeconfig(dir, { username: 'admin', password: 's3cret' }));
    expect(api.requests.every((request) => request.authorization === `Basic ${Buffer.from('admin:s3cret').toString('base64')}`)).toBe(true);
  });

  it('refuses a server whose certificate its CA does not sign, and keeps retrying', async () => {
    const api = await httpsServer();
    const controller = new AbortController();
    const starting = startSource(api.writeKubeconfig(dir, { token: 't' }, {}), controller.signal);
    await waitFor('a refused attempt', () => logged.records.some((record) => /self-signed|unable to verify|certificate/i.test(String(record.err))));
    expect(api.requests).toEqual([]);
    controller.abort();
    await expect(starting).rejects.toMatchObject({ code: 'KIPVS_ABORTED' });
  });

  it('to a plain-HTTP server without insecure-skip-tls-verify, as kubectl and client-go do', async () => {
    const api = (server = await TestApiServer.start());
    await startSource(api.writeKubeconfig(dir, { token: 'plain' }, {}));
    expect(api.requests.every((request) => request.authorization === 'Bearer plain')).toBe(true);
  });

  it('with an exec plugin, through client-node', async () => {
    const api = (server = await TestApiServer.start());
    const credential = JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: 'from-exec' } });
    const exec = { apiVersion: 'client.authentication.k8s.io/v1', command: 'sh', args: ['-c', `echo '${credential}'`], interactiveMode: 'Never' };
    await startSource(api.writeKubeconfig(dir, { exec }));
    expect(api.requests.length).toBeGreaterThan(0);
    expect(api.requests.every((request) => request.authorization === 'Bearer from-exec')).toBe(true);
    // client-node refuses plain HTTP unless told to skip TLS verification: said at start.
    await expect(loadKubeAccess(api.writeKubeconfig(dir, { exec }, {}))).rejects.toThrow(/plain HTTP, which needs insecure-skip-tls-verify: true/);
  });

  /** Whether the process of `pidFile` (written by a plugin) still runs. */
  const pluginRuns = (pidFile: string): boolean => {
    const pid = Number(readFileSync(pidFile, 'utf8'));
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  /** Starts the API source with an exec plugin that first writes its pid to `pidFile`; stopped when `given up` is logged. */
  async function startWithPlugin(pluginScript: string, pidFile: string, givenUp: RegExp): Promise<void> {
    const api = (server = await TestApiServer.start());
    const exec = {
      apiVersion: 'client.authentication.k8s.io/v1',
      command: 'sh',
      args: ['-c', `echo $$ > ${pidFile}; ${pluginScript}`],
      interactiveMode: 'Never',
    };
    const controller = new AbortController();
    const starting = KubeSource.start({
      kubeconfig: api.writeKubeconfig(dir, { exec }),
      nodeName: 'node-a',
      sink: new ClusterStore(),
      log: logged.log,
      backoff: BACKOFF,
      requestTimeoutMs: 300,
      signal: controller.signal,
    });
    await waitFor('given up', () => logged.records.some((record) => givenUp.test(String(record.err))));
    controller.abort();
    await expect(starting).rejects.toMatchObject({ code: 'KIPVS_ABORTED' });
  }

  it('gives up a request whose exec plugin never answers, within the request timeout, and kills the plugin', async () => {
    const pidFile = join(dir, 'plugin.pid');
    await startWithPlugin('exec sleep 30', pidFile, /no answer within 0.3 s/);
    // client-node alone left it running (and started one more at each retry).
    await waitFor('the hung plugin killed', () => !pluginRuns(pidFile));
  });

  it('kills an exec plugin that is a script, with the children that hold its output', async () => {
    const childPid = join(dir, 'child.pid');
    // The child holds the plugin's stdout and stderr: client-node waits for them to close.
    await startWithPlugin(`sleep 30 & echo $! > ${childPid}; wait`, join(dir, 'plugin.pid'), /no answer within 0.3 s|no credentials/);
    await waitFor('the child written down', () => existsSync(childPid) && readFileSync(childPid, 'utf8').trim() !== '');
    await waitFor("the plugin's child killed", () => !pluginRuns(childPid));
  });

  it('kills an exec plugin that prints without end, past a bound', async () => {
    const pidFile = join(dir, 'plugin.pid');
    // Killed at the bound, well before the request's timeout.
    await startWithPlugin('exec yes', pidFile, /no credentials: the exec plugin failed and printed nothing on stderr/);
    await waitFor('the endless plugin killed', () => !pluginRuns(pidFile));
  });

  it('refuses a context that names a user the kubeconfig lacks, as client-go does', async () => {
    const api = (server = await TestApiServer.start());
    const kubeconfig = api.writeKubeconfig(dir, { token: 't' });
    writeFileSync(kubeconfig, readFileSync(kubeconfig, 'utf8').replace('"user": "test"', '"user": "nobody"'));
    await expect(loadKubeAccess(kubeconfig)).rejects.toThrow(`kubeconfig ${kubeconfig}: user "nobody" was not found for context "test"`);
  });

  it('prefers a token file, as the kubelet rotates it, to an inline token (as client-go)', async () => {
    const api = (server = await TestApiServer.start());
    writeFileSync(join(dir, 'token'), 'from-file\n');
    await startSource(api.writeKubeconfig(dir, { token: 'inline', tokenFile: 'token' }));
    expect(api.requests.every((request) => request.authorization === 'Bearer from-file')).toBe(true);
  });

  it("in a pod: the service's address from the environment, the account's CA and token", async () => {
    const api = await httpsServer();
    copyFileSync(join(TLS_DIR, 'ca.crt'), join(dir, 'ca.crt'));
    writeFileSync(join(dir, 'token'), 'pod-token\n');
    const access = await loadKubeAccess(undefined, {
      pod: { env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(api.port) }, directory: dir },
    });
    expect(access.server).toBe(`https://127.0.0.1:${api.port}`);
    expect((await access.requestOptions()).headers.Authorization).toBe('Bearer pod-token');
    await expect(loadKubeAccess(undefined, { pod: { env: {}, directory: dir } })).rejects.toMatchObject({ code: 'KIPVS_KUBECONFIG' });
    await expect(
      loadKubeAccess(undefined, { pod: { env: { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, directory: dir } }).then(
        (pod) => pod.server,
      ),
    ).resolves.toBe('https://[fd00::1]:443');
  });
});

describe('a token file', () => {
  it('is read again once a minute old (the kubelet rotates it), keeping the last token if a read fails', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kipvs-token-'));
    try {
      const path = join(dir, 'token');
      let now = 0;
      const tokens = new TokenFile(path, () => now);
      writeFileSync(path, 'first\n');
      expect(tokens.current()).toBe('first');
      writeFileSync(path, 'second\n');
      now = 59_000;
      expect(tokens.current()).toBe('first');
      now = 60_000;
      expect(tokens.current()).toBe('second');
      rmSync(path);
      now = 130_000;
      expect(tokens.current()).toBe('second');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
