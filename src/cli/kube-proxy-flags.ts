// Every kube-proxy 1.34 command-line flag on Linux (cmd/kube-proxy/app/options.go AddFlags, the
// logging flags of component-base logsapi.AddFlags, --version and --help), and what kipvs does with
// it: `acted` — the agent does what kube-proxy does (the option of the same name in agent.ts);
// `warned` — accepted, and one warning says why it does not apply to kipvs. None is refused, so a
// kube-proxy DaemonSet's command line starts kipvs unchanged. The Windows-only flags
// (--windows-service, --source-vip, --network-name, --enable-dsr) are not Linux flags: kube-proxy on
// Linux refuses them too. docs/configuration.md lists this table; a unit test keeps them equal.
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { Option, type Command } from 'commander';
import { KipvsError } from '../errors.js';

export type FlagStatus = 'acted' | 'warned';

export interface KubeProxyFlag {
  /** Without the dashes; `v` also answers to `-v`. */
  readonly name: string;
  readonly status: FlagStatus;
  /** For warned flags: why the value does not apply; for acted ones, what it drives. */
  readonly note: string;
  /** A pflag bool: `--flag`, `--flag=true|false`. */
  readonly bool?: boolean;
}

const acted = (name: string, note: string, bool = false): KubeProxyFlag => ({ name, status: 'acted', note, bool });
const warned = (name: string, note: string, bool = false): KubeProxyFlag => ({ name, status: 'warned', note, bool });

const CLIENT = "kipvs's Kubernetes client has no client-side rate limit and speaks JSON";
const LOG_OUTPUT = 'kipvs always writes JSON lines to stderr, unbuffered';

