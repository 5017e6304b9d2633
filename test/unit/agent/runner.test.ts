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
});
