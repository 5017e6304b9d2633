// Where the API server is and how to authenticate: a kubeconfig file, or the in-cluster service
// account; checked at start so that a bad configuration fails at once instead of retrying forever.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { KipvsError } from '../errors.js';

/**
 * `users[].user.tokenFile` (what kubeadm writes for kube-proxy: the service account token) is
 * kubeconfig's name; client-node 1.4 reads only `token-file`, once. Such users get client-node's
 * tokenFile provider, which reads the file again as the kubelet rotates the token. A relative
 * path is relative to the kubeconfig, as kubectl takes it.
 */
function useTokenFiles(config: KubeConfig, path: string): void {
  const raw = parseYaml(readFileSync(path, 'utf8')) as { users?: ({ name?: unknown; user?: { tokenFile?: unknown; token?: unknown } | null } | null)[] } | null;
  const tokenFiles = new Map<string, string>();
  for (const entry of raw?.users ?? []) {
    const file = entry?.user?.tokenFile;
    if (typeof entry?.name === 'string' && typeof file === 'string' && file !== '' && !entry.user?.token)
      tokenFiles.set(entry.name, resolve(dirname(path), file));
  }
  if (tokenFiles.size === 0) return;
  config.users = config.users.map((user) => {
    const tokenFile = tokenFiles.get(user.name);
    return tokenFile === undefined || user.token ? user : { ...user, authProvider: { name: 'tokenFile', config: { tokenFile } } };
  });
}

export function loadKubeConfig(path: string | undefined): KubeConfig {
  const config = new KubeConfig();
  if (path === undefined) {
    // loadFromCluster does not check its inputs: it would build https://undefined:undefined.
    if (!process.env.KUBERNETES_SERVICE_HOST || !process.env.KUBERNETES_SERVICE_PORT) {
      throw new KipvsError('KIPVS_KUBECONFIG', 'no --kubeconfig given and not running in a cluster (KUBERNETES_SERVICE_HOST/PORT are not set)');
    }
    config.loadFromCluster();
  } else {
    try {
      config.loadFromFile(path);
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message.split('\n')[0];
      throw new KipvsError('KIPVS_KUBECONFIG', `cannot read kubeconfig ${path}: ${reason}`);
    }
    useTokenFiles(config, path);
  }
  const cluster = config.getCurrentCluster();
  if (!cluster)
    throw new KipvsError('KIPVS_KUBECONFIG', `kubeconfig ${path ?? '(in-cluster)'}: no cluster for current context "${config.getCurrentContext()}"`);
  if (!URL.canParse(cluster.server)) throw new KipvsError('KIPVS_KUBECONFIG', `kubeconfig ${path ?? '(in-cluster)'}: server "${cluster.server}" is not a URL`);
  // client-node refuses every request to an http:// server without this (config.js createAgent):
  // say so now rather than retry forever.
  if (cluster.server.startsWith('http:') && !cluster.skipTLSVerify) {
    throw new KipvsError(
      'KIPVS_KUBECONFIG',
      `kubeconfig ${path ?? '(in-cluster)'}: server ${cluster.server} is plain HTTP, which needs insecure-skip-tls-verify: true`,
    );
  }
  return config;
}
