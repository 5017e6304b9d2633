import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileOwnershipStore, removeStaleStateFiles } from '../../../src/agent/ownership.js';

describe('FileOwnershipStore', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'kipvs-state-'))));
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps what kipvs owns and what drains across restarts, the owned keys sorted', () => {
    const store = FileOwnershipStore.forNamespace(undefined, dir);
    const owned = new Set(['TCP 10.96.0.2:80', 'TCP 10.96.0.1:80']);
    store.save({ owned, draining: new Map() });
    const draining = { virtualServer: 'TCP 10.96.0.1:80', realServer: '10.244.0.1:8080', since: 5 };
    store.save({ owned, draining: new Map([['TCP 10.96.0.1:80 -> 10.244.0.1:8080', draining]]) });
    const file = JSON.parse(readFileSync(join(dir, 'owned-virtual-servers.json'), 'utf8')) as { owned: string[]; draining: unknown[] };
    expect(file).toEqual({ owned: ['TCP 10.96.0.1:80', 'TCP 10.96.0.2:80'], draining: [draining] });
    const restarted = FileOwnershipStore.forNamespace(undefined, dir).load();
    expect(restarted.owned).toEqual(owned);
    expect([...restarted.draining.values()]).toEqual([draining]);
    store.save({ owned: new Set(['TCP 10.96.0.3:80']), draining: new Map() });
    expect(FileOwnershipStore.forNamespace(undefined, dir).load().owned).toEqual(new Set(['TCP 10.96.0.3:80']));
  });
});

describe('FileOwnershipStore with a damaged or foreign file', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'kipvs-state-'))));
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    ['truncated', '{"owned":["TCP 10.96.0.1:80","TCP 10.9'],
    ['corrupt', '\u0000\u0001garbage'],
    ['of another shape', '{"owned":"TCP 10.96.0.1:80"}'],
    ['null', 'null'],
  ])('starts empty from a %s file and says so once', (_what, text) => {
    writeFileSync(join(dir, 'owned-virtual-servers.json'), text);
    const problems: string[] = [];
    const store = FileOwnershipStore.forNamespace(undefined, dir, (problem) => problems.push(problem));
    expect(store.load().owned.size).toBe(0);
    store.load();
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/corrupt or truncated; starting without it|corrupt or truncated/);
  });

  it('keeps the state in memory and says so when the file cannot be written', () => {
    const problems: string[] = [];
    const store = FileOwnershipStore.forNamespace(undefined, join(dir, 'file-not-dir', 'sub'), (problem) => problems.push(problem));
    writeFileSync(join(dir, 'file-not-dir'), '');
    const owned = new Set(['TCP 10.96.0.1:80']);
    expect(() => {
      store.save({ owned, draining: new Map() });
    }).not.toThrow();
    expect(store.load().owned).toBe(owned);
    expect(problems).toEqual([expect.stringMatching(/cannot be written \(ENOTDIR\); kept in memory only/)]);
  });

  it('drops drain records it cannot use and keeps the rest', () => {
    const good = { virtualServer: 'TCP 10.96.0.1:80', realServer: '10.244.0.1:8080', since: 5 };
    writeFileSync(join(dir, 'owned-virtual-servers.json'), JSON.stringify({ owned: ['TCP 10.96.0.1:80', 7], draining: [good, null, { virtualServer: 'x' }] }));
    const state = FileOwnershipStore.forNamespace(undefined, dir).load();
    expect(state.owned).toEqual(new Set(['TCP 10.96.0.1:80']));
    expect([...state.draining.values()]).toEqual([good]);
  });

  it('removes the state files of namespaces that are gone, and only those', () => {
    const write = (name: string, content: unknown): void => {
      writeFileSync(join(dir, name), JSON.stringify(content));
    };
    const alive = statSync(dir).ino; // any path with an inode stands in for a namespace that exists
    write('owned-virtual-servers-aaaaaaaaaaaa.json', { owned: [], draining: [], netns: { path: join(dir, 'gone'), inode: 1 } });
    write('owned-virtual-servers-bbbbbbbbbbbb.json', { owned: [], draining: [], netns: { path: dir, inode: alive } });
    write('owned-virtual-servers-cccccccccccc.json', { owned: [], draining: [], netns: { path: dir, inode: alive + 1 } });
    write('owned-virtual-servers-dddddddddddd.json', { owned: [], draining: [] });
    write('owned-virtual-servers.json', { owned: [], draining: [] });
    expect(
      removeStaleStateFiles(dir)
        .map((path) => path.slice(dir.length + 1))
        .sort(),
    ).toEqual(['owned-virtual-servers-aaaaaaaaaaaa.json', 'owned-virtual-servers-cccccccccccc.json']);
    expect(readdirSync(dir).sort()).toEqual([
      'owned-virtual-servers-bbbbbbbbbbbb.json',
      'owned-virtual-servers-dddddddddddd.json',
      'owned-virtual-servers.json',
    ]);
  });
});
