// `kipvs agent`: its flags. Flag names follow kube-proxy's where they mean the same thing; what it
// runs is in agent-run.ts (and agent-daemon.ts without --once).
import { Command, InvalidArgumentError, Option } from 'commander';
import {
  allIpsetNames,
  DEFAULT_HEALTHZ_BIND_ADDRESS,
  DEFAULT_METRICS_BIND_ADDRESS,
  parseCidrs,
  parseDetectLocalMode,
  parseDuration,
  parseInt32,
  parseNodePortAddresses,
  parseScheduler,
  type AgentOptions,
} from './agent-options.js';
import { boolOption, warnedFlagOptions } from './kube-proxy-flags.js';
import { DEFAULT_CONNTRACK } from '../kernel/sysctl.js';

export { allIpsetNames, parseDuration, type AgentOptions };

function parseMasqueradeBit(text: string): number {
  const bit = Number(text);
  if (!Number.isInteger(bit) || bit < 0 || bit > 31) throw new InvalidArgumentError(`"${text}" is not a bit number (0-31)`);
  return bit;
}

export function agentCommand(): Command {
  const duration = (text: string): number => parseDuration(text);
  const command = new Command('agent')
    .description("program IPVS, ipsets and addresses from Services and EndpointSlices, and keep them in sync (takes kube-proxy's flags)")
    .option('--config <path>', 'a kube-proxy configuration file (KubeProxyConfiguration, mode ipvs); flags given override it')
    .addOption(new Option('--scheduler <name>', 'IPVS scheduler (rr, lc, wrr, wlc, sh, dh, sed, nq, mh, ...)').default('rr').argParser(parseScheduler))
    .addOption(new Option('--ipvs-scheduler <name>', "kube-proxy's name for --scheduler").argParser(parseScheduler))
    .option('--source <path>', 'a YAML/JSON file or directory of Service and EndpointSlice objects (instead of the API server)')
    .option('--kubeconfig <path>', 'the API server to watch (default: the in-cluster service account)')
    .addOption(new Option('--proxy-mode <mode>', 'ipvs, the only mode kipvs implements'))
    .addOption(new Option('--healthz-bind-address <host:port>', "/healthz and /livez, as kube-proxy's (empty: off)").default(DEFAULT_HEALTHZ_BIND_ADDRESS))
    .addOption(new Option('--metrics-bind-address <host:port>', 'Prometheus /metrics (empty: off)').default(DEFAULT_METRICS_BIND_ADDRESS))
    .addOption(new Option('--healthz-port <port>', 'deprecated: 0 turns /healthz off').argParser(parseInt32).hideHelp())
    .addOption(new Option('--metrics-port <port>', 'deprecated: 0 turns /metrics off').argParser(parseInt32).hideHelp())
    .addOption(new Option('--bind-address <ip>', "overrides the Node object's primary IP").default('0.0.0.0'))
    .addOption(new Option('--iptables-masquerade-bit <bit>', 'the fwmark bit that marks packets to masquerade').default(14).argParser(parseMasqueradeBit))
    .option('--hostname-override <name>', "this node's name, for externalTrafficPolicy/internalTrafficPolicy Local")
    .addOption(
      new Option('--detect-local-mode <mode>', 'how pod traffic is told: ClusterCIDR, NodeCIDR, BridgeInterface, InterfaceNamePrefix')
        .default('ClusterCIDR')
        .argParser(parseDetectLocalMode),
    )
    .addOption(
      new Option('--cluster-cidr <cidrs>', 'pod CIDRs (detect-local-mode ClusterCIDR); traffic from outside them to a ClusterIP is masqueraded')
        .default([])
        .argParser(parseCidrs),
    )
    .option('--pod-bridge-interface <name>', "the pods' bridge (detect-local-mode BridgeInterface)", '')
    .option('--pod-interface-name-prefix <prefix>', "the pods' interface name prefix (detect-local-mode InterfaceNamePrefix)", '')
    .addOption(boolOption('--masquerade-all', 'masquerade all traffic to services'))
    .addOption(
      new Option('--nodeport-addresses <cidrs|primary>', 'node addresses NodePorts listen on: CIDRs, or primary (default: all)')
        .default([])
        .argParser(parseNodePortAddresses),
    )
    .addOption(new Option('--ipvs-sync-period <duration>', 'longest time between full syncs').default(30_000, '30s').argParser(duration))
    .addOption(new Option('--ipvs-min-sync-period <duration>', 'shortest time between syncs').default(1_000, '1s').argParser(duration))
    .addOption(boolOption('--ipvs-strict-arp', 'set arp_ignore=1 and arp_announce=2'))
    .addOption(new Option('--ipvs-exclude-cidrs <cidrs>', 'virtual servers kipvs must not touch').default([]).argParser(parseCidrs))
    .addOption(new Option('--ipvs-tcp-timeout <duration>', 'IPVS TCP idle timeout (0: leave)').default(0).argParser(duration))
    .addOption(new Option('--ipvs-tcpfin-timeout <duration>', 'IPVS TCP FIN_WAIT timeout (0: leave)').default(0).argParser(duration))
    .addOption(new Option('--ipvs-udp-timeout <duration>', 'IPVS UDP timeout (0: leave)').default(0).argParser(duration))
    .addOption(
      new Option('--conntrack-max-per-core <n>', 'nf_conntrack_max per CPU (0: leave nf_conntrack_max)')
        .default(DEFAULT_CONNTRACK.maxPerCore)
        .argParser(parseInt32),
    )
    .addOption(new Option('--conntrack-min <n>', 'the least nf_conntrack_max').default(DEFAULT_CONNTRACK.min).argParser(parseInt32))
    .addOption(
      new Option('--conntrack-tcp-timeout-established <duration>', 'nf_conntrack_tcp_timeout_established (0: leave)')
        .default(DEFAULT_CONNTRACK.tcpEstablishedTimeoutMs, '24h0m0s')
        .argParser(duration),
    )
    .addOption(
      new Option('--conntrack-tcp-timeout-close-wait <duration>', 'nf_conntrack_tcp_timeout_close_wait (0: leave)')
        .default(DEFAULT_CONNTRACK.tcpCloseWaitTimeoutMs, '1h0m0s')
        .argParser(duration),
    )
    .addOption(boolOption('--conntrack-tcp-be-liberal', 'set nf_conntrack_tcp_be_liberal to 1'))
    .addOption(new Option('--conntrack-udp-timeout <duration>', 'nf_conntrack_udp_timeout (0: leave)').default(0).argParser(duration))
    .addOption(new Option('--conntrack-udp-timeout-stream <duration>', 'nf_conntrack_udp_timeout_stream (0: leave)').default(0).argParser(duration))
    .addOption(
      new Option('--graceful-termination-timeout <duration>', 'longest a removed TCP real server drains at weight 0')
        .default(900_000, '15m')
        .argParser(duration),
    )
    .addOption(new Option('-v, --v <level>', 'log verbosity, as klog: 0-2 info, 3-4 debug, 5+ trace').default(0).argParser(parseInt32))
    .addOption(new Option('--logging-format <format>', 'json (kipvs always logs JSON lines)'))
    .addOption(boolOption('--cleanup', "remove what kipvs and kube-proxy's IPVS mode own, then exit"))
    .option('--write-config-to <path>', "write kipvs's defaults as a KubeProxyConfiguration, then exit")
    .addOption(boolOption('--version', 'print the version and exit'))
    .option('--metrics-per-endpoint', 'also export connections per endpoint (a series per real server)', false)
    .option('--netns <name|path>', 'program this network namespace')
    .option('--once', 'converge once; exit 0 when the kernel matches, non-zero on any error', false)
    .option('--dry-run', 'print the plan and change nothing', false);
  for (const option of warnedFlagOptions()) command.addOption(option);
  return command.action(async (options: AgentOptions, self: Command) => {
    // Loaded only to run: `kipvs inspect` and --help need none of the agent's modules, and each
    // module a process loads costs start-up time (dear under a slow kernel).
    const { runAgent } = await import('./agent-run.js');
    await runAgent(options, self);
  });
}
