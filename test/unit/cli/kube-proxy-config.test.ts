// Reading kube-proxy's KubeProxyConfiguration. The fixtures are real: the kube-proxy ConfigMap that
// kubeadm 1.29 wrote on a cluster (`kubectl -n kube-system get cm kube-proxy -o yaml`), and kube-proxy's
// own fully defaulted v1alpha1 object (pkg/proxy/apis/config/scheme/testdata/KubeProxyConfiguration/
// roundtrip/default/v1alpha1.yaml); both with mode changed to ipvs, as an operator switching would.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { KubeProxyConfigError, loadKubeProxyConfiguration, parseKubeProxyConfiguration } from '../../../src/cli/kube-proxy-config.js';
import { explicitFlags, mergeWithFlags } from '../../../src/cli/kube-proxy-flags.js';
import { parseGoDuration } from '../../../src/util/duration.js';
import { agentCommand, type AgentOptions } from '../../../src/cli/agent.js';
import { defined } from '../../support/defined.js';

const KUBEADM_CONFIGMAP = `apiVersion: v1
data:
  config.conf: |-
    apiVersion: kubeproxy.config.k8s.io/v1alpha1
    bindAddress: 0.0.0.0
    bindAddressHardFail: false
    clientConnection:
      acceptContentTypes: ""
      burst: 0
      contentType: ""
      kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
      qps: 0
    clusterCIDR: 10.244.0.0/16
    configSyncPeriod: 0s
    conntrack:
      maxPerCore: null
      min: null
      tcpBeLiberal: false
      tcpCloseWaitTimeout: null
      tcpEstablishedTimeout: null
      udpStreamTimeout: 0s
      udpTimeout: 0s
    detectLocal:
      bridgeInterface: ""
      interfaceNamePrefix: ""
    detectLocalMode: ""
    enableProfiling: false
    healthzBindAddress: ""
    hostnameOverride: ""
    iptables:
      localhostNodePorts: null
      masqueradeAll: false
      masqueradeBit: null
      minSyncPeriod: 0s
      syncPeriod: 0s
    ipvs:
      excludeCIDRs: null
      minSyncPeriod: 0s
      scheduler: ""
      strictARP: false
      syncPeriod: 0s
      tcpFinTimeout: 0s
      tcpTimeout: 0s
      udpTimeout: 0s
    kind: KubeProxyConfiguration
    logging:
      flushFrequency: 0
      options:
        json:
          infoBufferSize: "0"
      verbosity: 0
    metricsBindAddress: ""
    mode: "ipvs"
    nftables:
      masqueradeAll: false
      masqueradeBit: null
      minSyncPeriod: 0s
      syncPeriod: 0s
    nodePortAddresses: null
    oomScoreAdj: null
    portRange: ""
    showHiddenMetricsForVersion: ""
    winkernel:
      enableDSR: false
      forwardHealthCheckVip: false
      networkName: ""
      rootHnsEndpointName: ""
      sourceVip: ""
  kubeconfig.conf: |-
    apiVersion: v1
    kind: Config
    clusters:
    - cluster:
        certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
        server: https://controlplane:6443
      name: default
    contexts:
    - context:
        cluster: default
        namespace: default
        user: default
      name: default
    current-context: default
    users:
    - name: default
      user:
        tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token
kind: ConfigMap
metadata:
  labels:
    app: kube-proxy
  name: kube-proxy
  namespace: kube-system
`;
const KUBEADM_CONFIG = defined((parse(KUBEADM_CONFIGMAP) as { data: Record<string, string> }).data['config.conf'], 'config.conf in the ConfigMap');

const KUBE_PROXY_DEFAULTS = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
bindAddress: 0.0.0.0
bindAddressHardFail: false
clientConnection:
  acceptContentTypes: ""
  burst: 10
  contentType: application/vnd.kubernetes.protobuf
  kubeconfig: ""
  qps: 5
clusterCIDR: ""
configSyncPeriod: 15m0s
conntrack:
  maxPerCore: 32768
  min: 131072
  tcpCloseWaitTimeout: 1h0m0s
  tcpEstablishedTimeout: 24h0m0s
