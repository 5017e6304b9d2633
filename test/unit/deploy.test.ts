// The deployment files read as Kubernetes would take them: every manifest parses, the RBAC rules
// only read, the ConfigMap's configuration is one kipvs accepts without a warning, and the
// DaemonSet's paths, ports and names agree with each other, with the image and with the code.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseKubeProxyConfiguration } from '../../src/cli/kube-proxy-config.js';
import { defined } from '../support/defined.js';

const ROOT = join(import.meta.dirname, '..', '..');
const DEPLOY = join(ROOT, 'deploy');

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [field: string]: unknown;
}
interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}
interface Mount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  securityContext?: { privileged?: boolean; allowPrivilegeEscalation?: boolean; runAsUser?: number; capabilities?: { add?: string[]; drop?: string[] } };
  livenessProbe?: { httpGet: { path: string; port: number } };
  readinessProbe?: { httpGet: { path: string; port: number } };
  volumeMounts?: Mount[];
}
interface PodSpec {
  serviceAccountName: string;
  hostNetwork: boolean;
  priorityClassName: string;
  tolerations: { operator: string; key?: string }[];
  initContainers: Container[];
  containers: Container[];
  volumes: { name: string; configMap?: { name: string }; hostPath?: { path: string; type?: string } }[];
}

function loadManifests(): Manifest[] {
  const files = readdirSync(DEPLOY).filter((file) => file.endsWith('.yaml') || file.endsWith('.yml'));
  expect(files.length).toBeGreaterThan(0);
  return files.flatMap((file) =>
    parseAllDocuments(readFileSync(join(DEPLOY, file), 'utf8')).flatMap((document) => {
      expect(document.errors, file).toEqual([]);
      const object = document.toJS() as Manifest | null;
      return object ? [object] : [];
    }),
  );
}

const manifests = loadManifests();
const one = (kind: string): Manifest => {
  const found = manifests.filter((manifest) => manifest.kind === kind);
  expect(found, kind).toHaveLength(1);
  return defined(found[0], `a ${kind}`);
};
const daemonSet = one('DaemonSet') as Manifest & {
  spec: { updateStrategy: { type: string; rollingUpdate: { maxUnavailable: number } }; template: { spec: PodSpec } };
};
const pod = daemonSet.spec.template.spec;
const agent = defined(
  pod.containers.find((container) => container.name === 'kipvs'),
  'a container named kipvs',
);
const configMap = one('ConfigMap') as Manifest & { data: Record<string, string> };
const flag = (container: Container, name: string): string | undefined =>
  [...(container.command ?? []), ...(container.args ?? [])].find((arg) => arg.startsWith(`${name}=`))?.slice(name.length + 1);

