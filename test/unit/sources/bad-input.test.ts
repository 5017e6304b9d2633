// Failure 1 of issue 11: a source file that cannot be read or parsed never removes what it
// defined, also when the agent starts on it (it cannot know what the file defined). Source →
// store → proxier → fake kernel, as the agent wires them.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Proxier } from '../../../src/agent/proxier.js';
import { MemoryOwnershipStore } from '../../../src/agent/ownership.js';
import { FakeKernel } from '../../support/fake-kernel.js';
import { DEFAULT_SETTINGS } from '../../../src/model/settings.js';
import { ClusterStore } from '../../../src/sources/cluster-store.js';
import { startClusterSource, type ClusterSource, type SourceProblem } from '../../../src/sources/start.js';

const service = (name: string, ip: string): string =>
  `apiVersion: v1\nkind: Service\nmetadata: { name: ${name}, namespace: default }\nspec: { clusterIP: ${ip}, ports: [{ port: 80, targetPort: 8080 }] }\n---\n` +
  `apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: { name: ${name}-1, namespace: default, labels: { kubernetes.io/service-name: ${name} } }\n` +
  `addressType: IPv4\nports: [{ port: 8080, protocol: TCP }]\nendpoints: [{ addresses: [10.244.0.${ip.split('.')[3]}] }]\n`;

describe('a source that cannot be read never removes what it defined', () => {
  let dir: string;
  let kernel: FakeKernel;
  let ownership: MemoryOwnershipStore;
  const sources: ClusterSource[] = [];

  /** One agent run: a fresh store and proxier on the same kernel and state file. */
  const run = async (): Promise<{ source: ClusterSource; proxier: Proxier; failing: SourceProblem[][] }> => {
    const cluster = new ClusterStore();
    const failing: SourceProblem[][] = [];
    const log = pino({ level: 'silent' });
    const source = await startClusterSource({ file: dir, nodeName: 'node-a', cluster, log, onFailing: (now) => void failing.push([...now]) });
    sources.push(source);
    const node = { name: 'node-a', addresses: ['192.0.2.1'], families: ['inet' as const] };
    return { source, proxier: new Proxier({ kernel, node, settings: DEFAULT_SETTINGS, log, ownership, cluster }), failing };
  };
  const virtualServers = (): string[] => [...kernel.virtualServers.keys()].sort();

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'kipvs-bad-input-'));
    kernel = new FakeKernel();
    ownership = new MemoryOwnershipStore();
  });
  afterEach(async () => {
    for (const source of sources.splice(0)) await source.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a restart on a broken file keeps its virtual servers, addresses and ipset entries, programs the good files, and names the file', async () => {
    writeFileSync(join(dir, 'a.yaml'), service('a1', '10.96.0.1') + '---\n' + service('a2', '10.96.0.2'));
    writeFileSync(join(dir, 'b.yaml'), service('b1', '10.96.0.3'));
    await (await run()).proxier.sync();
    expect(virtualServers()).toEqual(['TCP 10.96.0.1:80', 'TCP 10.96.0.2:80', 'TCP 10.96.0.3:80']);
    const entriesBefore = kernel.ipsets.get('KUBE-CLUSTER-IP')?.entries.size;

    // The agent starts again while b.yaml is broken, and a.yaml gained a Service.
    writeFileSync(join(dir, 'b.yaml'), service('b1', '10.96.0.3').replace('ports: [{ port: 80', 'ports: [{ port: [80'));
    writeFileSync(join(dir, 'a.yaml'), service('a1', '10.96.0.1') + '---\n' + service('a2', '10.96.0.2') + '---\n' + service('a3', '10.96.0.4'));
    const second = await run();
    await second.proxier.sync();
    expect(virtualServers()).toEqual(['TCP 10.96.0.1:80', 'TCP 10.96.0.2:80', 'TCP 10.96.0.3:80', 'TCP 10.96.0.4:80']);
    expect(kernel.boundAddresses.has('10.96.0.3')).toBe(true);
    expect(kernel.ipsets.get('KUBE-CLUSTER-IP')?.entries.size).toBe((entriesBefore ?? 0) + 1);
    expect(second.source.failing().map((problem) => problem.file)).toEqual([`${join(dir, 'b.yaml')}:4`]);
    expect(second.source.failing()[0]?.reason).toMatch(/not valid YAML\/JSON: .*; its objects are unknown, so no Service is removed$/);
    expect(second.failing).toHaveLength(1);

    // Fixed, without b1: now its removal is known, and applied.
    writeFileSync(join(dir, 'b.yaml'), '---\n');
    second.source.check();
    await second.proxier.sync();
    expect(virtualServers()).toEqual(['TCP 10.96.0.1:80', 'TCP 10.96.0.2:80', 'TCP 10.96.0.4:80']);
    expect(kernel.boundAddresses.has('10.96.0.3')).toBe(false);
    expect(second.source.failing()).toEqual([]);
    expect(second.failing.at(-1)).toEqual([]);
  });

  it('a file broken while running keeps its last good objects; other edits still apply', async () => {
    writeFileSync(join(dir, 'a.yaml'), service('a1', '10.96.0.1'));
    writeFileSync(join(dir, 'b.yaml'), service('b1', '10.96.0.3') + '---\n' + service('b2', '10.96.0.5'));
    const agent = await run();
    await agent.proxier.sync();
    writeFileSync(join(dir, 'b.yaml'), 'kind: Service\nmetadata: [half');
    writeFileSync(join(dir, 'a.yaml'), '---\n');
    agent.source.check();
    await agent.proxier.sync();
    expect(virtualServers()).toEqual(['TCP 10.96.0.3:80', 'TCP 10.96.0.5:80']);
    expect(agent.source.failing()[0]?.reason).toMatch(/kept the objects it last had$/);
  });

  it('an empty file (a writer midway through `> file`) keeps what the file had', async () => {
    writeFileSync(join(dir, 'a.yaml'), service('a1', '10.96.0.1'));
    const agent = await run();
    await agent.proxier.sync();
    writeFileSync(join(dir, 'a.yaml'), '');
    agent.source.check();
    await agent.proxier.sync();
    expect(virtualServers()).toEqual(['TCP 10.96.0.1:80']);
    expect(agent.source.failing()[0]?.reason).toMatch(/^empty/);
  });
});
