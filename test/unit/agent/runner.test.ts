import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SyncRunner } from '../../../src/agent/runner.js';
import { defined } from '../../support/defined.js';

// Fake timers and a fake performance.now(): the runner's timing is checked to the millisecond,
// without real sleeps that a busy machine stretches.
beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'performance'] });
});
afterEach(() => {
  vi.useRealTimers();
});

/** The time from each entry to the next. */
const gaps = (times: number[]): number[] => times.slice(1).map((at, i) => at - defined(times[i], 'an earlier time'));

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A runner whose full syncs first read for 300 ms; it writes what it does, and when, to `events`. */
function runnerWithSlowRead(events: string[], at: () => number): SyncRunner {
  return new SyncRunner({
    minIntervalMs: 10,
    maxIntervalMs: 1000,
    prepareFull: async () => {
      events.push(`read from ${at()}`);
      await sleep(300);
      events.push(`read until ${at()}`);
    },
    sync: async ({ full }) => {
      events.push(`${full ? 'full' : 'partial'} at ${at()}`);
      await sleep(5);
    },
    onError: () => {},
  });
}

describe('SyncRunner', () => {
  it('syncs soon after the first change even while changes keep coming, and batches the rest', async () => {
    const syncs: number[] = [];
    const runner = new SyncRunner({
      minIntervalMs: 100,
      maxIntervalMs: 60_000,
      sync: () => {
        syncs.push(performance.now());
        return Promise.resolve();
      },
      onError: () => {},
    });
    const first = performance.now();
    // A request every millisecond for 350 ms.
    while (performance.now() - first < 350) {
      runner.request();
      await vi.advanceTimersByTimeAsync(1);
    }
    await vi.advanceTimersByTimeAsync(250);
    await runner.stop();
    expect(defined(syncs[0], 'a first sync') - first).toBeLessThanOrEqual(1);
    // One sync per minimum interval while the stream lasts (0, 100, 200, 300), one for its last
    // requests (400), never two closer than the interval.
    expect(syncs.length).toBe(5);
    for (const gap of gaps(syncs)) expect(gap).toBe(100);
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
    await vi.advanceTimersByTimeAsync(5);
    runner.request(); // during the first sync
    await vi.advanceTimersByTimeAsync(80);
    expect(count).toBe(2);
    const stopped = runner.stop();
    await vi.advanceTimersByTimeAsync(30);
    await stopped;
    runner.request();
    await vi.advanceTimersByTimeAsync(30);
    expect(count).toBe(2);
    expect(running).toBe(0);
  });

  it('syncs every maximum interval without any request, and after a failed sync too', async () => {
    const syncs: number[] = [];
    const errors: unknown[] = [];
    const runner = new SyncRunner({
      minIntervalMs: 10,
      maxIntervalMs: 1000,
      sync: () => {
        syncs.push(performance.now());
        return syncs.length === 2 ? Promise.reject(new Error('kernel away')) : Promise.resolve();
      },
      onError: (error) => void errors.push(error),
    });
    const started = performance.now();
    runner.start();
    await vi.advanceTimersByTimeAsync(3500);
    await runner.stop();
    expect(syncs.map((at) => at - started)).toEqual([0, 1000, 2000, 3000]);
    expect(errors).toHaveLength(1);
  });

  it('keeps the periodic rhythm when changes sync in between (drift repair is not pushed back)', async () => {
    const syncs: { at: number; full: boolean }[] = [];
    const runner = new SyncRunner({
      minIntervalMs: 100,
      maxIntervalMs: 1000,
      sync: ({ full }) => {
        syncs.push({ at: performance.now(), full });
        return Promise.resolve();
      },
      onError: () => {},
    });
    const started = performance.now();
    runner.start();
    // A change every 900 ms: each would restart a "sync period after the last sync" timer.
    for (let i = 0; i < 4; i++) {
      await vi.advanceTimersByTimeAsync(900);
      runner.request();
    }
    await vi.advanceTimersByTimeAsync(500);
    await runner.stop();
    expect(syncs.filter((sync) => sync.full).map((sync) => sync.at - started)).toEqual([0, 1000, 2000, 3000, 4000]);
    expect(syncs.filter((sync) => !sync.full).map((sync) => sync.at - started)).toEqual([900, 1800, 2700, 3600]);
  });
  it('makes every periodic sync full, one period after the last full one started, also when syncs take long', async () => {
    const runs: { at: number; full: boolean }[] = [];
    const runner = new SyncRunner({
      minIntervalMs: 10,
      maxIntervalMs: 100,
      sync: async ({ full }) => {
        runs.push({ at: performance.now(), full });
        await sleep(80); // a slow sync: the next one is due 100 ms after this one started, not after it ended
      },
      onError: () => {},
    });
    const started = performance.now();
    runner.start();
    await vi.advanceTimersByTimeAsync(560);
    const stopped = runner.stop(); // the sync that started at 500 ms is still running
    await vi.advanceTimersByTimeAsync(100);
    await stopped;
    expect(runs.every((run) => run.full)).toBe(true);
    expect(runs.map((run) => run.at - started)).toEqual([0, 100, 200, 300, 400, 500]);
  });

  it('keeps the full sync on time while changes keep asking for partial ones', async () => {
    const runs: { at: number; full: boolean }[] = [];
    const runner = new SyncRunner({
      minIntervalMs: 10,
      maxIntervalMs: 100,
      sync: ({ full }) => {
        runs.push({ at: performance.now(), full });
        return Promise.resolve();
      },
      onError: () => {},
    });
    const started = performance.now();
    runner.start();
    while (performance.now() - started < 450) {
      runner.request();
      await vi.advanceTimersByTimeAsync(15);
    }
    await runner.stop();
    expect(runs.some((run) => !run.full)).toBe(true);
    // Due a period after the last full start; the first sync at or after that is full.
    const fulls = runs.filter((run) => run.full).map((run) => run.at - started);
    expect(fulls.length).toBeGreaterThanOrEqual(5);
    for (const gap of gaps(fulls)) expect(gap).toBeLessThanOrEqual(100 + 15);
  });

  it('syncs a change while a full sync reads the kernel, and runs the full sync once the read is done', async () => {
    const events: string[] = [];
    const started = performance.now();
    const at = (): number => performance.now() - started;
    const runner = runnerWithSlowRead(events, at);
    runner.start();
    await vi.advanceTimersByTimeAsync(500);
    // The second period's read starts at 1000 (counted from the start of the first read).
    await vi.advanceTimersByTimeAsync(600);
    runner.request(); // at 1100, while the read runs: synced at once
    await vi.advanceTimersByTimeAsync(150);
    runner.request(); // at 1250, during the read, again
    await vi.advanceTimersByTimeAsync(200);
    await runner.stop();
    expect(events).toEqual([
      'read from 0',
      'read until 300',
      'full at 300',
      'read from 1000',
      'partial at 1100',
      'partial at 1250',
      'read until 1300',
      'full at 1300',
    ]);
  });

  it('runs the full sync after a partial one that is under way when the read ends, and takes the changes that came meanwhile', async () => {
    const events: string[] = [];
    const started = performance.now();
    const at = (): number => performance.now() - started;
    const runner = new SyncRunner({
      minIntervalMs: 10,
      maxIntervalMs: 1000,
      prepareFull: () => sleep(100),
      sync: async ({ full }) => {
        events.push(`${full ? 'full' : 'partial'} at ${at()}`);
        await sleep(50);
      },
      onError: () => {},
    });
    runner.start();
    await vi.advanceTimersByTimeAsync(200);
    events.length = 0;
    await vi.advanceTimersByTimeAsync(870); // the read runs from 1000 to 1100
    runner.request(); // at 1070: a partial sync until 1120
    await vi.advanceTimersByTimeAsync(20);
    runner.request(); // at 1090: pending, and taken in by the full sync
    await vi.advanceTimersByTimeAsync(200);
    await runner.stop();
    expect(events).toEqual(['partial at 1070', 'full at 1120']);
  });

  it('reports a read that rejects and still runs the full sync, which then reads the kernel itself', async () => {
    const events: string[] = [];
    const errors: unknown[] = [];
    const started = performance.now();
    const at = (): number => performance.now() - started;
    const failure = new Error('read failed');
    const runner = new SyncRunner({
      minIntervalMs: 10,
      maxIntervalMs: 1000,
      prepareFull: async () => {
        await sleep(100);
        throw failure;
      },
      sync: async ({ full }) => {
        events.push(`${full ? 'full' : 'partial'} at ${at()}`);
        await sleep(5);
      },
      onError: (error) => errors.push(error),
    });
    runner.start();
    await vi.advanceTimersByTimeAsync(1150);
    runner.request(); // at 1150: the second read failed at 1100, its full sync ran; a change syncs as usual
    await vi.advanceTimersByTimeAsync(100);
    await runner.stop();
    expect(errors).toEqual([failure, failure]);
    expect(events).toEqual(['full at 100', 'full at 1100', 'partial at 1150']);
  });

  it('stop() during a read waits for the read to end and runs nothing after it', async () => {
    const events: string[] = [];
    const started = performance.now();
    const at = (): number => performance.now() - started;
    const runner = runnerWithSlowRead(events, at);
    runner.start();
    await vi.advanceTimersByTimeAsync(1100); // the second read runs from 1000
    let stopped = false;
    const stopping = runner.stop().then(() => {
      stopped = true;
      events.push(`stopped at ${at()}`);
    });
    runner.request(); // after stop(): ignored
    await vi.advanceTimersByTimeAsync(100);
    expect(stopped).toBe(false);
    await vi.advanceTimersByTimeAsync(2000);
    await stopping;
    expect(events).toEqual(['read from 0', 'read until 300', 'full at 300', 'read from 1000', 'read until 1300', 'stopped at 1300']);
  });
});
