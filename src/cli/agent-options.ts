// The agent's options: kube-proxy's flag names and meanings, parsed and checked, and the settings
// translation reads from them.
import { InvalidArgumentError } from 'commander';
import { parseCidr } from '../ip.js';
import { IPVS_SCHEDULERS, isIpvsScheduler } from '../model/schedulers.js';
import { parseGoDuration } from '../util/duration.js';
import { DEFAULT_SETTINGS, type ProxySettings } from '../model/settings.js';
import { ipsetName, KUBE_IPSETS, type KubeIpsetId } from '../model/ipsets.js';
import type { ConntrackConfig } from '../kernel/sysctl.js';

export interface AgentOptions {
  scheduler: string;
  source?: string;
  kubeconfig?: string;
  hostnameOverride?: string;
  clusterCidr: string[];
  masqueradeAll: boolean;
  nodeportAddresses: string[];
  ipvsSyncPeriod: number;
  ipvsMinSyncPeriod: number;
  ipvsStrictArp: boolean;
  ipvsExcludeCidrs: string[];
  ipvsTcpTimeout: number;
  ipvsTcpfinTimeout: number;
  ipvsUdpTimeout: number;
  gracefulTerminationTimeout: number;
  netns?: string;
  once: boolean;
  dryRun: boolean;
  /** --metrics-per-endpoint: kipvs_service_endpoint_*_connections, a series per real server. */
  metricsPerEndpoint: boolean;
  /** A KubeProxyConfiguration file; flags given on the command line override it. */
  config?: string;
  /** host:port for /healthz and /livez; empty turns the server off. */
  healthzBindAddress: string;
  /** host:port for /metrics; empty turns the server off. */
  metricsBindAddress: string;
  iptablesMasqueradeBit: number;
  /** --bind-address: overrides the Node object's primary IP ('0.0.0.0' or '::': does not). */
  bindAddress: string;
  detectLocalMode: DetectLocalMode;
  podBridgeInterface: string;
  podInterfaceNamePrefix: string;
  conntrackMaxPerCore: number;
  conntrackMin: number;
  conntrackTcpTimeoutEstablished: number;
  conntrackTcpTimeoutCloseWait: number;
  conntrackTcpBeLiberal: boolean;
  conntrackUdpTimeout: number;
  conntrackUdpTimeoutStream: number;
  /** klog's -v: the log level. */
  v: number;
  loggingFormat?: string;
  proxyMode?: string;
  ipvsScheduler?: string;
  healthzPort?: number;
  metricsPort?: number;
  cleanup: boolean;
  writeConfigTo?: string;
  version: boolean;
}

/** kube-proxy's defaults for --healthz-bind-address and --metrics-bind-address. */
export const DEFAULT_HEALTHZ_BIND_ADDRESS = '0.0.0.0:10256';
export const DEFAULT_METRICS_BIND_ADDRESS = '127.0.0.1:10249';

/** kube-proxy's LocalMode values (pkg/proxy/apis/config/types.go); ClusterCIDR is its default. */
export const DETECT_LOCAL_MODES = ['ClusterCIDR', 'NodeCIDR', 'BridgeInterface', 'InterfaceNamePrefix'] as const;
export type DetectLocalMode = (typeof DETECT_LOCAL_MODES)[number];

export const isDetectLocalMode = (text: string): text is DetectLocalMode => (DETECT_LOCAL_MODES as readonly string[]).includes(text);

export function parseDetectLocalMode(text: string): DetectLocalMode {
  if (!isDetectLocalMode(text)) throw new InvalidArgumentError(`unknown detect-local-mode "${text}" (one of ${DETECT_LOCAL_MODES.join(', ')})`);
  return text;
}

/** An int32 flag (pflag Int32Var). */
export function parseInt32(text: string): number {
  const value = Number(text);
  if (!/^[-+]?\d+$/.test(text.trim()) || value < -(2 ** 31) || value >= 2 ** 31) throw new InvalidArgumentError(`"${text}" is not an integer`);
  return value;
}

/** --nodeport-addresses: CIDRs, or the single word primary (the Node object's primary IPs), as kube-proxy takes it. */
export function parseNodePortAddresses(text: string): string[] {
  const entries = text
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean);
  if (entries.includes('primary')) {
    if (entries.length > 1) throw new InvalidArgumentError('"primary" must be the only --nodeport-addresses value');
    return ['primary'];
  }
  return parseCidrs(text);
}

/** A Go duration flag (pflag's DurationVar: time.ParseDuration, so `30` without a unit is refused, as by kube-proxy). */
export function parseDuration(text: string): number {
  try {
    return parseGoDuration(text);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

/** A comma-separated CIDR list (pflag's StringSlice); each must be a CIDR, a bare IP is not one. */
export function parseCidrs(text: string): string[] {
  const cidrs = text
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean);
  for (const cidr of cidrs) {
    if (parseCidr(cidr) === undefined) throw new InvalidArgumentError(`"${cidr}" is not a CIDR (like 10.0.0.0/8)`);
  }
  return cidrs;
}

export function parseScheduler(name: string): string {
  if (!isIpvsScheduler(name)) throw new InvalidArgumentError(`unknown IPVS scheduler "${name}" (one of ${IPVS_SCHEDULERS.join(', ')})`);
  return name;
}

export function settingsFrom(options: AgentOptions): ProxySettings {
  return {
    ...DEFAULT_SETTINGS,
    scheduler: options.scheduler,
    masqueradeAll: options.masqueradeAll,
    clusterCidrs: options.clusterCidr,
    excludeCidrs: options.ipvsExcludeCidrs,
    gracefulTerminationSeconds: options.gracefulTerminationTimeout / 1000,
    detectLocal: { mode: options.detectLocalMode, bridgeInterface: options.podBridgeInterface, interfaceNamePrefix: options.podInterfaceNamePrefix },
  };
}

/** The conntrack flags as kube-proxy's KubeProxyConntrackConfiguration. */
export function conntrackConfigOf(options: AgentOptions): ConntrackConfig {
  return {
    maxPerCore: options.conntrackMaxPerCore,
    min: options.conntrackMin,
    tcpEstablishedTimeoutMs: options.conntrackTcpTimeoutEstablished,
    tcpCloseWaitTimeoutMs: options.conntrackTcpTimeoutCloseWait,
    tcpBeLiberal: options.conntrackTcpBeLiberal,
    udpTimeoutMs: options.conntrackUdpTimeout,
    udpStreamTimeoutMs: options.conntrackUdpTimeoutStream,
  };
}

export function allIpsetNames(): string[] {
  return (Object.keys(KUBE_IPSETS) as KubeIpsetId[]).flatMap((id) => [ipsetName(id, 'inet'), ipsetName(id, 'inet6')]);
}