detectLocal:
  bridgeInterface: ""
  interfaceNamePrefix: ""
detectLocalMode: ""
enableProfiling: false
healthzBindAddress: 0.0.0.0:10256
hostnameOverride: ""
iptables:
  localhostNodePorts: true
  masqueradeAll: false
  masqueradeBit: 14
  minSyncPeriod: 1s
  syncPeriod: 30s
ipvs:
  excludeCIDRs: null
  minSyncPeriod: 0s
  scheduler: ""
  strictARP: false
  syncPeriod: 30s
  tcpFinTimeout: 0s
  tcpTimeout: 0s
  udpTimeout: 0s
kind: KubeProxyConfiguration
metricsBindAddress: 127.0.0.1:10249
mode: ipvs
nodePortAddresses: null
oomScoreAdj: -999
portRange: ""
showHiddenMetricsForVersion: ""
winkernel:
  enableDSR: false
  forwardHealthCheckVip: false
  networkName: ""
  rootHnsEndpointName: ""
  sourceVip: ""
`;

const HEADER = 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\n';

function problemsOf(text: string): readonly string[] {
  try {
    parseKubeProxyConfiguration(text, 'config.conf');
  } catch (error) {
    expect(error).toBeInstanceOf(KubeProxyConfigError);
    expect((error as KubeProxyConfigError).code).toBe('KIPVS_CONFIG');
    return (error as KubeProxyConfigError).problems;
  }
  throw new Error('expected the configuration to be refused');
}

const OOM_WARNING = 'ignored: oomScoreAdj (kipvs does not change its OOM score (kube-proxy sets -999 when null); the kubelet sets it from the pod QoS class)';

describe('parseKubeProxyConfiguration', () => {
  it("reads kubeadm's kube-proxy ConfigMap unchanged but for mode: ipvs", () => {
    const { options, warnings } = parseKubeProxyConfiguration(KUBEADM_CONFIG, 'config.conf');
    expect(options).toEqual({
      kubeconfig: '/var/lib/kube-proxy/kubeconfig.conf',
      clusterCidr: ['10.244.0.0/16'],
      healthzBindAddress: '0.0.0.0:10256',
      metricsBindAddress: '127.0.0.1:10249',
      masqueradeAll: false,
      ipvsMinSyncPeriod: 0,
      ipvsStrictArp: false,
      ipvsTcpTimeout: 0,
      ipvsTcpfinTimeout: 0,
      ipvsUdpTimeout: 0,
      bindAddress: '0.0.0.0',
      conntrackTcpBeLiberal: false,
      conntrackUdpTimeout: 0,
      conntrackUdpTimeoutStream: 0,
      v: 0,
    });
    // kube-proxy fills the conntrack nulls with its defaults, which are the agent's flag defaults.
    expect(warnings).toEqual([OOM_WARNING]);
  });

  it("reads kube-proxy's fully defaulted object, taking the ipvs sync periods and iptables masquerade bit", () => {
    const { options, warnings } = parseKubeProxyConfiguration(KUBE_PROXY_DEFAULTS, 'defaults.yaml');
    expect(options).toMatchObject({ ipvsSyncPeriod: 30_000, ipvsMinSyncPeriod: 0, iptablesMasqueradeBit: 14, healthzBindAddress: '0.0.0.0:10256' });
    expect(options.scheduler).toBeUndefined(); // "" is kube-proxy's "rr": the agent's default applies
    expect(options.kubeconfig).toBeUndefined();
    expect(options).toMatchObject({
      conntrackMaxPerCore: 32768,
      conntrackMin: 131072,
      conntrackTcpTimeoutEstablished: 86_400_000,
      conntrackTcpTimeoutCloseWait: 3_600_000,
    });
    // qps 5, burst 10, protobuf, configSyncPeriod 15m, iptables.syncPeriod 30s... are kube-proxy's defaults: nothing to say.
    expect(warnings).toEqual([OOM_WARNING]);
  });

  it('reads the same configuration written as JSON', () => {
    const json = JSON.stringify(parse(KUBEADM_CONFIG));
    expect(parseKubeProxyConfiguration(json, 'config.json')).toEqual(parseKubeProxyConfiguration(KUBEADM_CONFIG, 'config.conf'));
  });

  it('maps every ipvs field, turning Go durations into milliseconds', () => {
    const { options, warnings } = parseKubeProxyConfiguration(
      `${HEADER}hostnameOverride: " Node-1 "
