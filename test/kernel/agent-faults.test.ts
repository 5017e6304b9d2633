// Faults in the kernel and in /run/kipvs, as an operator trying to break the agent makes them
// (issue 11): a kube-proxy set of the wrong type, a corrupt or unwritable state file, drift of
// several kinds at once, and a new node, where the iptables rules must come before the first
// virtual server. Each is met by the built CLI in a node namespace of its own.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KIPVS_CLI, type AgentLogLine, type AgentProcess } from './helpers/agent-process.js';
import { Teardown } from './helpers/teardown.js';
import type { Topology } from './helpers/topology.js';
import { defined } from '../support/defined.js';

const root = join(import.meta.dirname, '..', '..');

/** The fields of the agent's `synced` log line. */
interface SyncedLine {
  readonly time: number;
  readonly ms: number;
  readonly operations: number;
  readonly failed: number;
  readonly full: boolean;
}

const syncedOf = (line: AgentLogLine): SyncedLine | undefined => {
  const fields = line.fields;
  if (line.msg !== 'synced' || !fields) return undefined;
  return {
    time: Date.parse(String(fields.time)),
    ms: Number(fields.ms),
    operations: Number(fields.operations),
    failed: Number(fields.failed),
    full: fields.full === true,
  };
};

describe('kipvs under kernel and state-file faults', () => {
  let topology: Topology;
  let sourceDir: string;
  let agent: AgentProcess | undefined;
  const teardown = new Teardown();

  const run = (...args: string[]): SpawnSyncReturns<string> => spawnSync(process.execPath, [KIPVS_CLI, ...args], { encoding: 'utf8' });
  const agentOnce = (): ReturnType<typeof run> => run('agent', '--once', '--source', sourceDir, '--netns', topology.node.name, '--hostname-override', 'node-a');
  /** The agent as a daemon, without its HTTP servers (each case has a node of its own, not a port). */
  const startDaemon = (...extra: string[]): AgentProcess =>
    (agent = teardown.startAgent(topology.node, ['--source', sourceDir, '--healthz-bind-address', '', '--metrics-bind-address', '', ...extra]));
  const node = (command: string, ...args: string[]): string => topology.node.run(command, args);
  const tryNode = (command: string, ...args: string[]): string => {
    try {
      return node(command, ...args);
    } catch {
      return '';
    }
  };
  const stateFile = (): string =>
    `/run/kipvs/owned-virtual-servers-${createHash('sha256').update(`/run/netns/${topology.node.name}`).digest('hex').slice(0, 12)}.json`;

  beforeAll(() => {
    // Pods without servers: these cases look at the kernel's objects, not at traffic (the traffic
    // tests are agent-traffic's).
    topology = teardown.createTopology(3, { kipvsCleanup: true });
    sourceDir = teardown.makeTempDir('kipvs-source-');
    cpSync(join(root, 'examples'), sourceDir, { recursive: true });
  });
  afterEach(async () => {
    // Each case starts from a node without kipvs.
    await agent?.stop('SIGKILL');
    agent = undefined;
    run('cleanup', '--netns', topology.node.name);
    rmSync(stateFile(), { recursive: true, force: true });
  });
  afterAll(() => teardown.run());

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
    const inspect = run('inspect', '--ipsets', '--netns', topology.node.name);
    expect(inspect.stderr).toBe('');
    expect(inspect.status).toBe(0);
    expect(inspect.stdout).toMatch(/Name: KUBE-6-CLUSTER-IP\nType: hash:mac\nRevision: \d+\nHeader: \(not decoded by kipvs/);
    expect(inspect.stdout).toMatch(/Name: TOOL-LIST\nType: list:set\n/);
    expect(inspect.stdout).toMatch(/Name: KUBE-CLUSTER-IP\nType: hash:ip,port\n/);

    const cleanup = run('cleanup', '--netns', topology.node.name);
    expect(cleanup.stderr).toBe('');
    expect(cleanup.status).toBe(0);
    expect(node('ipset', 'list', '-n').trim().split('\n')).toEqual(['TOOL-LIST']);
    expect(node('ipvsadm', '-Sn')).toBe('');
    node('ipset', 'destroy', 'TOOL-LIST');
  });

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
  });

  it('has the masquerade and filter rules in place before the first virtual server exists', async () => {
    const daemon = startDaemon();
    // Each look reads the IPVS table first and the rules after: a table with a virtual server and
    // no rules would be a moment the first connections went out unmasqueraded. The scheduler probe
    // (198.51.100.0:20000, TEST-NET-2, no real servers, removed at once: kube-proxy's
    // CanUseIPVSProxier) comes before the rules, as kube-proxy's does, and can carry no connection.
    const withoutProbe = (table: string): string =>
      table
        .split('\n')
        .filter((line) => line !== '' && !line.includes('198.51.100.0:20000'))
        .join('\n');
    const looks: Array<{ ipvs: string; rules: string }> = [];
    await daemon.waitFor(
      'first virtual server',
      () => {
        const look = { ipvs: withoutProbe(tryNode('ipvsadm', '-Sn')), rules: tryNode('iptables-legacy-save') };
        looks.push(look);
        return look.ipvs.includes('10.96.0.10:80');
      },
      undefined,
      50,
    );
    for (const look of looks.filter((l) => l.ipvs !== '')) {
      expect(look.rules).toMatch(/-A KUBE-POSTROUTING .*-j MASQUERADE/);
      expect(look.rules).toMatch(/-A KUBE-SERVICES .*--match-set KUBE-CLUSTER-IP dst,dst/);
      expect(look.rules).toMatch(/-A INPUT .*-j KUBE-IPVS-FILTER/);
      expect(look.rules).toMatch(/-A KUBE-IPVS-FILTER .*--match-set KUBE-IPVS-IPS dst -j REJECT/);
    }
    // And in the agent's own order: the rules are written before the first sync's report.
    await daemon.waitForLog('first sync logged', (line) => line.msg === 'synced');
    const rulesWritten = daemon.lines.findIndex((line) => line.msg === 'iptables rules written');
    expect(rulesWritten, daemon.log()).toBeGreaterThan(-1);
    expect(rulesWritten, daemon.log()).toBeLessThan(daemon.lines.findIndex((line) => line.msg === 'synced'));
  });

  it('repairs several kinds of drift at once within one sync period plus one sync', async () => {
    const periodMs = 5000;
    const daemon = startDaemon('--ipvs-sync-period', '5s');
    /** What the faults touch, as the C tools print it, in one shell: one look at the kernel. */
    const readState = 'ipvsadm -Sn; ipset list KUBE-CLUSTER-IP; ip -o addr show dev kube-ipvs0';
    const normalized = (text: string): string =>
      text
        .split('\n')
        .filter((line) => line !== '' && !line.startsWith('Size in memory'))
        // Re-added objects may come back in another order; what matters is that they are there.
        .map((line) => line.replace(/^\d+: /, ''))
        .sort()
        .join('\n');
    const state = (): string => normalized(node('sh', '-c', `${readState} 2>/dev/null; true`));
    const syncsSince = (index: number): SyncedLine[] => daemon.lines.slice(index).flatMap((line) => syncedOf(line) ?? []);

    await daemon.waitForLog('first sync', (line) => line.msg === 'synced');
    const converged = state();
    expect(converged).toContain('-a -t 10.96.0.10:80 -r 10.201.2.2:8080');
    expect(converged).toContain('10.96.0.10/32');
    expect(converged).toContain('10.96.0.10,tcp:80');

    // A full sync that does nothing logs nothing: a marker fault makes the next one say when it
    // ran. The one after it starts a period after that one started, so faults made (and read back)
    // right after its line cannot race a repair: the precondition below holds by construction.
    const beforeMarker = daemon.lines.length;
    node('ipset', 'del', 'KUBE-CLUSTER-IP', '10.96.0.53,udp:53');
    await daemon.waitFor('marker repaired by a full sync', () => syncsSince(beforeMarker).length > 0, 3 * periodMs, 10);
    const marker = defined(syncsSince(beforeMarker)[0], 'the sync that repaired the marker');
    expect(marker.full).toBe(true);
    const markerStarted = marker.time - marker.ms;
    const afterMarker = daemon.lines.length;

    // All five faults, then the look at the broken kernel, in one shell: they land within a few
    // milliseconds of each other, and the shell says when (the agent and this test share the clock).
    const web = '10.96.0.10:80';
    const dnsTcp = '10.96.0.53:53';
    const faults = [
      `ipvsadm -D -t ${web}`,
      `ipvsadm -a -t ${dnsTcp} -r 10.201.2.99:53 -m -w 1`,
      `ipvsadm -e -t ${topology.nodeAddress}:30080 -r 10.201.0.2:8080 -m -w 7`,
      'ip addr del 10.96.0.53/32 dev kube-ipvs0',
      'ipset del KUBE-CLUSTER-IP 10.96.0.10,tcp:80',
    ];
    const script = ['set -e', ...faults, 'echo "faults-made-at $(date +%s%3N)"', 'set +e', `${readState} 2>/dev/null`, 'echo "read-at $(date +%s%3N)"'];
    const output = node('sh', '-c', script.join('\n'));
    const stamp = (name: string): number => Number(defined(new RegExp(`^${name} (\\d+)$`, 'm').exec(output)?.[1], `${name} in the shell's output`));
    const faultsMadeAt = stamp('faults-made-at');
    const readAt = stamp('read-at');
    const broken = normalized(output.replace(/^(faults-made-at|read-at) \d+$/gm, ''));
    // The next full sync is due a period after the marker's started; the look must be done by then.
    expect(readAt, `faults read back at ${readAt}, after the next full sync was due (${markerStarted + periodMs})`).toBeLessThan(markerStarted + periodMs);
    expect(broken).not.toContain(`-A -t ${web}`);
    expect(broken).toContain('10.201.2.99:53');
    expect(broken).toContain('-w 7');
    expect(broken).not.toContain('10.96.0.53/32');
    expect(broken).not.toContain('10.96.0.10,tcp:80');

    // The bound: the next full sync starts at most one period after the last one started (which
    // was before the faults), and repairs everything in that one sync, whose duration the agent
    // logs. The test sees it at its next look at the kernel, whose cost is measured here.
    let lookMs = 0;
    await daemon.waitFor(
      'repaired',
      () => {
        const started = Date.now();
        const now = state();
        lookMs = Math.max(lookMs, Date.now() - started);
        return now === converged;
      },
      6 * periodMs,
      20,
    );
    const seenAfter = Date.now() - faultsMadeAt;
    // Its log line may come a moment after the kernel shows the repair.
    await daemon.waitFor('repairing sync logged', () => syncsSince(afterMarker).length > 0, periodMs);
    const repair = defined(syncsSince(afterMarker)[0], 'the repairing sync');
    const repairedAfter = repair.time - faultsMadeAt;
    console.log(
      `drift of five kinds repaired ${repairedAfter} ms after it was made (bound: period ${periodMs} + sync ${repair.ms} ms), ` +
        `by one full sync of ${repair.operations} operations that started ${repair.time - repair.ms - faultsMadeAt} ms after it, ` +
        `a period after the previous full sync started (${faultsMadeAt - markerStarted} ms before the faults); ` +
        `seen by the test after ${seenAfter} ms (bound ${periodMs + repair.ms + lookMs}: one more look at the kernel, ${lookMs} ms)`,
    );
    // The faults all landed before that sync read the kernel: it alone repairs all five.
    expect(repair).toMatchObject({ full: true, failed: 0 });
    expect(repair.operations).toBeGreaterThanOrEqual(5);
    expect(repairedAfter).toBeLessThanOrEqual(periodMs + repair.ms);
    expect(seenAfter).toBeLessThanOrEqual(periodMs + repair.ms + lookMs);
  });
});
