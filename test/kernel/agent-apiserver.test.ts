// The agent driven only by a Kubernetes API server (the test one, on 127.0.0.1 of the sandbox's
// root namespace): it programs what it lists, follows what it watches, keeps forwarding while the
// API server is away, and converges (through a relist after 410 Gone) when it is back.
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestApiServer, type ApiObject } from '../support/api-server.js';
import { changingSyncLoggedAfter, type AgentProcess } from './helpers/agent-process.js';
import { defined } from '../support/defined.js';
import { Teardown } from './helpers/teardown.js';
import type { Topology } from './helpers/topology.js';
import { GENEROUS_MS, sleep, waitUntil } from './helpers/wait.js';

const webService = (clusterIP = '10.96.0.10', name = 'web'): ApiObject => ({
  metadata: { name, namespace: 'default' },
  spec: {
    type: 'ClusterIP',
    clusterIP,
    clusterIPs: [clusterIP],
    ipFamilies: ['IPv4'],
    selector: { app: 'web' },
    ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 'http' }],
  },
});

/** The EndpointSlice of a Service with the given pods (by index: pod N is 10.201.N.2). */
const webSlice = (pods: number[], service = 'web'): ApiObject => ({
  metadata: { name: `${service}-abcde`, namespace: 'default', labels: { 'kubernetes.io/service-name': service } },
  addressType: 'IPv4',
  ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
  endpoints: pods.map((pod) => ({
    addresses: [`10.201.${pod}.2`],
    conditions: { ready: true, serving: true, terminating: false },
    nodeName: 'node-a',
    targetRef: { kind: 'Pod', name: `web-${pod}`, namespace: 'default' },
  })),
});

