import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileSource, watchObjects } from '../../../src/sources/file-source.js';
import { defined } from '../../support/defined.js';

const service = (name: string): string =>
  `apiVersion: v1\nkind: Service\nmetadata: { name: ${name}, namespace: default }\nspec: { clusterIP: 10.96.0.1, ports: [{ port: 80 }] }\n`;

describe('file source', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'kipvs-files-'))));
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads multi-document YAML, JSON and kubectl Lists, and reports what it ignores', () => {
    writeFileSync(join(dir, 'a.yaml'), `${service('a')}---\n${service('b')}---\nkind: ConfigMap\nmetadata: { name: x }\n`);
    writeFileSync(join(dir, 'b.json'), JSON.stringify({ kind: 'List', items: [{ kind: 'EndpointSlice', metadata: { name: 's' }, addressType: 'IPv4' }] }));
    writeFileSync(join(dir, 'notes.txt'), 'not read');
    const snapshot = new FileSource(dir).read();
    expect(snapshot.services.map((s) => s.metadata.name)).toEqual(['a', 'b']);
    expect(snapshot.endpointSlices.map((s) => s.metadata.name)).toEqual(['s']);
    expect(snapshot.problems).toEqual([{ file: `${join(dir, 'a.yaml')}#3`, reason: 'ignored object of kind "ConfigMap"' }]);
  });

  it('reads Node objects beside Services and EndpointSlices (labels, podCIDRs, addresses for the agent)', () => {
    const node =
      'apiVersion: v1\nkind: Node\nmetadata: { name: node-a, labels: { topology.kubernetes.io/zone: zone-a } }\nspec: { podCIDRs: [10.244.1.0/24] }\n';
    writeFileSync(join(dir, 'a.yaml'), `${service('a')}---\n${node}`);
    const source = new FileSource(dir);
    const first = source.read();
    expect(first.services.map((s) => s.metadata.name)).toEqual(['a']);
    expect(first.problems).toEqual([]);
    expect(first.nodes).toEqual([
      {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: 'node-a', labels: { 'topology.kubernetes.io/zone': 'zone-a' } },
        spec: { podCIDRs: ['10.244.1.0/24'] },
      },
    ]);
    writeFileSync(join(dir, 'a.yaml'), `${service('a')}---\n${node.replace('zone-a', 'zone-b')}`);
    expect(source.read().nodes).toMatchObject([{ metadata: { labels: { 'topology.kubernetes.io/zone': 'zone-b' } } }]);
  });

  it('keeps the last good objects of a file that stops parsing (being written), and drops a deleted file', () => {
    const source = new FileSource(dir);
    writeFileSync(join(dir, 'a.yaml'), service('a'));
    expect(source.read().services).toHaveLength(1);
    writeFileSync(join(dir, 'a.yaml'), 'kind: Service\nmetadata: [half');
    const broken = source.read();
    expect(broken.services.map((s) => s.metadata.name)).toEqual(['a']);
    expect(broken.problems.map((p) => p.reason)).toContain('kept the objects it last had');
    rmSync(join(dir, 'a.yaml'));
    expect(source.read().services).toEqual([]);
  });

  it('keeps the very objects an edit did not change, in an unchanged file and in an edited one', () => {
    const source = new FileSource(dir);
    writeFileSync(join(dir, 'a.yaml'), `${service('a')}---\n${service('b')}`);
    writeFileSync(join(dir, 'c.yaml'), service('c'));
    const first = source.read();
    writeFileSync(join(dir, 'a.yaml'), `${service('a')}---\n${service('b').replace('port: 80', 'port: 81')}`);
    const second = source.read();
    expect(second.services[0]).toBe(first.services[0]);
    expect(second.services[1]).not.toBe(first.services[1]);
    expect(second.services[1]?.spec?.ports?.[0]?.port).toBe(81);
    expect(second.services[2]).toBe(first.services[2]);
  });

  it('keeps the very EndpointSlices an edit did not change, their endpoints compact or not', () => {
    const source = new FileSource(dir);
    const slice = (name: string, pod: string, addresses: string): string =>
      `apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: ${name}, namespace: default, labels: {kubernetes.io/service-name: ${name}}}\n` +
      `addressType: IPv4\nendpoints:\n- addresses: [${addresses}]\n  targetRef: {kind: Pod, name: ${pod}, namespace: default, uid: u1}\nports: [{port: 80}]\n`;
    writeFileSync(
      join(dir, 'a.yaml'),
      [slice('a', 'a-0', '10.244.0.1'), slice('b', 'b-0', '10.244.0.2, 10.244.0.3'), slice('c', 'c-0', '10.244.0.4')].join('---\n'),
    );
    const first = source.read();
    // a: only the targetRef's uid changed (not kept); b: unchanged (not compact, two addresses); c: another pod.
    writeFileSync(
      join(dir, 'a.yaml'),
      [slice('a', 'a-0', '10.244.0.1').replace('uid: u1', 'uid: u2'), slice('b', 'b-0', '10.244.0.2, 10.244.0.3'), slice('c', 'c-1', '10.244.0.4')].join(
        '---\n',
      ),
    );
    const second = source.read();
    expect(second.endpointSlices[0]).toBe(first.endpointSlices[0]);
    expect(second.endpointSlices[1]).toBe(first.endpointSlices[1]);
    expect(second.endpointSlices[2]).not.toBe(first.endpointSlices[2]);
    expect(second.endpointSlices[2]?.endpoints?.[0]?.targetRef?.name).toBe('c-1');
  });

  it('a file broken from the start contributes nothing, and the others still count', () => {
    writeFileSync(join(dir, 'bad.yaml'), 'kind: Service\nmetadata: [half');
    writeFileSync(join(dir, 'good.yaml'), service('good'));
    const snapshot = new FileSource(dir).read();
    expect(snapshot.services.map((s) => s.metadata.name)).toEqual(['good']);
    expect(snapshot.problems[0]?.reason).toMatch(/^not valid YAML\/JSON/);
  });

  it('fails with one clear error when the path cannot be read', () => {
    expect(() => new FileSource(join(dir, 'missing')).read()).toThrow(`cannot read source ${join(dir, 'missing')}: ENOENT`);
  });

  it('reports a change once the writer has finished', async () => {
    const file = join(dir, 'a.yaml');
    writeFileSync(file, service('a'));
    let changes = 0;
    const stop = watchObjects(file, () => changes++, 100);
    try {
      writeFileSync(file, '');
      await new Promise((resolve) => setTimeout(resolve, 50));
      writeFileSync(file, service('a') + '---\n' + service('b'));
      await new Promise((resolve) => setTimeout(resolve, 600));
      expect(changes).toBe(1);
    } finally {
      stop();
    }
  });

  it('reads a file rewritten without pause at least once per maxWait, not only when the writes stop', async () => {
    const file = join(dir, 'a.yaml');
    writeFileSync(file, service('a'));
    const changes: number[] = [];
    const stop = watchObjects(file, () => void changes.push(performance.now()), 200, 500);
    const started = performance.now();
    try {
      // A write every 50 ms for 3 s: the settle time (200 ms) is never reached.
      for (let i = 0; performance.now() - started < 3000; i++) {
        writeFileSync(file, service(`a${i}`));
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const during = changes.filter((at) => at < performance.now());
      expect(during.length).toBeGreaterThanOrEqual(3);
      // Generous for a busy machine: maxWait (500 ms) plus timer and event delays.
      const previous = [started, ...during];
      const gaps = during.map((at, i) => at - defined(previous[i], 'the read before'));
      expect(Math.max(...gaps)).toBeLessThan(1500);
    } finally {
      stop();
    }
  });
});
