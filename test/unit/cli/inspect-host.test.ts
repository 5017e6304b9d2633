// `kipvs inspect` on the machine running the unit tests: with IPVS in the kernel it lists the
// table; without (the usual CI machine) it says so in one line instead of a stack trace.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const cli = join(import.meta.dirname, '..', '..', '..', 'dist', 'cli', 'main.js');

describe('kipvs inspect on this host', () => {
  it('lists the table when the kernel has IPVS, and otherwise says IPVS is missing', () => {
    if (!existsSync(cli)) throw new Error(`${cli} is missing: npm run build first (npm test does)`);
    const result = spawnSync(process.execPath, [cli, 'inspect'], { encoding: 'utf8' });
    if (existsSync('/proc/net/ip_vs')) {
      if (result.status === 0) expect(result.stdout).toMatch(/^IP Virtual Server version \d+\.\d+\.\d+ \(size=\d+\)\n/);
      else expect(result.stderr).toMatch(/^kipvs: .*needs CAP_NET_ADMIN/);
    } else {
      expect(result.status).toBe(1);
      expect(result.stderr).toBe(
        'kipvs: IPVS is not available in this kernel: generic netlink family "IPVS" not found (load the ip_vs module: modprobe ip_vs)\n',
      );
    }
  });

  it('prints usage help', () => {
    const result = spawnSync(process.execPath, [cli, 'inspect', '--help'], { encoding: 'utf8' });
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('--netns <name|path>');
  });
});