/** The file a path inside the pod reads from: a ConfigMap key or a hostPath, by the container's mounts. */
function volumeFor(container: Container, path: string): { volume: PodSpec['volumes'][number]; rest: string } {
  const mount = (container.volumeMounts ?? []).find((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`));
  expect(mount, `${container.name} mounts ${path}`).toBeDefined();
  const { name, mountPath } = defined(mount, `${container.name} mounts ${path}`);
  const volume = pod.volumes.find((v) => v.name === name);
  expect(volume, `volume ${name}`).toBeDefined();
  return { volume: defined(volume, `volume ${name}`), rest: path.slice(mountPath.length + 1) };
}

describe('deploy/', () => {
  it('parses as Kubernetes objects, each with an apiVersion, kind and name, in kube-system', () => {
    const apiVersions: Record<string, string> = {
      ServiceAccount: 'v1',
      ConfigMap: 'v1',
      ClusterRole: 'rbac.authorization.k8s.io/v1',
      ClusterRoleBinding: 'rbac.authorization.k8s.io/v1',
      DaemonSet: 'apps/v1',
    };
    for (const manifest of manifests) {
      expect(manifest.apiVersion, manifest.kind).toBe(apiVersions[manifest.kind]);
      expect(manifest.metadata.name).toBe('kipvs');
      if (!manifest.kind.startsWith('Cluster')) expect(manifest.metadata.namespace).toBe('kube-system');
    }
    expect(manifests.map((manifest) => manifest.kind).sort()).toEqual(['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'DaemonSet', 'ServiceAccount']);
  });

  it('grants only get, list and watch on services, nodes and endpointslices', () => {
    const roles = manifests.filter((manifest) => manifest.kind === 'ClusterRole' || manifest.kind === 'Role');
    const rules = roles.flatMap((role) => (role as Manifest & { rules: Rule[] }).rules);
    for (const rule of rules) {
      expect(
        rule.verbs.every((verb) => ['get', 'list', 'watch'].includes(verb)),
        JSON.stringify(rule),
      ).toBe(true);
      expect(rule.resources).not.toContain('*');
      expect(rule.apiGroups).not.toContain('*');
    }
    const granted = rules.flatMap((rule) => rule.apiGroups.flatMap((group) => rule.resources.map((resource) => `${group || 'core'}/${resource}`)));
    expect(granted.sort()).toEqual(['core/nodes', 'core/services', 'discovery.k8s.io/endpointslices']);
  });

  it("binds the role to the DaemonSet's service account", () => {
    const serviceAccount = one('ServiceAccount');
    const binding = one('ClusterRoleBinding') as Manifest & {
      roleRef: { kind: string; name: string };
      subjects: { kind: string; name: string; namespace: string }[];
    };
    expect(binding.roleRef).toMatchObject({ kind: 'ClusterRole', name: one('ClusterRole').metadata.name });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: serviceAccount.metadata.name, namespace: serviceAccount.metadata.namespace }]);
    expect(pod.serviceAccountName).toBe(serviceAccount.metadata.name);
  });

  it('carries a KubeProxyConfiguration that kipvs accepts without a warning', () => {
    const configPath = defined(flag(agent, '--config'), 'a --config flag');
    const { volume, rest } = volumeFor(agent, configPath);
    expect(volume.configMap?.name).toBe(configMap.metadata.name);
    const { options, warnings } = parseKubeProxyConfiguration(
      defined(configMap.data[rest], `ConfigMap key ${rest}`),
      `ConfigMap ${configMap.metadata.name} ${rest}`,
    );
    expect(warnings).toEqual([]);
    // The probes ask the health server where the configuration puts it.
    const healthzPort = Number(defined(options.healthzBindAddress, 'a healthzBindAddress').split(':').at(-1));
    expect(agent.livenessProbe?.httpGet).toEqual({ path: '/livez', port: healthzPort });
    expect(agent.readinessProbe?.httpGet).toEqual({ path: '/healthz', port: healthzPort });
  });

  it('runs on every Linux node in the host network, named after the node, one node at a time', () => {
    expect(pod.hostNetwork).toBe(true);
    expect(pod.priorityClassName).toBe('system-node-critical');
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(daemonSet.spec.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } });
    expect(agent.args?.[0]).toBe('agent');
    expect(flag(agent, '--hostname-override')).toBe('$(NODE_NAME)');
    expect(agent.env?.find((env) => env.name === 'NODE_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('spec.nodeName');
    // kipvs programs the kubernetes Service's ClusterIP, so it must reach the API server directly:
    // through a kubeconfig in the same ConfigMap, as kube-proxy's, with the service account token.
    const configPath = defined(flag(agent, '--config'), 'a --config flag');
    const { rest } = volumeFor(agent, configPath);
    const kubeconfigPath = defined(
      parseKubeProxyConfiguration(defined(configMap.data[rest], `ConfigMap key ${rest}`), 'config.conf').options.kubeconfig,
      'a kubeconfig',
    );
    const { volume, rest: kubeconfigFile } = volumeFor(agent, kubeconfigPath);
    expect(volume.configMap?.name).toBe(configMap.metadata.name);
    const kubeconfig = parse(defined(configMap.data[kubeconfigFile], `ConfigMap key ${kubeconfigFile}`)) as {
      clusters: { cluster: { server: string } }[];
      users: { user: { tokenFile: string } }[];
    };
    expect(kubeconfig.clusters[0]?.cluster.server).toMatch(/^https:\/\//);
    expect(kubeconfig.users[0]?.user.tokenFile).toBe('/var/run/secrets/kubernetes.io/serviceaccount/token');
  });

  it('gives the agent container two capabilities and no privilege, and shares the node state it needs', () => {
    expect(agent.securityContext).toMatchObject({ privileged: false, allowPrivilegeEscalation: false, runAsUser: 0 });
    expect(agent.securityContext?.capabilities).toEqual({ drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] });
    expect(volumeFor(agent, '/run/xtables.lock').volume.hostPath).toEqual({ path: '/run/xtables.lock', type: 'FileOrCreate' });
    // FileOwnershipStore's directory (src/agent/ownership.ts).
    expect(volumeFor(agent, '/run/kipvs').volume.hostPath).toEqual({ path: '/run/kipvs', type: 'DirectoryOrCreate' });
    expect(readFileSync(join(ROOT, 'src/agent/ownership.ts'), 'utf8')).toContain("directory = '/run/kipvs'");
  });

  it('prepares the kernel in an init container that runs code the image carries', async () => {
    expect(pod.initContainers).toHaveLength(1);
    const init = defined(pod.initContainers[0], 'an init container');
    expect(init.image).toBe(agent.image);
    expect(init.securityContext?.privileged).toBe(true);
    expect(volumeFor(init, '/lib/modules').volume.hostPath?.path).toBe('/lib/modules');
    expect(init.volumeMounts?.find((mount) => mount.mountPath === '/lib/modules')?.readOnly).toBe(true);
    expect(flag(init, '--config')).toBe(flag(agent, '--config'));
    const [node, script] = init.command ?? [];
    expect(node).toBe('node');
    expect(script).toBe('/opt/kipvs/deploy/kernel-setup.mjs');

    // The image puts deploy/kernel-setup.mjs there, next to dist/ ...
    const dockerfile = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^WORKDIR \/opt\/kipvs$/m);
    expect(dockerfile).toMatch(/^COPY deploy\/kernel-setup\.mjs \.\/deploy\/$/m);
    expect(dockerfile).toMatch(/^COPY --from=build \/opt\/kipvs\/dist \.\/dist$/m);
    // ... and each function it imports from dist/ exists in the source it is compiled from.
    const text = readFileSync(join(DEPLOY, 'kernel-setup.mjs'), 'utf8');
    const imports = [...text.matchAll(/^import \{ ([^}]+) \} from '\.\.\/dist\/(.+)\.js';$/gm)];
    expect(imports.length).toBe(2);
    for (const [, names, module] of imports) {
      const source = (await import(join(ROOT, 'src', `${module}.ts`))) as Record<string, unknown>;
      for (const name of defined(names, `names imported from ${module}`)
        .split(',')
        .map((n) => n.trim()))
        expect(typeof source[name], `${module} exports ${name}`).toBe('function');
    }
  });

  it('builds the image on Node 24 with the tools kipvs runs, and kipvs as its entry point', () => {
    const dockerfile = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
    const stages = dockerfile.split(/^FROM /m).slice(1);
    expect(stages.map((stage) => stage.split(/\s/)[0])).toEqual(['node:24-bookworm-slim', 'node:24-bookworm-slim']);
    const runtime = stages.at(-1);
    expect(runtime).toMatch(/apt-get install -y --no-install-recommends iptables kmod\b/);
    expect(runtime).toMatch(/^ENTRYPOINT \["kipvs"\]$/m);
    // The package's install script builds the shim and dist/; the runtime copies what bin/ needs.
    expect(stages[0]).toMatch(/npm ci/);
    expect(readFileSync(join(ROOT, 'bin/kipvs.js'), 'utf8')).toContain("'../dist/cli/main.js'");
    for (const copied of ['native-shims', 'src', 'package.json', 'package-lock.json', 'tsconfig.build.json']) {
      expect(existsSync(join(ROOT, copied)), copied).toBe(true);
    }
  });
});
