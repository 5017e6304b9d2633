// `kipvs inspect` as a user runs it (the built CLI, in a process of its own) against ipvsadm.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestNetns } from './helpers/netns.js';
import { Teardown } from './helpers/teardown.js';

const cli = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');

function kipvs(args: readonly string[], options: { asNobody?: boolean } = {}): { status: number | null; stdout: string; stderr: string } {
  const command = options.asNobody ? 'setpriv' : process.execPath;
  const fullArgs = options.asNobody ? ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, cli, ...args] : [cli, ...args];
  const result = spawnSync(command, fullArgs, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('kipvs inspect', () => {
  let ns: TestNetns;
  const teardown = new Teardown();

  beforeAll(() => {
    if (!existsSync(cli)) throw new Error(`${cli} is missing: npm run build first (npm test does)`);
    ns = teardown.createTestNetns();
    const lines: string[] = [];
    for (let i = 0; i < 1000; i++) {
      const vip = `10.96.${i >> 8}.${i & 255}`;
      const protocol = i % 3 === 0 ? '-u' : '-t';
      lines.push(`-A ${protocol} ${vip}:${80 + (i % 7)} -s ${['rr', 'wrr', 'lc'][i % 3]}${i % 5 === 0 ? ' -p 120' : ''}`);
      for (let j = 0; j < 10; j++) lines.push(`-a ${protocol} ${vip}:${80 + (i % 7)} -r 10.${200 + j}.${i >> 8}.${i & 255}:${8000 + j} -m -w ${j}`);
    }
    for (let i = 0; i < 20; i++) {
      lines.push(`-A -t [fd00::${i.toString(16)}]:443 -s sh`);
      lines.push(`-a -t [fd00::${i.toString(16)}]:443 -r [fd01::${i.toString(16)}]:8443 -m -w 1`);
    }
    ns.run('ipvsadm', ['-R'], `${lines.join('\n')}\n`);
  });
  afterAll(() => teardown.run());

  it('prints a table of 1,020 virtual servers and 10,020 real servers exactly as ipvsadm -Ln does', () => {
    const ours = kipvs(['inspect', '--netns', ns.name]);
    expect(ours.stderr).toBe('');
    expect(ours.status).toBe(0);
    const theirs = ns.run('ipvsadm', ['-Ln']);
    expect(theirs.split('\n')).toHaveLength(3 + 1020 + 10_020 + 1);
    expect(ours.stdout.split('\n')).toEqual(theirs.split('\n'));
  });

  it('prints counters as ipvsadm -Ln --stats does', () => {
    const ours = kipvs(['inspect', '--stats', '--netns', ns.path]);
    expect(ours.status).toBe(0);
    expect(ours.stdout.split('\n')).toEqual(ns.run('ipvsadm', ['-Ln', '--stats']).split('\n'));
  });

  it('prints JSON that parses and holds every virtual and real server', () => {
    const ours = kipvs(['inspect', '--json', '--netns', ns.name]);
    expect(ours.status).toBe(0);
    const parsed = JSON.parse(ours.stdout) as { services: Array<{ service: { scheduler: string }; destinations: unknown[] }> };
    expect(parsed.services).toHaveLength(1020);
    expect(parsed.services.reduce((n, entry) => n + entry.destinations.length, 0)).toBe(10_020);
    expect(new Set(parsed.services.map((entry) => entry.service.scheduler))).toEqual(new Set(['rr', 'wrr', 'lc', 'sh']));
  });

  it('says in one line, without a stack trace, that a namespace does not exist', () => {
    const result = kipvs(['inspect', '--netns', 'kipvs-no-such-namespace']);
    expect(result.status).toBe(1);
    expect(result.stderr).toBe('kipvs: network namespace /run/netns/kipvs-no-such-namespace: cannot open: ENOENT\n');
  });

  it('says in one line that reading IPVS needs CAP_NET_ADMIN when run unprivileged', () => {
    // The sandbox's own namespace: an unprivileged reader can change nothing anyway.
    const result = kipvs(['inspect'], { asNobody: true });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^kipvs: [^\n]*: EPERM: programming or reading IPVS needs CAP_NET_ADMIN \(run as root\)\n$/);
  });

  it('refuses conflicting options with a usage error', () => {
    const result = kipvs(['inspect', '--stats', '--rate']);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/cannot be used with option/);
  });
});
