// Failure 3 of issue 11: every full sync looks at the source again, so a change whose event was
// lost is programmed within one --ipvs-sync-period.
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startDaemon } from '../../../src/agent/daemon.js';
import { Proxier } from '../../../src/agent/proxier.js';
import { MemoryOwnershipStore } from '../../../src/agent/ownership.js';
import { FakeKernel } from '../../support/fake-kernel.js';
import { DEFAULT_SETTINGS } from '../../../src/model/settings.js';
import { ClusterStore } from '../../../src/sources/cluster-store.js';
import type { Service } from '../../../src/model/kubernetes.js';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'performance', 'queueMicrotask'] });
});
afterEach(() => {
  vi.useRealTimers();
});

const service = (name: string, clusterIP: string): Service => ({ metadata: { name, namespace: 'default' }, spec: { clusterIP, ports: [{ port: 80 }] } });

describe('daemon', () => {
  it('checks the source before every full sync, and programs what the check found in that very sync', async () => {
    const kernel = new FakeKernel();
    const cluster = new ClusterStore();
    const log = pino({ level: 'silent' });
    const proxier = new Proxier({
      kernel,
      node: { name: 'node-a', addresses: ['192.0.2.1'], families: ['inet'] },
      settings: DEFAULT_SETTINGS,
      log,
      ownership: new MemoryOwnershipStore(),
      cluster,
    });
    // The source holds a Service the store never heard of: its change event was lost.
    const source = [service('web', '10.96.0.10')];
    const checks: number[] = [];
    const syncs: { at: number; full: boolean; virtualServers: number }[] = [];
    const daemon = startDaemon({
      proxier,
      cluster,
      log,
      syncPeriodMs: 5000,
      minSyncPeriodMs: 1000,
      applyRules: async () => {},
      checkSource: () => {
        checks.push(performance.now());
        cluster.replaceAll(source, []);
      },
      observers: [{ synced: (result) => void syncs.push({ at: performance.now(), full: result.full, virtualServers: kernel.virtualServers.size }) }],
    });
    const started = performance.now();
    await vi.advanceTimersByTimeAsync(100);
    expect(syncs[0]).toMatchObject({ full: true, virtualServers: 1 });
    source.push(service('db', '10.96.0.20'));
    await vi.advanceTimersByTimeAsync(5000);
    const stopped = daemon.stop();
    await vi.runOnlyPendingTimersAsync();
    await stopped;
    expect(kernel.virtualServers.size).toBe(2);
    const programmed = syncs.find((sync) => sync.virtualServers === 2);
    expect(programmed?.full).toBe(true);
    expect((programmed?.at ?? Infinity) - started).toBeLessThanOrEqual(5000);
    expect(checks.length).toBe(syncs.filter((sync) => sync.full).length);
  });
});