export const KUBE_PROXY_FLAGS: readonly KubeProxyFlag[] = [
  acted('config', 'read as kube-proxy reads it (see the field table)'),
  acted('write-config-to', "writes kipvs's defaults as a KubeProxyConfiguration and exits"),
  acted('cleanup', 'removes what kipvs and kube-proxy IPVS mode own (kipvs cleanup) and exits', true),
  warned('feature-gates', 'kipvs has no feature gates'),
  acted('kubeconfig', 'the API server and credentials'),
  warned('master', "kipvs takes the API server from the kubeconfig (or the in-cluster service account); set the kubeconfig's server instead"),
  warned('kube-api-content-type', CLIENT),
  warned('kube-api-burst', CLIENT),
  warned('kube-api-qps', CLIENT),
  acted('hostname-override', "this node's name"),
  acted('bind-address', "the node's primary IP (nodePortAddresses primary, the load balancer access check) and the family of the default bind addresses"),
  acted('healthz-bind-address', '/healthz and /livez'),
  acted('metrics-bind-address', '/metrics'),
  warned('bind-address-hard-fail', 'kipvs keeps retrying a health or metrics port that is taken, every 5 s, and keeps proxying', true),
  warned('profiling', 'kipvs serves no /debug/pprof', true),
  warned('show-hidden-metrics-for-version', 'kipvs hides no metrics'),
  warned('init-only', 'kipvs needs no separate privileged initialisation step; it sets the sysctls at start', true),
  acted('proxy-mode', 'ipvs accepted; any other mode refused (kipvs implements only ipvs)'),
  acted('iptables-masquerade-bit', 'the masquerade fwmark'),
  acted('masquerade-all', 'KUBE-SERVICES masquerades every ClusterIP packet', true),
  warned('iptables-localhost-nodeports', 'iptables mode only: IPVS mode never serves NodePorts on localhost', true),
  warned('iptables-sync-period', 'iptables mode only: IPVS mode syncs every --ipvs-sync-period'),
  warned('iptables-min-sync-period', 'iptables mode only: IPVS mode uses --ipvs-min-sync-period'),
  acted('ipvs-sync-period', 'the longest time between full syncs'),
  acted('ipvs-min-sync-period', 'the shortest time between syncs'),
  acted('ipvs-scheduler', 'the default IPVS scheduler (same as --scheduler)'),
  acted('ipvs-exclude-cidrs', 'virtual servers kipvs leaves alone'),
  acted('ipvs-strict-arp', 'arp_ignore=1, arp_announce=2', true),
  acted('ipvs-tcp-timeout', 'IPVS TCP timeout'),
  acted('ipvs-tcpfin-timeout', 'IPVS TCP FIN timeout'),
  acted('ipvs-udp-timeout', 'IPVS UDP timeout'),
  acted('detect-local-mode', 'how KUBE-SERVICES tells pod traffic from the rest'),
  acted('pod-bridge-interface', 'detect-local-mode BridgeInterface'),
  acted('pod-interface-name-prefix', 'detect-local-mode InterfaceNamePrefix'),
  acted('cluster-cidr', 'detect-local-mode ClusterCIDR'),
  acted('nodeport-addresses', 'the node addresses NodePorts listen on; CIDRs or primary'),
  warned('oom-score-adj', 'kipvs does not change its own OOM score; the kubelet sets it from the pod QoS class'),
  acted('conntrack-max-per-core', 'nf_conntrack_max = max(conntrack-min, this × CPUs), and the hashsize'),
  acted('conntrack-min', 'the floor of nf_conntrack_max'),
  acted('conntrack-tcp-timeout-established', 'nf_conntrack_tcp_timeout_established'),
  acted('conntrack-tcp-timeout-close-wait', 'nf_conntrack_tcp_timeout_close_wait'),
  acted('conntrack-tcp-be-liberal', 'nf_conntrack_tcp_be_liberal', true),
  acted('conntrack-udp-timeout', 'nf_conntrack_udp_timeout'),
  acted('conntrack-udp-timeout-stream', 'nf_conntrack_udp_timeout_stream'),
  warned('config-sync-period', 'kipvs watches without a periodic informer resync; every --ipvs-sync-period it compares the whole kernel state'),
  acted('healthz-port', 'deprecated: 0 turns /healthz off, as in kube-proxy'),
  acted('metrics-port', 'deprecated: 0 turns /metrics off, as in kube-proxy'),
  acted('v', 'the log level: 0-2 info, 3-4 debug, 5 and more trace'),
  warned('vmodule', 'kipvs has one log level for all its code'),
  acted('logging-format', 'json accepted; text warned (kipvs always logs JSON lines)'),
  warned('log-flush-frequency', LOG_OUTPUT),
  warned('log-json-split-stream', LOG_OUTPUT, true),
  warned('log-json-info-buffer-size', LOG_OUTPUT),
  warned('log-text-split-stream', LOG_OUTPUT, true),
  warned('log-text-info-buffer-size', LOG_OUTPUT),
  acted('version', 'prints the version and exits', true),
  acted('help', 'prints the usage and exits', true),
];

/** pflag's bool values: `--flag`, `--flag=true`, `--flag=false` (also 1/0, t/f, as strconv.ParseBool). */
export function parseFlagBool(text: string): boolean {
  if (['true', 'True', 'TRUE', 't', 'T', '1'].includes(text)) return true;
  if (['false', 'False', 'FALSE', 'f', 'F', '0'].includes(text)) return false;
  throw new Error(`"${text}" is not true or false`);
}

/** A kube-proxy bool flag as commander takes it, so `--masquerade-all=true` works as with pflag. */
export const boolOption = (flags: string, description: string): Option =>
  new Option(`${flags} [bool]`, description).preset('true').default(false).argParser(parseFlagBool);

/** The flags kipvs accepts only to warn about: hidden from --help, kept as given. */
export function warnedFlagOptions(): Option[] {
  return KUBE_PROXY_FLAGS.filter((flag) => flag.status === 'warned').map((flag) =>
    new Option(flag.bool ? `--${flag.name} [bool]` : `--${flag.name} <value>`, flag.note).hideHelp(),
  );
}

/** Commander's attribute name for a flag: --kube-api-qps → kubeApiQps. */
export const attributeOf = (name: string): string => name.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());

