import { describe, expect, it } from 'vitest';
import { SyncRunner } from '../../../src/agent/runner.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('SyncRunner', () => {
  it('syncs soon after the first change even while changes keep coming, and batches the rest', async () => {
    const syncs: number[] = [];
    const runner = new SyncRunner({ minIntervalMs: 100, maxIntervalMs: 60_000, sync: async () => void syncs.push(performance.now()), onError: () => {} });
    const first = performance.now();
    // Requests for about 150 ms, closer together than a timer's 1 ms, the event loop free between them.
    while (performance.now() - first < 150) {
      runner.request();
      await new Promise((resolve) => setImmediate(resolve));
    }
    const fed = performance.now();
    await sleep(250);
    await runner.stop();
    expect(syncs[0]! - first).toBeLessThan(fed - first);
    expect(syncs.length).toBeGreaterThanOrEqual(2);
    expect(syncs.length).toBeLessThanOrEqual(4);
    for (let i = 1; i < syncs.length; i++) expect(syncs[i]! - syncs[i - 1]!).toBeGreaterThanOrEqual(95);
  });

  it('runs a requested sync after one under way, and none after stop()', async () => {
    let running = 0;
    let count = 0;
    const runner = new SyncRunner({
      minIntervalMs: 10,
      maxIntervalMs: 60_000,
      sync: async () => {
        running++;
        count++;
        await sleep(30);
        running--;
      },
      onError: () => {},
    });
    runner.request();
    await sleep(5);
    runner.request(); // during the first sync
    await sleep(80);
    expect(count).toBe(2);
    await runner.stop();
    runner.request();
    await sleep(30);
    expect(count).toBe(2);
    expect(running).toBe(0);
  });

  it('makes every periodic sync full, one period after the last full one started, also when syncs take long', async () => {
    const runs: Array<{ at: number; full: boolean }> = [];
    const runner = new SyncRunner({
      minIntervalMs: 10,
      maxIntervalMs: 100,
      sync: async ({ full }) => {
        runs.push({ at: performance.now(), full });
        await sleep(80); // a slow sync: the next one is due 100 ms after this one started, not after it ended
      },
      onError: () => {},
    });
    runner.start();
    await sleep(560);
    await runner.stop();
    expect(runs.every((run) => run.full)).toBe(true);
    expect(runs.length).toBeGreaterThanOrEqual(5);
    for (let i = 1; i < runs.length; i++) {
      expect(runs[i]!.at - runs[i - 1]!.at).toBeGreaterThanOrEqual(99);
      expect(runs[i]!.at - runs[i - 1]!.at).toBeLessThan(160);
    }
  });

  it('keeps the full sync on time while changes keep asking for partial ones', async () => {
    const runs: Array<{ at: number; full: boolean }> = [];
    const runner = new SyncRunner({ minIntervalMs: 10, maxIntervalMs: 100, sync: async ({ full }) => void runs.push({ at: performance.now(), full }), onError: () => {} });
    runner.start();
    const started = performance.now();
    while (performance.now() - started < 450) {
      runner.request();
      await sleep(15);
    }
    await runner.stop();
    const fulls = runs.filter((run) => run.full).map((run) => run.at);
    expect(runs.some((run) => !run.full)).toBe(true);
    expect(fulls.length).toBeGreaterThanOrEqual(4);
    // Due a period after the last full start; the first sync at or after that is full.
    for (let i = 1; i < fulls.length; i++) expect(fulls[i]! - fulls[i - 1]!).toBeLessThan(100 + 40);
  });
});