clusterCIDR: 10.244.0.0/16,fd00:10:244::/56
nodePortAddresses: [192.168.0.0/16, "2001:db8::/64"]
iptables: {masqueradeAll: true, masqueradeBit: 13}
ipvs:
  scheduler: wrr
  syncPeriod: 1m0s
  minSyncPeriod: 500ms
  excludeCIDRs: [10.0.0.0/24]
  strictARP: true
  tcpTimeout: 1h0m0s
  tcpFinTimeout: 1.5s
  udpTimeout: 30s
`,
      'config.conf',
    );
    expect(options).toEqual({
      hostnameOverride: 'node-1',
      clusterCidr: ['10.244.0.0/16', 'fd00:10:244::/56'],
      nodeportAddresses: ['192.168.0.0/16', '2001:db8::/64'],
      healthzBindAddress: '0.0.0.0:10256',
      metricsBindAddress: '127.0.0.1:10249',
      masqueradeAll: true,
      iptablesMasqueradeBit: 13,
      scheduler: 'wrr',
      ipvsSyncPeriod: 60_000,
      ipvsMinSyncPeriod: 500,
      ipvsExcludeCidrs: ['10.0.0.0/24'],
      ipvsStrictArp: true,
      ipvsTcpTimeout: 3_600_000,
      // kube-proxy hands IPVS whole seconds: 1.5s becomes 1s.
      ipvsTcpfinTimeout: 1_000,
      ipvsUdpTimeout: 30_000,
    });
    expect(warnings).toEqual([]);
  });

  it.each([
    ['1m0s', 60_000],
    ['1h0m0s', 3_600_000],
    ['0s', 0],
    ['0', 0],
    ['500ms', 500],
    ['1.5s', 1_500],
    ['.5s', 500],
    ['2h22m', 8_520_000],
    ['1500us', 1.5],
    ['-2s', -2_000],
  ])('parses the Go duration %s', (text, ms) => {
    expect(parseGoDuration(text)).toBe(ms);
  });

  it.each(['30', '', 's', '.s', '1x', '1s 2m', '1d'])('refuses %j as a duration', (text) => {
    expect(() => parseGoDuration(text)).toThrow(/is not a duration/);
  });

  it('names an unknown field and the nearest known one', () => {
    expect(problemsOf(`${HEADER}ipvs:\n  schedular: rr\n`)).toEqual(['unknown field ipvs.schedular (did you mean ipvs.scheduler?)']);
    // Matching is case-sensitive, as kube-proxy's strict decoding: old kubeadm wrote ExcludeCIDRs.
    expect(problemsOf(`${HEADER}ipvs:\n  ExcludeCIDRs: null\n`)).toEqual(['unknown field ipvs.ExcludeCIDRs (did you mean ipvs.excludeCIDRs?)']);
    // A field in the wrong section, and the internal config's layout, point to where v1alpha1 has it.
    expect(problemsOf(`${HEADER}syncPeriod: 30s\nlinux:\n  masqueradeAll: true\n  conntrack: {}\n`)).toEqual([
      'unknown field syncPeriod (did you mean ipvs.syncPeriod?)',
      'unknown field linux.masqueradeAll (did you mean iptables.masqueradeAll?)',
      'unknown field linux.conntrack (did you mean conntrack?)',
    ]);
    expect(problemsOf(`${HEADER}frobnicate: 1\n`)).toEqual(['unknown field frobnicate']);
  });

  it('reports every problem at once, in one error', () => {
    const text = `apiVersion: kubeproxy.config.k8s.io/v1beta1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: 10.244.0.0/33
