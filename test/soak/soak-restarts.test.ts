// The soak's restarts (scripts/soak/restarts.ts, `npm run soak` runs 30 at 3,000 Services), short
// enough for CI: 4 restarts at 300 Services under traffic to a ClusterIP and a NodePort,
// alternating SIGTERM and SIGKILL, the third in the middle of a sync.
import { describe, expect, it } from 'vitest';
import { restartsUnderTraffic } from '../../scripts/soak/restarts.js';
import { requireKernelSandbox } from '../kernel/helpers/netns.js';

describe('agent restarts under traffic', () => {
  it('fails no request, keeps a held connection and never flushes the table, across SIGTERM and SIGKILL, also mid-sync', async () => {
    requireKernelSandbox();
    const result = await restartsUnderTraffic({
      services: 300,
      restarts: 4,
      timeoutMs: 300_000,
      progress: (line) => {
        console.log(line);
      },
    });
    expect(result.traffic.map((t) => ({ target: t.target, failed: t.failed, errors: t.errors }))).toEqual([
      { target: '10.100.0.10:80', failed: 0, errors: [] },
      { target: '10.200.0.1:32500', failed: 0, errors: [] },
    ]);
    expect(result.traffic.every((t) => t.ok >= 5 * 5)).toBe(true);
    expect(result.heldFailure).toBeUndefined();
    expect(result.heldAnswers).toBe(4);
    expect(result.counterWentBack).toEqual([]);
    expect([result.sigterm, result.sigkill, result.midSyncPlanned]).toEqual([2, 2, 1]);
    // The third stop landed while the kernel held part of the change (300 + 60 real servers).
    expect(result.midSyncCaught).toBe(1);
    expect(result.sigtermExitCodes).toEqual([0, 0]);
  }, 900_000);
});
