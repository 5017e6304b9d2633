// The soak's kill in the middle of a cold sync (scripts/soak/kill-mid-sync.ts, `npm run soak`
// kills at 30 % and 80 % of 10,000 Services), short enough for CI: 1,000 Services, one SIGKILL.
import { describe, expect, it } from 'vitest';
import { killMidSync } from '../../scripts/soak/kill-mid-sync.js';
import { requireKernelSandbox } from '../kernel/helpers/netns.js';

describe('SIGKILL in the middle of a cold sync', () => {
  it('leaves nothing a start does not repair: the kernel then equals a fresh run in a fresh namespace', async () => {
    requireKernelSandbox();
    const result = await killMidSync({
      services: 1000,
      killAt: [0.3],
      timeoutMs: 300_000,
      progress: (line) => {
        console.log(line);
      },
    });
    // The kill landed mid-sync: part of the real servers, not all.
    expect(result.killedAt[0]).toBeGreaterThanOrEqual(0.3);
    expect(result.killedAt[0]).toBeLessThan(1);
    expect(result.kernelLines).toBeGreaterThan(12_000);
    expect(result.difference).toEqual({ orphans: [], missing: [] });
  }, 900_000);
});
