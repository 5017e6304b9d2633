// kube-proxy's command line as a DaemonSet carries it starts kipvs: every flag is acted on or warned.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { agentCommand, type AgentOptions } from '../../../src/cli/agent.js';
import { configFieldTable } from '../../../src/cli/kube-proxy-config.js';
import { explicitFlags, KUBE_PROXY_FLAGS, logLevelOf, resolveKubeProxyFlags } from '../../../src/cli/kube-proxy-flags.js';
import { conntrackMax, conntrackSysctls, DEFAULT_CONNTRACK } from '../../../src/kernel/sysctl.js';

async function parseAgent(argv: string[]): Promise<{ options: AgentOptions; command: Command }> {
  const command = agentCommand().exitOverride();
  let options: AgentOptions | undefined;
  command.action((parsed: AgentOptions) => {
    options = parsed;
  });
  await command.parseAsync(argv, { from: 'user' });
  if (options === undefined) throw new Error('not parsed');
  return { options, command };
}

async function resolved(argv: string[]): Promise<{ options: AgentOptions; warnings: string[] }> {
  const { options, command } = await parseAgent(argv);
  return resolveKubeProxyFlags(options, explicitFlags(command));
}

describe("kube-proxy's flags", () => {
  it("starts with a kube-proxy IPVS DaemonSet's command line, acting on what applies and warning once for the rest", async () => {
    const { options, warnings } = await resolved([
      '--v=2',
      '--proxy-mode=ipvs',
      '--ipvs-scheduler=wrr',
      '--conntrack-max-per-core=0',
      '--conntrack-min=0',
      '--kube-api-qps=20',
      '--master=https://10.0.0.1:6443',
      '--masquerade-all=true',
      '--detect-local-mode=NodeCIDR',
      '--nodeport-addresses=primary',
      '--iptables-sync-period=30s',
      '--ipvs-strict-arp',
      '--conntrack-tcp-be-liberal=true',
      '--conntrack-udp-timeout=30s',
      '--bind-address=192.0.2.7',
      '--feature-gates=Foo=true',
      '--profiling=false',
    ]);
    expect(options).toMatchObject({
      v: 2,
      scheduler: 'wrr',
      conntrackMaxPerCore: 0,
      conntrackMin: 0,
      masqueradeAll: true,
      detectLocalMode: 'NodeCIDR',
      nodeportAddresses: ['primary'],
      ipvsStrictArp: true,
      conntrackTcpBeLiberal: true,
      conntrackUdpTimeout: 30_000,
      bindAddress: '192.0.2.7',
    });
    expect(warnings).toEqual([
      expect.stringMatching(/^ignored: --feature-gates \(/),
      expect.stringMatching(/^ignored: --master \(/),
      expect.stringMatching(/^ignored: --kube-api-qps \(/),
      expect.stringMatching(/^ignored: --profiling \(/),
      expect.stringMatching(/^ignored: --iptables-sync-period \(iptables mode only/),
    ]);
  });

  it('maps -v and --v onto the log level', async () => {
    expect((await resolved(['-v', '4'])).options.v).toBe(4);
    expect((await resolved(['--v=5'])).options.v).toBe(5);
    expect([0, 2, 3, 4, 5, 9].map(logLevelOf)).toEqual(['info', 'info', 'debug', 'debug', 'trace', 'trace']);
  });

  it('refuses only what kube-proxy refuses in ipvs mode: another proxy mode, a bare duration, an unknown detect-local mode', async () => {
    await expect(resolved(['--proxy-mode=iptables'])).rejects.toThrow(/implements only kube-proxy's ipvs mode/);
    await expect(parseAgent(['--ipvs-sync-period=30'])).rejects.toThrow(/is not a duration/);
    await expect(parseAgent(['--detect-local-mode=NodeIP'])).rejects.toThrow(/unknown detect-local-mode/);
    await expect(parseAgent(['--nodeport-addresses=primary,10.0.0.0/8'])).rejects.toThrow(/must be the only/);
  });

  it('turns the servers off with the deprecated --healthz-port 0 and --metrics-port 0', async () => {
    const { options } = await resolved(['--healthz-port=0', '--metrics-port', '0']);
    expect([options.healthzBindAddress, options.metricsBindAddress]).toEqual(['', '']);
  });

  it('has an agent option for every flag of the table', () => {
    const command = agentCommand();
    const long = new Set(command.options.map((option) => option.long));
    for (const flag of KUBE_PROXY_FLAGS.filter((f) => f.name !== 'help')) expect(long, flag.name).toContain(`--${flag.name}`);
  });
});

describe('conntrack settings as kube-proxy computes them', () => {
  it('sets nf_conntrack_max to max(min, maxPerCore × CPUs), 0 leaving it, and the timeouts in whole seconds when > 0', () => {
    expect(conntrackMax(DEFAULT_CONNTRACK, 2)).toBe(131072);
    expect(conntrackMax(DEFAULT_CONNTRACK, 8)).toBe(262144);
    expect(conntrackMax({ ...DEFAULT_CONNTRACK, maxPerCore: 0 }, 64)).toBe(0);
    expect(conntrackSysctls({ ...DEFAULT_CONNTRACK, tcpBeLiberal: true, udpTimeoutMs: 30_500, udpStreamTimeoutMs: 0 })).toEqual([
      { name: 'net.netfilter.nf_conntrack_tcp_timeout_established', value: '86400' },
      { name: 'net.netfilter.nf_conntrack_tcp_timeout_close_wait', value: '3600' },
      { name: 'net.netfilter.nf_conntrack_tcp_be_liberal', value: '1' },
      { name: 'net.netfilter.nf_conntrack_udp_timeout', value: '30' },
    ]);
  });
});

/** The rows of the markdown table under `heading` in docs/configuration.md: name, status, test. */
function docsTable(heading: string): { name: string; status: string; test: string }[] {
  const text = readFileSync(new URL('../../../docs/configuration.md', import.meta.url), 'utf8');
  const section = text.slice(text.indexOf(heading));
  const lines = section.split('\n').slice(1);
  const rows: { name: string; status: string; test: string }[] = [];
  for (const line of lines.slice(lines.findIndex((l) => l.startsWith('|')))) {
    if (!line.startsWith('|')) break;
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((cell) => cell.trim());
    if (cells[0] === undefined || cells[0].startsWith('-') || cells[0] === 'Flag' || cells[0] === 'Field') continue;
    rows.push({ name: cells[0].replaceAll('`', ''), status: cells[1] ?? '', test: cells[3] ?? '' });
  }
  return rows;
}

describe('docs/configuration.md', () => {
  const testExists = (reference: string): boolean => {
    const [file, name] = reference.split(': ');
    if (file === undefined || name === undefined) return false;
    return readFileSync(new URL(`../../../${file.replaceAll('`', '')}`, import.meta.url), 'utf8').includes(name.replaceAll('`', '').replace(/^"|"$/g, ''));
  };

  it('lists every kube-proxy flag with the status the code gives it, and a test that exists', () => {
    const rows = docsTable('## Command-line flags');
    expect(rows.map((row) => `${row.name} ${row.status}`)).toEqual(KUBE_PROXY_FLAGS.map((flag) => `--${flag.name} ${flag.status}`));
    for (const row of rows) expect(testExists(row.test), `${row.name}: ${row.test}`).toBe(true);
  });

  it('lists every KubeProxyConfiguration field with the status the code gives it, and a test that exists', () => {
    const rows = docsTable('## KubeProxyConfiguration fields');
    expect(rows.map((row) => `${row.name} ${row.status}`)).toEqual(configFieldTable().map((field) => `${field.path} ${field.status}`));
    expect(configFieldTable().filter((field) => field.note === 'NO ENTRY')).toEqual([]);
    for (const row of rows) expect(testExists(row.test), `${row.name}: ${row.test}`).toBe(true);
  });
});
