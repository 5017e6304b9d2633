// The agent's health and metrics endpoints, read with curl as a kubelet probe, a load balancer's
// health check and Prometheus would: kube-proxy's /healthz and /livez JSON, its metric names in
// valid Prometheus text, and a health-check node port for a LoadBalancer Service with
// externalTrafficPolicy Local that follows its local endpoints.
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentProcess } from './helpers/agent-process.js';
import { defined } from '../support/defined.js';
import { Teardown } from './helpers/teardown.js';
import type { Topology } from './helpers/topology.js';
import { parseExposition } from '../support/prometheus.js';

const HEALTHZ = '127.0.0.1:20256';
const METRICS = '127.0.0.1:20249';
const HEALTH_CHECK_PORT = 32123;

/** Status code and body, as curl gets them (loopback of the sandbox only). */
function curl(url: string): { code: number; body: string; headers: string } {
  const result = spawnSync('curl', ['-sS', '--max-time', '5', '-D', '-', url], { encoding: 'utf8' });
  if (result.status !== 0) return { code: 0, body: '', headers: result.stderr };
  const [headers = '', ...rest] = result.stdout.split('\r\n\r\n');
  return { code: Number(/^HTTP\/[\d.]+ (\d+)/.exec(headers)?.[1]), body: rest.join('\r\n\r\n'), headers };
}

function objects(localEndpoint: boolean, triggerTime: string): string {
  const service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'lb', namespace: 'default' },
    spec: {
      type: 'LoadBalancer',
      clusterIP: '10.96.0.20',
      ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30090 }],
      externalTrafficPolicy: 'Local',
      healthCheckNodePort: HEALTH_CHECK_PORT,
    },
    status: { loadBalancer: { ingress: [{ ip: '198.51.100.20' }] } },
  };
  const slice = {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: 'lb-1',
      namespace: 'default',
      labels: { 'kubernetes.io/service-name': 'lb' },
      annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': triggerTime },
    },
    addressType: 'IPv4',
    ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
    endpoints: [{ addresses: ['10.201.0.2'], conditions: { ready: true }, nodeName: localEndpoint ? 'node-a' : 'node-b' }],
  };
  return [service, slice].map((object) => JSON.stringify(object)).join('\n---\n');
}

