// Failure 4 of issue 11, the source side: inputs that used to hang the agent (a FIFO, /dev/zero,
// /proc/kcore, an alias bomb, a huge file) are refused in bounded time, with one bounded line.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileSource } from '../../../src/sources/file-source.js';
import { exceedsLimits, quoteInput, readRegularFile } from '../../../src/sources/file-read.js';

const service = (name: string, extra = ''): string =>
  `apiVersion: v1\nkind: Service\nmetadata: { name: ${name}, namespace: default${extra} }\nspec: { clusterIP: 10.96.0.1, ports: [{ port: 80 }] }\n`;

/** Ten levels of ten aliases: 10^10 strings once expanded, a few hundred bytes of YAML. */
function aliasBomb(field: string): string {
  const lines = ['a0: &a0 "lol"'];
  for (let level = 1; level <= 10; level++) lines.push(`a${level}: &a${level} [${Array.from({ length: 10 }, () => `*a${level - 1}`).join(', ')}]`);
  return service('bomb', `, annotations: { ${field}: *a10 }`).replace(
    'apiVersion: v1\n',
    `apiVersion: v1\nx-anchors:\n${lines.map((line) => `  ${line}`).join('\n')}\n`,
  );
}

describe('hostile source files', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'kipvs-hostile-'))));
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a FIFO without blocking, and devices and /proc files with one line', () => {
    const fifo = join(dir, 'fifo.yaml');
    execFileSync('mkfifo', [fifo]);
    const started = performance.now();
    expect(readRegularFile(fifo)).toEqual({ refused: 'a FIFO; only regular files are read' });
    expect(readRegularFile('/dev/zero')).toEqual({ refused: 'a device; only regular files are read' });
    expect(readRegularFile('/proc/self/status')).toEqual({ refused: 'on procfs; only regular files are read' });
    expect(performance.now() - started).toBeLessThan(1000);
    const snapshot = new FileSource(dir).read();
    expect(snapshot.failing).toEqual([{ file: fifo, reason: 'a FIFO; only regular files are read; its objects are unknown, so no Service is removed' }]);
    expect(snapshot.complete).toBe(false);
  });

  it('refuses a file larger than the limit, without reading it', () => {
    const file = join(dir, 'big.yaml');
    writeFileSync(file, service('a').repeat(100));
    expect(readRegularFile(file, 1000)).toEqual({ refused: `${service('a').length * 100} bytes, more than the limit of 1000` });
    expect(readRegularFile(file)).toEqual({ text: service('a').repeat(100) });
  });

  it.each(['kipvs.io/scheduler', 'kipvs.io/weights'])('refuses an alias bomb in %s at once, and says so in a short line', (field) => {
    writeFileSync(join(dir, 'bomb.yaml'), aliasBomb(field));
    writeFileSync(join(dir, 'good.yaml'), service('good'));
    const started = performance.now();
    const snapshot = new FileSource(dir).read();
    expect(performance.now() - started).toBeLessThan(2000);
    expect(snapshot.services.map((s) => s.metadata.name)).toEqual(['good']);
    expect(snapshot.failing).toHaveLength(1);
    expect(snapshot.failing[0]?.reason).toMatch(/^expands to more than \d+ values and characters \(YAML aliases\?\)/);
    for (const problem of snapshot.problems) expect(problem.reason.length).toBeLessThan(300);
  });

  it('accepts aliases that expand modestly (a YAML author sharing a block)', () => {
    const list = `kind: List\nitems:\n- ${service('a').replace('[{ port: 80 }]', '&ports [{ port: 80 }]').replaceAll('\n', '\n  ')}\n- ${service('b').replace('[{ port: 80 }]', '*ports').replaceAll('\n', '\n  ')}\n`;
    writeFileSync(join(dir, 'a.yaml'), list);
    const snapshot = new FileSource(dir).read();
    expect(snapshot.failing).toEqual([]);
    expect(snapshot.services.map((s) => s.spec?.ports?.[0]?.port)).toEqual([80, 80]);
  });

  it('refuses nesting deeper than any Kubernetes object', () => {
    expect(exceedsLimits(JSON.parse(`${'['.repeat(100)}${']'.repeat(100)}`), 1e6)).toBe('nested deeper than 64 levels');
    writeFileSync(join(dir, 'deep.json'), `${'['.repeat(5000)}${']'.repeat(5000)}`);
    expect(new FileSource(dir).read().failing[0]?.reason).toMatch(/^nested deeper than 64 levels/);
  });

  it('quotes input in messages within a bound', () => {
    expect(quoteInput('x'.repeat(10_000))).toBe(`"${'x'.repeat(80)}"… (10000 characters)`);
    expect(quoteInput({ a: 1 })).toBe('an object');
    writeFileSync(join(dir, 'a.yaml'), `kind: ${'K'.repeat(100_000)}\nmetadata: { name: a }\n`);
    const snapshot = new FileSource(dir).read();
    expect(snapshot.problems[0]?.reason.length).toBeLessThan(200);
  });

  it('skips objects of an unknown apiVersion, and reports FQDN and portless EndpointSlices', () => {
    const slice = (name: string, body: string): string =>
      `apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: { name: ${name}, namespace: default, labels: { kubernetes.io/service-name: a } }\n${body}\n`;
    writeFileSync(
      join(dir, 'a.yaml'),
      [
        service('a').replace('apiVersion: v1', 'apiVersion: v2'),
        slice('fqdn', 'addressType: FQDN\nendpoints: [{ addresses: [db.example.com] }]\nports: [{ port: 5432 }]'),
        slice('portless', 'addressType: IPv4\nendpoints: [{ addresses: [10.244.0.1] }]'),
        slice('empty', 'addressType: IPv4\nendpoints: null\nports: null'),
      ].join('---\n'),
    );
    const snapshot = new FileSource(dir).read();
    expect(snapshot.services).toEqual([]);
    expect(snapshot.problems.map((problem) => problem.reason)).toEqual([
      '"a": Service of apiVersion "v2": only v1 is read; skipped',
      '"fqdn": EndpointSlice of addressType FQDN: no endpoints for a proxy (kube-proxy ignores it too)',
      '"portless": EndpointSlice with endpoints but no ports: no endpoints for a proxy (kube-proxy ignores it too)',
    ]);
    expect(snapshot.endpointSlices.map((s) => s.metadata.name)).toEqual(['fqdn', 'portless', 'empty']);
  });

  it("applies kube-proxy's label selector: Services and slices for another proxy, or headless, are not taken", () => {
    const labelled = (name: string, label: string): string => service(name, `, labels: { ${label}: x }`);
    writeFileSync(
      join(dir, 'a.yaml'),
      [service('mine'), labelled('other', 'service.kubernetes.io/service-proxy-name'), labelled('headless', 'service.kubernetes.io/headless')].join('---\n'),
    );
    const source = new FileSource(dir);
    expect(source.read().services.map((s) => s.metadata.name)).toEqual(['mine']);
    // Gaining the label is leaving the selection: gone, as if deleted.
    writeFileSync(join(dir, 'a.yaml'), labelled('mine', 'service.kubernetes.io/service-proxy-name'));
    expect(source.read().services).toEqual([]);
  });
});
