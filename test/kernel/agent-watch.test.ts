// The agent as a daemon: it follows its source files as they change, repairs drift at every sync
// period, reports bad input without losing the rest, and stops cleanly; --dry-run changes nothing.
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changingSyncLoggedAfter, type AgentProcess } from './helpers/agent-process.js';
import { Teardown } from './helpers/teardown.js';
import type { Topology } from './helpers/topology.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'dist', 'cli', 'main.js');

describe('kipvs agent as a daemon', () => {
  let topology: Topology;
  let sourceDir: string;
  let agent: AgentProcess | undefined;

  const ipvsadm = (...args: string[]): string => topology.node.run('ipvsadm', args);
  /** The listing of the web Service's virtual server, empty while it does not exist. */
  const webListing = (): string => {
    try {
      return ipvsadm('-Ln', '-t', '10.96.0.10:80');
    } catch {
      return '';
    }
  };
  const webYaml = (): string => readFileSync(join(root, 'examples', 'web.yaml'), 'utf8');

  const teardown = new Teardown();

  beforeAll(async () => {
    topology = teardown.createTopology(3, { kipvsCleanup: true });
    await Promise.all(topology.pods.map((pod) => topology.startServer(pod, 8080)));
    sourceDir = teardown.makeTempDir('kipvs-source-');
    cpSync(join(root, 'examples', 'web.yaml'), join(sourceDir, 'web.yaml'));
  });
  afterAll(() => teardown.run());

  it('programs at start, follows a changed file within 3 s, and survives a bad document', async () => {
    // Only two of the three pods at first.
    writeFileSync(join(sourceDir, 'web.yaml'), webYaml().replace(/ {2}- addresses: \[10\.201\.2\.2\][\s\S]*$/, ''));
    agent = teardown.startAgent(topology.node, ['--source', sourceDir, '--ipvs-sync-period', '3s', '--ipvs-min-sync-period', '100ms']);
    const started = agent;
    await agent.waitFor('initial sync', () => /10\.201\.1\.2:8080/.test(webListing()));
    expect(webListing()).not.toContain('10.201.2.2');

    // Within 3 s by the agent's own log: the sync that carried the change ended by then.
    const written = Date.now();
    writeFileSync(join(sourceDir, 'web.yaml'), webYaml());
    // Waiting on the agent's log rather than polling the kernel: each look is a process, dear
    // enough on a busy machine to slow the agent it is timing.
    await agent.waitFor('the sync that carried it', () => changingSyncLoggedAfter(started, written) !== undefined);
    expect(webListing()).toContain('10.201.2.2:8080');
    expect(changingSyncLoggedAfter(agent, written)).toBeLessThan(3_000);
    expect(topology.request('10.96.0.10', 80, 9)).toEqual({ answers: { pod0: 3, pod1: 3, pod2: 3 }, failures: 0 });

    writeFileSync(join(sourceDir, 'broken.yaml'), 'kind: Service\nmetadata: [not, a, map\n');
    await agent.waitForLog('bad document reported', (line) => line.text.includes('not valid YAML'), 5_000);
    expect(topology.request('10.96.0.10', 80, 3).failures).toBe(0);
    expect(ipvsadm('-Ln', '-t', '10.96.0.10:80')).toContain('10.201.2.2:8080');
  });

  it('puts back a virtual server deleted by hand at the next sync period', async () => {
    if (!agent) throw new Error('no agent: the first test did not start it');
    const running = agent;
    const linesBefore = running.lines.length;
    const fullSyncsSince = (): number[] =>
      running.lines
        .slice(linesBefore)
        .filter((line) => line.msg === 'synced' && line.fields?.full === true)
        .map((line) => Number(line.fields?.operations));
    ipvsadm('-D', '-t', '10.96.0.10:80'); // throws unless the kernel deleted it
    await running.waitFor(
      'virtual server repaired, and the sync that did it logged',
      () => ipvsadm('-Sn').includes('-a -t 10.96.0.10:80 -r 10.201.2.2:8080') && fullSyncsSince().some((operations) => operations >= 2),
    );
    // By the next full sync, counted in syncs rather than seconds (a busy machine stretches those):
    // one full sync may have read the kernel before the deletion and found nothing to do, the
    // one after it must put the virtual server and its real servers back.
    expect(fullSyncsSince().findIndex((operations) => operations >= 2)).toBeLessThan(2);
  });

  it('stops on SIGTERM with status 0 and leaves the kernel as programmed', async () => {
    if (!agent) throw new Error('no agent: the first test did not start it');
    const before = ipvsadm('-Sn');
    expect(await agent.stop('SIGTERM')).toBe(0);
    agent = undefined;
    expect(ipvsadm('-Sn')).toBe(before);
    expect(topology.request('10.96.0.10', 80, 3).failures).toBe(0);
  });

  it('--dry-run prints the plan and changes nothing', () => {
    writeFileSync(join(sourceDir, 'web.yaml'), webYaml().replace('10.201.2.2', '10.201.2.99'));
    const before = ipvsadm('-Sn');
    const result = spawnSync(
      process.execPath,
      [cli, 'agent', '--dry-run', '--source', sourceDir, '--netns', topology.node.name, '--hostname-override', 'node-a'],
      { encoding: 'utf8' },
    );
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('add real server 10.201.2.99:8080 to TCP 10.96.0.10:80');
    expect(result.stdout).toContain('edit real server 10.201.2.2:8080 of TCP 10.96.0.10:80');
    expect(ipvsadm('-Sn')).toBe(before);
  });

  it('says in one line what is wrong with a bad flag or an unreadable source', () => {
    const run = (...args: string[]) => spawnSync(process.execPath, [cli, 'agent', ...args], { encoding: 'utf8' });
    const missing = run('--once', '--source', '/nonexistent/kipvs', '--netns', topology.node.name);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toBe('kipvs: cannot read source /nonexistent/kipvs: ENOENT\n');
    const badScheduler = run('--scheduler', 'fastest', '--source', sourceDir);
    expect(badScheduler.status).not.toBe(0);
    expect(badScheduler.stderr).toMatch(/unknown IPVS scheduler "fastest"/);
    const badCidr = run('--cluster-cidr', '10.0.0.0/33', '--source', sourceDir);
    expect(badCidr.stderr).toMatch(/"10\.0\.0\.0\/33" is not a CIDR/);
    const badDuration = run('--ipvs-sync-period', 'soon', '--source', sourceDir);
    expect(badDuration.stderr).toMatch(/"soon" is not a duration/);
    for (const result of [missing, badScheduler, badCidr, badDuration]) expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});