describe('health and metrics of the agent', () => {
  let topology: Topology;
  let sourceDir: string;
  let agent: AgentProcess;
  const teardown = new Teardown();

  beforeAll(async () => {
    topology = teardown.createTopology(1, { kipvsCleanup: true });
    sourceDir = teardown.makeTempDir('kipvs-health-');
    writeFileSync(join(sourceDir, 'lb.yaml'), objects(true, new Date().toISOString()));
    agent = teardown.startAgent(topology.node, [
      '--source',
      sourceDir,
      '--ipvs-min-sync-period',
      '100ms',
      '--ipvs-sync-period',
      '5s',
      '--healthz-bind-address',
      HEALTHZ,
      '--metrics-bind-address',
      METRICS,
    ]);
    await agent.waitFor('first sync', () => agent.log().includes('"synced"') || topology.node.run('ipvsadm', ['-Ln']).includes('10.96.0.20:80'));
  });
  afterAll(() => teardown.run());

  it("answers /healthz and /livez with kube-proxy's JSON", async () => {
    await agent.waitFor('healthz', () => curl(`http://${HEALTHZ}/healthz`).code === 200);
    const healthz = curl(`http://${HEALTHZ}/healthz`);
    expect(healthz.headers).toMatch(/content-type: application\/json/i);
    const body = JSON.parse(healthz.body) as Record<string, unknown>;
    expect(Object.keys(body).slice(0, 3)).toEqual(['lastUpdated', 'currentTime', 'nodeEligible']);
    expect(Date.parse(body.lastUpdated as string)).toBeGreaterThan(Date.now() - 60_000);
    expect(Date.parse(body.currentTime as string)).toBeGreaterThanOrEqual(Date.parse(body.lastUpdated as string) - 1000);
    expect(body.nodeEligible).toBe(true);
    const livez = curl(`http://${HEALTHZ}/livez`);
    expect(livez.code).toBe(200);
    expect(JSON.parse(livez.body)).toHaveProperty('lastUpdated');
  });

  it("serves valid Prometheus text with kube-proxy's metric names and kipvs's own", async () => {
    // A slice changed after the agent started (kube-proxy ignores trigger times from before it).
    writeFileSync(join(sourceDir, 'lb.yaml'), objects(true, new Date().toISOString()));
    await agent.waitFor('a programmed change measured', () =>
      /kubeproxy_network_programming_duration_seconds_count\{[^}]*\} [1-9]/.test(curl(`http://${METRICS}/metrics`).body),
    );
    const metrics = curl(`http://${METRICS}/metrics`);
    expect(metrics.code).toBe(200);
    expect(metrics.headers).toMatch(/content-type: text\/plain; version=0\.0\.4/i);
    const families = parseExposition(metrics.body);
    for (const name of [
      'kubeproxy_sync_proxy_rules_duration_seconds',
      'kubeproxy_sync_proxy_rules_last_timestamp_seconds',
      'kubeproxy_network_programming_duration_seconds',
      'kubeproxy_sync_proxy_rules_endpoint_changes_total',
      'kubeproxy_sync_proxy_rules_service_changes_total',
      'kipvs_virtual_servers',
      'kipvs_real_servers',
      'process_resident_memory_bytes',
      'nodejs_heap_size_used_bytes',
    ]) {
      expect(families.has(name), name).toBe(true);
    }
    const sample = (name: string): number => defined(families.get(name), `the family ${name}`).samples.reduce((sum, s) => sum + s.value, 0);
    // ClusterIP, the NodePort on each of the node's two addresses, the load balancer IP: as the kernel has them.
    const listing = topology.node.run('ipvsadm', ['-Ln']).split('\n');
    expect(sample('kipvs_virtual_servers')).toBe(listing.filter((line) => line.startsWith('TCP ')).length);
    expect(sample('kipvs_virtual_servers')).toBe(4);
    expect(sample('kipvs_real_servers')).toBe(listing.filter((line) => /^\s+-> \d/.test(line)).length);
    expect(
      defined(families.get('kubeproxy_network_programming_duration_seconds'), 'the programming duration family').samples.some(
        (s) => s.name.endsWith('_count') && s.value >= 1,
      ),
    ).toBe(true);
    expect(curl(`http://${METRICS}/proxyMode`).body).toBe('ipvs');
  });

  it('answers on the health-check node port: 200 with a local endpoint, 503 once it moves to another node', async () => {
    await agent.waitFor('health check port', () => curl(`http://127.0.0.1:${HEALTH_CHECK_PORT}/`).code === 200);
    const local = curl(`http://127.0.0.1:${HEALTH_CHECK_PORT}/`);
    expect(JSON.parse(local.body)).toEqual({ service: { namespace: 'default', name: 'lb' }, localEndpoints: 1, serviceProxyHealthy: true });
    expect(local.headers).toMatch(/x-load-balancing-endpoint-weight: 1/i);
    writeFileSync(join(sourceDir, 'lb.yaml'), objects(false, new Date().toISOString()));
    await agent.waitFor('no local endpoint', () => curl(`http://127.0.0.1:${HEALTH_CHECK_PORT}/`).code === 503);
    expect(JSON.parse(curl(`http://127.0.0.1:${HEALTH_CHECK_PORT}/`).body)).toMatchObject({ localEndpoints: 0 });
  });

  it('stays on the node that has it: nothing listens in the node namespace itself', () => {
    // The servers live in the agent's own namespace (with --netns only the kernel state is
    // elsewhere); in a real node that is the host namespace, as kube-proxy's.
    expect(() =>
      execFileSync('ip', ['netns', 'exec', topology.node.name, 'curl', '-sS', '--max-time', '2', `http://${HEALTHZ}/healthz`], { stdio: 'pipe' }),
    ).toThrow();
  });
});
