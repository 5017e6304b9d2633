// Faults in the kernel and in /run/kipvs, as an operator trying to break the agent makes them
// (issue 11): a kube-proxy set of the wrong type, a corrupt or unwritable state file, drift of
// several kinds at once, and a new node, where the iptables rules must come before the first
// virtual server. Each is met by the built CLI in a node namespace of its own.
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTopology, type Topology } from '../kernel/helpers/topology.js';
import { defined } from '../support/defined.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'dist', 'cli', 'main.js');

async function waitFor(what: string, condition: () => boolean, timeoutMs = 240_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('kipvs under kernel and state-file faults', () => {
  let created: Topology | undefined;
  const topology = (): Topology => defined(created, 'the topology beforeAll creates');
  let sourceDir: string;
  let agent: ChildProcess | undefined;

  const run = (...args: string[]): SpawnSyncReturns<string> => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  const agentOnce = (): ReturnType<typeof run> =>
    run('agent', '--once', '--source', sourceDir, '--netns', topology().node.name, '--hostname-override', 'node-a');
  const node = (command: string, ...args: string[]): string => topology().node.run(command, args);
  const tryNode = (command: string, ...args: string[]): string => {
    try {
      return node(command, ...args);
    } catch {
      return '';
    }
  };
  const stateFile = (): string =>
    `/run/kipvs/owned-virtual-servers-${createHash('sha256').update(`/run/netns/${topology().node.name}`).digest('hex').slice(0, 12)}.json`;

  beforeAll(() => {
    // Pods without servers: these cases look at the kernel's objects, not at traffic (the traffic
    // tests are agent-traffic's).
    created = createTopology(3);
    sourceDir = mkdtempSync(join(tmpdir(), 'kipvs-source-'));
    cpSync(join(root, 'examples'), sourceDir, { recursive: true });
  }, 600_000);
  afterEach(() => {
    // Each case starts from a node without kipvs.
    agent?.kill('SIGKILL');
    agent = undefined;
    run('cleanup', '--netns', topology().node.name);
    rmSync(stateFile(), { recursive: true, force: true });
  }, 300_000);
  afterAll(() => {
    created?.destroy();
    if (sourceDir) rmSync(sourceDir, { recursive: true, force: true });
  });

  it('replaces kube-proxy sets of the wrong type, programs everything else, and cleanup and inspect carry on past sets they cannot read', () => {
    node('ipset', 'create', 'KUBE-CLUSTER-IP', 'hash:mac'); // a type kipvs does not decode
    node('ipset', 'create', 'KUBE-NODE-PORT-TCP', 'hash:ip'); // one it decodes, of the wrong type
    const once = agentOnce();
    // The whole log with either failure: a line alone does not say what came before it.
    expect(
      once.stderr.split('\n').filter((line) => line.includes('"level":50')),
      `error-level lines; agent log:\n${once.stderr}`,
    ).toEqual([]);
    expect(once.status, `exit status; agent log:\n${once.stderr}`).toBe(0);
    expect(node('ipset', 'list', 'KUBE-CLUSTER-IP')).toMatch(/Type: hash:ip,port\n[\s\S]*Members:\n[\s\S]*10\.96\.0\.10,tcp:80/);
    expect(node('ipset', 'list', 'KUBE-NODE-PORT-TCP')).toMatch(/Type: bitmap:port\n[\s\S]*Members:\n30080/);
    expect(node('ipset', 'list', '-n')).not.toMatch(/KIPVS-TMP/);
    expect(once.stderr).toContain('replace ipset');

    // A set of a type kipvs cannot decode, under kube-proxy's IPv6 name (not in use on this
    // IPv4 node) and under a name of its own: inspect shows them, cleanup removes only the first.
    node('ipset', 'create', 'KUBE-6-CLUSTER-IP', 'hash:mac'); // hash:mac has no family: ipset refuses `family inet6`
    node('ipset', 'create', 'TOOL-LIST', 'list:set');
    const inspect = run('inspect', '--ipsets', '--netns', topology().node.name);
    expect(inspect.stderr).toBe('');
    expect(inspect.status).toBe(0);
    expect(inspect.stdout).toMatch(/Name: KUBE-6-CLUSTER-IP\nType: hash:mac\nRevision: \d+\nHeader: \(not decoded by kipvs/);
    expect(inspect.stdout).toMatch(/Name: TOOL-LIST\nType: list:set\n/);
    expect(inspect.stdout).toMatch(/Name: KUBE-CLUSTER-IP\nType: hash:ip,port\n/);

    const cleanup = run('cleanup', '--netns', topology().node.name);
    expect(cleanup.stderr).toBe('');
    expect(cleanup.status).toBe(0);
    expect(node('ipset', 'list', '-n').trim().split('\n')).toEqual(['TOOL-LIST']);
    expect(node('ipvsadm', '-Sn')).toBe('');
    node('ipset', 'destroy', 'TOOL-LIST');
  }, 600_000);

  it('starts from a truncated, then an unreadable and unwritable state file, says so, and deletes nothing on its word', () => {
    // Someone else's virtual server, which a truncated file names as kipvs's.
    node('ipvsadm', '-A', '-t', '192.0.2.50:80', '-s', 'rr');
    mkdirSync('/run/kipvs', { recursive: true });
    writeFileSync(stateFile(), '{"owned":["TCP 192.0.2.50:80","TCP 10.96.0');
    const truncated = agentOnce();
    expect(truncated.status).toBe(0);
    expect(truncated.stderr).toMatch(/state file .* is corrupt or truncated/);
    expect(node('ipvsadm', '-Sn')).toContain('-A -t 192.0.2.50:80 -s rr');
    expect(node('ipvsadm', '-Sn')).toContain('-A -t 10.96.0.10:80 -s rr');

    // A directory where the file should be: it can be neither read nor replaced.
    rmSync(stateFile(), { force: true });
    mkdirSync(stateFile());
    const unwritable = agentOnce();
    expect(unwritable.status).toBe(0);
    expect(unwritable.stderr).toMatch(/state file .* cannot be read \(EISDIR\)/);
    expect(unwritable.stderr).toMatch(/state file .* cannot be written/);
    expect(node('ipvsadm', '-Sn')).toContain('-A -t 192.0.2.50:80 -s rr');
    node('ipvsadm', '-D', '-t', '192.0.2.50:80');
  }, 600_000);

  it('has the masquerade and filter rules in place before the first virtual server exists', async () => {
    let logs = '';
    const child = spawn(
      process.execPath,
      [
        cli,
        'agent',
        '--source',
        sourceDir,
        '--netns',
        topology().node.name,
        '--hostname-override',
        'node-a',
        '--healthz-bind-address',
        '',
        '--metrics-bind-address',
        '',
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    agent = child;
    child.stderr.on('data', (data: Buffer) => (logs += data.toString()));
    // Each look reads the IPVS table first and the rules after: a table with a virtual server and
    // no rules would be a moment the first connections went out unmasqueraded.
    const looks: Array<{ ipvs: string; rules: string }> = [];
    await waitFor('first virtual server', () => {
      const look = { ipvs: tryNode('ipvsadm', '-Sn'), rules: tryNode('iptables-legacy-save') };
      looks.push(look);
      return look.ipvs.includes('10.96.0.10:80');
    });
    for (const look of looks.filter((l) => l.ipvs !== '')) {
      expect(look.rules).toMatch(/-A KUBE-POSTROUTING .*-j MASQUERADE/);
      expect(look.rules).toMatch(/-A KUBE-SERVICES .*--match-set KUBE-CLUSTER-IP dst,dst/);
      expect(look.rules).toMatch(/-A INPUT .*-j KUBE-IPVS-FILTER/);
      expect(look.rules).toMatch(/-A KUBE-IPVS-FILTER .*--match-set KUBE-IPVS-IPS dst -j REJECT/);
    }
    // And in the agent's own order: the rules are written before the first sync's report.
    await waitFor('first sync logged', () => logs.includes('"msg":"synced"'));
    expect(logs.indexOf('"msg":"iptables rules written"')).toBeGreaterThan(-1);
    expect(logs.indexOf('"msg":"iptables rules written"')).toBeLessThan(logs.indexOf('"msg":"synced"'));
  }, 600_000);

  it('repairs several kinds of drift at once within one sync period plus one sync', async () => {
    const periodMs = 5000;
    let logs = '';
    const child = spawn(
      process.execPath,
      [
        cli,
        'agent',
        '--source',
        sourceDir,
        '--netns',
        topology().node.name,
        '--hostname-override',
        'node-a',
        '--ipvs-sync-period',
        '5s',
        '--healthz-bind-address',
        '',
        '--metrics-bind-address',
        '',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    agent = child;
    child.stderr.on('data', (data: Buffer) => (logs += data.toString()));
    const state = (): string =>
      [tryNode('ipvsadm', '-Sn'), tryNode('ipset', 'list', 'KUBE-CLUSTER-IP'), tryNode('ip', '-o', 'addr', 'show', 'dev', 'kube-ipvs0')]
        .join('\n')
        .split('\n')
        .filter((line) => !line.startsWith('Size in memory'))
        // Re-added objects may come back in another order; what matters is that they are there.
        .map((line) => line.replace(/^\d+: /, ''))
        .sort()
        .join('\n');
    await waitFor('converged', () => state().includes('-a -t 10.96.0.10:80 -r 10.201.2.2:8080'));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const converged = state();
    expect(converged).toContain('10.96.0.10/32');

    // All five faults in one shell, so that they land within a few milliseconds of each other.
    const web = '10.96.0.10:80';
    const dnsTcp = '10.96.0.53:53';
    const faults = [
      `ipvsadm -D -t ${web}`,
      `ipvsadm -a -t ${dnsTcp} -r 10.201.2.99:53 -m -w 1`,
      `ipvsadm -e -t ${topology().nodeAddress}:30080 -r 10.201.0.2:8080 -m -w 7`,
      'ip addr del 10.96.0.53/32 dev kube-ipvs0',
      'ipset del KUBE-CLUSTER-IP 10.96.0.10,tcp:80',
    ];
    node('sh', '-ec', faults.join('\n'));
    const faultsMadeAt = Date.now();
    const broken = state();
    expect(broken).not.toContain(`-A -t ${web}`);
    expect(broken).toContain('10.201.2.99:53');
    expect(broken).toContain('-w 7');
    expect(broken).not.toContain('10.96.0.53/32');
    expect(broken).not.toContain('10.96.0.10,tcp:80');

    // The bound: the next full sync starts at most one period after the last one started (which
    // was before the faults), and repairs everything in that one sync, whose duration the agent
    // logs. The check itself costs one look at the kernel (three tool runs), measured here.
    let lookMs = 0;
    await waitFor('repaired', () => {
      const started = Date.now();
      const now = state();
      lookMs = Math.max(lookMs, Date.now() - started);
      return now === converged;
    });
    const repairedAfter = Date.now() - faultsMadeAt;
    const repairs = logs
      .split('\n')
      .filter((line) => line.includes('"msg":"synced"'))
      .map((line) => JSON.parse(line) as { time: string; ms: number; operations: number; full?: boolean })
      .filter((sync) => Date.parse(sync.time) >= faultsMadeAt);
    // Usually one sync repairs all five; a full sync that started while the faults were being
    // made repairs some and the next the rest, which the bound covers (it starts a period after).
    expect(repairs.length).toBeGreaterThanOrEqual(1);
    expect(repairs.every((sync) => sync.full === true)).toBe(true);
    expect(repairs.reduce((sum, sync) => sum + sync.operations, 0)).toBeGreaterThanOrEqual(5);
    const syncMs = defined(repairs.at(-1), 'a repairing sync').ms;
    const bound = periodMs + syncMs + lookMs;
    console.log(
      `drift of five kinds repaired after ${repairedAfter} ms by ${repairs.length} sync(s) (bound ${bound} ms: period ${periodMs} + sync ${syncMs} + one look ${lookMs})`,
    );
    expect(repairedAfter).toBeLessThanOrEqual(bound);
  }, 600_000);
});