healthzBindAddress: 0.0.0.0:99999
ipvs:
  scheduler: rrr
  syncPeriod: 10s
  minSyncPeriod: 1m
  tcpTimeout: 30
  excludeCIDRs: [10.0.0.0/8, not-a-cidr]
  strictARP: "true"
iptables:
  masqueradeBit: 32
detectLocalMode: NodeIP
nodePortAddresses: [primary, 10.0.0.0/8]
`;
    const problems = problemsOf(text);
    expect(problems).toEqual([
      'ipvs.tcpTimeout: must be a duration string like "30s", not number 30',
      'ipvs.strictARP: must be true or false, not string "true"',
      'apiVersion: "kubeproxy.config.k8s.io/v1beta1" is not kubeproxy.config.k8s.io/v1alpha1, the only version kube-proxy reads',
      "mode: \"iptables\" is kube-proxy's iptables mode; kipvs implements only kube-proxy's ipvs mode and does not remove another mode's rules: run kube-proxy --cleanup on the node, then set mode: ipvs",
      'healthzBindAddress: port 99999 must be 1-65535',
      'clusterCIDR[0]: "10.244.0.0/33" must be a CIDR (like 10.0.0.0/8)',
      'detectLocalMode: unknown mode "NodeIP" (ClusterCIDR, NodeCIDR, BridgeInterface or InterfaceNamePrefix)',
      'nodePortAddresses[0]: "primary" cannot be combined with other entries',
      'iptables.masqueradeBit: 32 must be within [0, 31]',
      'ipvs.minSyncPeriod: 60s must not exceed ipvs.syncPeriod (10s)',
      'ipvs.scheduler: unknown IPVS scheduler "rrr" (did you mean rr?); one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos',
      'ipvs.excludeCIDRs[1]: "not-a-cidr" must be a CIDR (like 10.0.0.0/8)',
    ]);
    let message = '';
    try {
      parseKubeProxyConfiguration(text, '/var/lib/kipvs/config.conf');
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message.startsWith('/var/lib/kipvs/config.conf: invalid KubeProxyConfiguration: ipvs.tcpTimeout')).toBe(true);
    expect(message).not.toContain('\n');
    for (const problem of problems) expect(message).toContain(problem);
  });

  it.each([
    ['""', /mode: "" means iptables to kube-proxy on Linux; .*kube-proxy --cleanup/],
    ['nftables', /mode: "nftables" is kube-proxy's nftables mode; .*kube-proxy --cleanup/],
    ['kernelspace', /mode: unknown proxy mode "kernelspace"/],
  ])('refuses mode %s, which is not the mode kipvs replaces', (mode, expected) => {
    const problems = problemsOf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ${mode}\n`);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(expected);
  });

  it('requires apiVersion and kind', () => {
    expect(problemsOf('mode: ipvs\n')).toEqual(['apiVersion: missing (want kubeproxy.config.k8s.io/v1alpha1)', 'kind: missing (want KubeProxyConfiguration)']);
    expect(problemsOf('apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeletConfiguration\nmode: ipvs\n')).toEqual([
      'kind: "KubeletConfiguration" is not KubeProxyConfiguration',
    ]);
  });

  it('completes bind addresses as kube-proxy does, in the family of bindAddress', () => {
    expect(parseKubeProxyConfiguration(`${HEADER}healthzBindAddress: 10.0.0.5\nmetricsBindAddress: 0.0.0.0:9100\n`, 'c').options).toMatchObject({
      healthzBindAddress: '10.0.0.5:10256',
      metricsBindAddress: '0.0.0.0:9100',
    });
    expect(parseKubeProxyConfiguration(`${HEADER}bindAddress: "::"\n`, 'c').options).toMatchObject({
      healthzBindAddress: '[::]:10256',
      metricsBindAddress: '[::1]:10249',
    });
    expect(parseKubeProxyConfiguration(`${HEADER}healthzBindAddress: "[fd00::1]:8080"\n`, 'c').options.healthzBindAddress).toBe('[fd00::1]:8080');
    expect(problemsOf(`${HEADER}metricsBindAddress: localhost:10249\n`)).toEqual(['metricsBindAddress: "localhost" must be a valid IP']);
  });

  it('expands the nodePortAddresses keywords all and localhost', () => {
    expect(parseKubeProxyConfiguration(`${HEADER}nodePortAddresses: [all]\n`, 'c').options.nodeportAddresses).toEqual(['0.0.0.0/0', '::/0']);
    const { options, warnings } = parseKubeProxyConfiguration(`${HEADER}nodePortAddresses: [localhost, 10.0.0.0/8]\n`, 'c');
    expect(options.nodeportAddresses).toEqual(['127.0.0.0/8', '::1/128', '10.0.0.0/8']);
    expect(warnings).toEqual(['nodePortAddresses[0]: "localhost" selects no address: like kube-proxy\'s ipvs mode, kipvs never serves NodePorts on loopback']);
  });

  it('warns once per reason about values kube-proxy would act on and kipvs ignores', () => {
    const { warnings } = parseKubeProxyConfiguration(
      `${HEADER}featureGates: {Foo: true, Bar: false}
conntrack: {maxPerCore: 0, min: 131072, tcpBeLiberal: true, udpTimeout: 0s}
clientConnection: {qps: 50, burst: 10}
logging: {verbosity: 4}
enableProfiling: true
nftables: {masqueradeAll: true, syncPeriod: 5s}
iptables: {syncPeriod: 5s, localhostNodePorts: false}
winkernel: {networkName: l2bridge}
udpIdleTimeout: 250ms
resourceContainer: /kube-proxy
`,
      'c',
    );
    expect(warnings).toEqual([
      'ignored: featureGates.Foo, featureGates.Bar (kipvs has no feature gates)',
      "ignored: clientConnection.qps (kipvs's Kubernetes client has no client-side rate limit and speaks JSON)",
      'ignored: enableProfiling (kipvs serves no /debug/pprof and hides no metrics)',
      'ignored: nftables.masqueradeAll (kube-proxy reads it only in nftables mode; in ipvs mode the field is iptables.masqueradeAll)',
      'ignored: iptables.syncPeriod, nftables.syncPeriod, winkernel.networkName (kube-proxy reads it only in another proxy mode or on Windows; in ipvs mode it does not apply)',
      'ignored: udpIdleTimeout (removed from kube-proxy with the userspace mode)',
      'ignored: resourceContainer (removed from kube-proxy in 1.16)',
    ]);
  });

  it('acts on the conntrack fields, logging verbosity, detect-local modes and nodePortAddresses primary', () => {
    const { options, warnings } = parseKubeProxyConfiguration(
      `${HEADER}conntrack: {maxPerCore: 0, min: 131072, tcpBeLiberal: true, udpTimeout: 30s, udpStreamTimeout: 2m0s, tcpEstablishedTimeout: 1h0m0s, tcpCloseWaitTimeout: 0s}
logging: {verbosity: 4, format: json}
detectLocalMode: InterfaceNamePrefix
detectLocal: {interfaceNamePrefix: veth}
nodePortAddresses: [primary]
bindAddress: 192.0.2.7
`,
      'c',
    );
    expect(options).toMatchObject({
      conntrackMaxPerCore: 0,
      conntrackMin: 131072,
      conntrackTcpBeLiberal: true,
      conntrackUdpTimeout: 30_000,
      conntrackUdpTimeoutStream: 120_000,
      conntrackTcpTimeoutEstablished: 3_600_000,
      conntrackTcpTimeoutCloseWait: 0,
      v: 4,
      loggingFormat: 'json',
      detectLocalMode: 'InterfaceNamePrefix',
      podInterfaceNamePrefix: 'veth',
      nodeportAddresses: ['primary'],
      bindAddress: '192.0.2.7',
    });
    expect(warnings).toEqual([]);
    expect(parseKubeProxyConfiguration(`${HEADER}detectLocalMode: NodeCIDR\n`, 'c').options.detectLocalMode).toBe('NodeCIDR');
    expect(problemsOf(`${HEADER}detectLocalMode: BridgeInterface\n`)).toEqual([
      'detectLocal.bridgeInterface: must not be empty with detectLocalMode BridgeInterface',
    ]);
    expect(parseKubeProxyConfiguration(`${HEADER}logging: {format: text}\n`, 'c').warnings).toEqual([
      'ignored: logging.format text (kipvs always logs JSON lines)',
    ]);
  });

  it('reads YAML 1.1 booleans as kube-proxy (sigs.k8s.io/yaml) does, and refuses duplicate keys', () => {
    expect(parseKubeProxyConfiguration(`${HEADER}ipvs: {strictARP: yes}\n`, 'c').options.ipvsStrictArp).toBe(true);
    expect(problemsOf(`${HEADER}ipvs:\n  scheduler: rr\n  scheduler: wrr\n`)).toEqual(['not YAML or JSON: Map keys must be unique']);
  });
});