/** One warning per warned flag given on the command line. */
export function warnedFlagWarnings(given: (attribute: string) => boolean): string[] {
  return KUBE_PROXY_FLAGS.filter((flag) => flag.status === 'warned' && given(attributeOf(flag.name))).map((flag) => `ignored: --${flag.name} (${flag.note})`);
}

/** klog verbosity as a pino level: kube-proxy's --v=2 DaemonSets keep kipvs's info logs. */
export function logLevelOf(verbosity: number): 'info' | 'debug' | 'trace' {
  if (verbosity >= 5) return 'trace';
  if (verbosity >= 3) return 'debug';
  return 'info';
}

/** The options kube-proxy's flags resolve into, after the configuration file. */
export interface FlagResolved<T> {
  readonly options: T;
  readonly warnings: string[];
}

interface FlagOptions {
  scheduler: string;
  ipvsScheduler?: string;
  proxyMode?: string;
  loggingFormat?: string;
  healthzPort?: number;
  metricsPort?: number;
  healthzBindAddress: string;
  metricsBindAddress: string;
  config?: string;
}

/** addressFromDeprecatedFlags: port 0 turns the server off; a bare IP takes the port (AppendPortIfNeeded). */
function addressFromPort(address: string, port: number | undefined): string {
  if (port === undefined) return address;
  if (port === 0) return '';
  return isIP(address) === 0 ? address : `${isIP(address) === 6 ? `[${address}]` : address}:${String(port)}`;
}

/**
 * What the kube-proxy flags that are not plain options mean: --ipvs-scheduler is --scheduler,
 * --proxy-mode must be ipvs, --logging-format json or text, --healthz-port/--metrics-port (without
 * --config, as kube-proxy) turn their server off with 0; and one warning per warned flag given.
 */
export function resolveKubeProxyFlags<T extends FlagOptions>(options: T, given: (attribute: string) => boolean): FlagResolved<T> {
  const warnings = warnedFlagWarnings(given);
  const resolved: T = { ...options };
  if (options.ipvsScheduler !== undefined) resolved.scheduler = options.ipvsScheduler;
  if (options.proxyMode !== undefined && options.proxyMode !== 'ipvs') {
    throw new KipvsError(
      'KIPVS_USAGE',
      `--proxy-mode ${options.proxyMode}: kipvs implements only kube-proxy's ipvs mode (run kube-proxy --cleanup on the node first if it ran another mode)`,
    );
  }
  const format = options.loggingFormat;
  if (format !== undefined && format !== 'json' && format !== 'text')
    throw new KipvsError('KIPVS_USAGE', `--logging-format ${format}: unsupported log format (json or text)`);
  if (format === 'text') warnings.push('ignored: --logging-format text (kipvs always logs JSON lines)');
  if (options.config === undefined) {
    resolved.healthzBindAddress = addressFromPort(options.healthzBindAddress, options.healthzPort);
    resolved.metricsBindAddress = addressFromPort(options.metricsBindAddress, options.metricsPort);
  }
  return { options: resolved, warnings };
}

/**
 * Flags given on the command line win over the file, the file over the flags' defaults. (kube-proxy
 * itself ignores every flag but --hostname-override and the logging flags once --config is given;
 * kipvs lets an explicit flag win, which changes nothing for a kube-proxy command line.)
 */
export function mergeWithFlags<T extends object>(fileOptions: Partial<T>, cliOptions: T, isExplicit: (name: string) => boolean): T {
  const merged: Record<string, unknown> = { ...(cliOptions as Record<string, unknown>) };
  for (const [name, value] of Object.entries(fileOptions)) {
    if (value !== undefined && !isExplicit(name)) merged[name] = value;
  }
  return merged as T;
}

/** isExplicit for mergeWithFlags from commander: the value came from the command line (or its env var). */
export function explicitFlags(command: Pick<Command, 'getOptionValueSource'>): (name: string) => boolean {
  return (name) => {
    const source = command.getOptionValueSource(name);
    return source === 'cli' || source === 'env';
  };
}

/** kipvs's version (package.json), for --version. */
export const KIPVS_VERSION = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