describe('kipvs agent with --kubeconfig', () => {
  let topology: Topology;
  let api: TestApiServer;
  let dir: string;
  let agent: AgentProcess | undefined;
  const teardown = new Teardown();

  /** Real servers of a virtual server and their weights, as ipvsadm lists them ({} while it does not exist). */
  const realServers = (address: string): Record<string, number> => {
    let listing: string;
    try {
      listing = topology.node.run('ipvsadm', ['-Ln', '-t', address]);
    } catch {
      return {};
    }
    return Object.fromEntries(
      [...listing.matchAll(/->\s+(\d+\.\d+\.\d+\.\d+:\d+)\s+\S+\s+(\d+)/g)].map((match) => [defined(match[1], 'a real server address'), Number(match[2])]),
    );
  };
  /** Real servers that take new connections. */
  const serving = (address: string): string[] =>
    Object.entries(realServers(address))
      .filter(([, weight]) => weight > 0)
      .map(([server]) => server)
      .sort();

  /** The agent started by the first test, still running. */
  const runningAgent = (): AgentProcess => {
    if (!agent?.running) throw new Error(`the agent is not running (exit ${String(agent?.exitCode)}):\n${agent?.log() ?? ''}`);
    return agent;
  };

  beforeAll(async () => {
    topology = teardown.createTopology(3, { kipvsCleanup: true });
    await Promise.all(topology.pods.map((pod) => topology.startServer(pod, 8080)));
    api = await TestApiServer.start();
    teardown.add(() => api.stop());
    dir = teardown.makeTempDir('kipvs-apiserver-');
    api.create('nodes', { metadata: { name: 'node-a', labels: { 'kubernetes.io/hostname': 'node-a' } } });
    api.create('services', webService());
    api.create('endpointslices', webSlice([0, 1]));
  });
  afterAll(() => teardown.run());

  it('programs what it lists, then follows added and removed endpoints within 3 s', async () => {
    agent = teardown.startAgent(topology.node, ['--kubeconfig', api.writeKubeconfig(dir), '--ipvs-sync-period', '3s', '--ipvs-min-sync-period', '100ms']);
    const started = agent;
    await agent.waitFor('initial sync', () => serving('10.96.0.10:80').length === 2);
    expect(serving('10.96.0.10:80')).toEqual(['10.201.0.2:8080', '10.201.1.2:8080']);
    expect(topology.request('10.96.0.10', 80, 6)).toEqual({ answers: { pod0: 3, pod1: 3 }, failures: 0 });

    // Within 3 s by the agent's own log: the sync that carried the change ended by then.
    const added = Date.now();
    api.update('endpointslices', webSlice([0, 1, 2]));
    // Waiting on the agent's log rather than polling the kernel: each look is a process, dear
    // enough on a busy machine to slow the agent it is timing.
    await agent.waitFor('the sync that carried it', () => changingSyncLoggedAfter(started, added) !== undefined);
    expect(serving('10.96.0.10:80')).toContain('10.201.2.2:8080');
    expect(changingSyncLoggedAfter(agent, added)).toBeLessThan(3_000);
    expect(topology.request('10.96.0.10', 80, 9)).toEqual({ answers: { pod0: 3, pod1: 3, pod2: 3 }, failures: 0 });

    // A removed TCP real server drains at weight 0 before it goes: no new connections reach it.
    const removed = Date.now();
    api.update('endpointslices', webSlice([1, 2]));
    // Waiting on the agent's log rather than polling the kernel: each look is a process, dear
    // enough on a busy machine to slow the agent it is timing.
    await agent.waitFor('the sync that carried it', () => changingSyncLoggedAfter(started, removed) !== undefined);
    expect(serving('10.96.0.10:80')).not.toContain('10.201.0.2:8080');
    expect(changingSyncLoggedAfter(agent, removed)).toBeLessThan(3_000);
    expect(topology.request('10.96.0.10', 80, 6)).toEqual({ answers: { pod1: 3, pod2: 3 }, failures: 0 });

    // Read-only: every request the agent made was a GET (list or watch).
    expect(api.requests.length).toBeGreaterThanOrEqual(6);
    expect(api.requests.filter((request) => request.method !== 'GET')).toEqual([]);
    expect(api.requests.filter((request) => request.watch).every((request) => request.query.allowWatchBookmarks === 'true')).toBe(true);
  });

  it('keeps forwarding while the API server is away, and converges when it is back', async () => {
    const running = runningAgent();
    await api.stop();
    // Several seconds, across full sync periods (3 s): the agent keeps what it programmed.
    const until = Date.now() + 5_000;
    while (Date.now() < until) {
      expect(topology.request('10.96.0.10', 80, 4).failures).toBe(0);
      await sleep(500);
    }
    expect(serving('10.96.0.10:80')).toEqual(['10.201.1.2:8080', '10.201.2.2:8080']);
    runningAgent();

    // Changed while it is away, and the history compacted: the agent must relist (410 Gone).
    api.update('endpointslices', webSlice([0, 2]));
    api.create('services', webService('10.96.0.11', 'api'));
    api.create('endpointslices', webSlice([1], 'api'));
    api.compact();
    await api.start();
    // After ~5 s of refused connections the informers' backoff (0.5 s doubling, jittered) can be
    // up to 8 s: allow for it.
    await running.waitFor(
      'converged after the outage',
      () => serving('10.96.0.10:80').join() === '10.201.0.2:8080,10.201.2.2:8080' && serving('10.96.0.11:80').length === 1,
      25_000,
    );
    expect(serving('10.96.0.11:80')).toEqual(['10.201.1.2:8080']);
    expect(topology.request('10.96.0.10', 80, 6)).toEqual({ answers: { pod0: 3, pod2: 3 }, failures: 0 });
    expect(topology.request('10.96.0.11', 80, 2)).toEqual({ answers: { pod1: 2 }, failures: 0 });
    const lists = api.requests.filter((request) => !request.watch && request.path === '/apis/discovery.k8s.io/v1/endpointslices');
    expect(lists.length).toBeGreaterThanOrEqual(2);
  });

  it('stops on SIGTERM with status 0 and leaves the kernel as programmed', async () => {
    const running = runningAgent();
    const before = topology.node.run('ipvsadm', ['-Sn']);
    expect(await running.stop('SIGTERM')).toBe(0);
    agent = undefined;
    expect(topology.node.run('ipvsadm', ['-Sn'])).toBe(before);
    await waitUntil('its watches closed', () => api.openWatches === 0, 2_000);
  });

  it('serves /livez while it waits for an API server that is away, and stops on SIGTERM before its first list', async () => {
    await api.stop();
    const healthz = '127.0.0.1:20266';
    const waiting = teardown.startAgent(topology.node, [
      '--kubeconfig',
      api.writeKubeconfig(dir),
      '--healthz-bind-address',
      healthz,
      '--metrics-bind-address',
      '',
    ]);
    agent = waiting;
    const live = (): boolean => spawnSync('curl', ['-sf', '--max-time', '2', `http://${healthz}/livez`]).status === 0;
    // Once it has found the API server away (the health server may well answer before that).
    const retrying = (): boolean => waiting.lines.some((line) => /list\/watch failed; keeping the last objects and retrying/.test(line.text));
    await waiting.waitFor('/livez while waiting for the API server', () => retrying() && live(), GENEROUS_MS, 200);
    expect(waiting.running).toBe(true);
    expect(await waiting.stop('SIGTERM')).toBe(0);
    agent = undefined;
    await api.start();
  });
});