describe('loadKubeProxyConfiguration', () => {
  it('reads the file, and names it when it cannot', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kipvs-config-'));
    writeFileSync(join(dir, 'config.conf'), KUBEADM_CONFIG);
    expect(loadKubeProxyConfiguration(join(dir, 'config.conf')).options.clusterCidr).toEqual(['10.244.0.0/16']);
    expect(() => loadKubeProxyConfiguration(join(dir, 'missing.conf'))).toThrow(
      `${join(dir, 'missing.conf')}: invalid KubeProxyConfiguration: cannot read: ENOENT`,
    );
  });
});

describe('mergeWithFlags', () => {
  async function agentFlags(argv: string[]): Promise<{ options: AgentOptions; command: Command }> {
    const command = agentCommand();
    let options: AgentOptions | undefined;
    command.action((parsed: AgentOptions) => {
      options = parsed;
    });
    await command.parseAsync(argv, { from: 'user' });
    return { options: defined(options, 'the options the action was called with'), command };
  }

  it('lets flags given on the command line win over the file, and the file win over flag defaults', async () => {
    const file = parseKubeProxyConfiguration(
      `${HEADER}hostnameOverride: from-file\nipvs: {scheduler: lc, syncPeriod: 1m0s, strictARP: true}\niptables: {masqueradeAll: true}\n`,
      'c',
    ).options;
    const { options, command } = await agentFlags(['--scheduler', 'wrr', '--hostname-override', 'node-7']);
    const merged = mergeWithFlags<AgentOptions>(file, options, explicitFlags(command));
    expect(merged.scheduler).toBe('wrr');
    expect(merged.hostnameOverride).toBe('node-7');
    expect(merged.ipvsSyncPeriod).toBe(60_000);
    expect(merged.ipvsStrictArp).toBe(true);
    expect(merged.masqueradeAll).toBe(true);
    // What the file leaves out keeps the flag's default.
    expect(merged.ipvsMinSyncPeriod).toBe(options.ipvsMinSyncPeriod);
    expect(merged.gracefulTerminationTimeout).toBe(900_000);
  });

  it('counts a value from an environment variable as explicit, and a default as not', () => {
    const command = new Command().addOption(new Option('--scheduler <name>').default('rr').env('KIPVS_TEST_SCHEDULER'));
    command.parse([], { from: 'user' });
    expect(explicitFlags(command)('scheduler')).toBe(false);
    process.env.KIPVS_TEST_SCHEDULER = 'sh';
    try {
      const fromEnv = new Command().addOption(new Option('--scheduler <name>').default('rr').env('KIPVS_TEST_SCHEDULER'));
      fromEnv.parse([], { from: 'user' });
      expect(mergeWithFlags({ scheduler: 'lc' }, fromEnv.opts<{ scheduler: string }>(), explicitFlags(fromEnv))).toEqual({ scheduler: 'sh' });
    } finally {
      delete process.env.KIPVS_TEST_SCHEDULER;
    }
  });
});
