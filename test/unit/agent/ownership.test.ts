import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileOwnershipStore } from '../../../src/agent/ownership.js';

describe('FileOwnershipStore', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'kipvs-state-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

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
