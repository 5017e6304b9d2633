// The agent's options: kube-proxy's flag names and meanings, parsed and checked, and the settings
// translation reads from them.
import { InvalidArgumentError } from 'commander';
import { parseCidr } from '../ip.js';
import { IPVS_SCHEDULERS, isIpvsScheduler } from '../model/schedulers.js';
import { parseGoDuration } from '../util/duration.js';
import { DEFAULT_SETTINGS, type ProxySettings } from '../model/settings.js';
import { ipsetName, KUBE_IPSETS, type KubeIpsetId } from '../model/ipsets.js';

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
  /** A KubeProxyConfiguration file; flags given on the command line override it. */
  config?: string;
  /** host:port for /healthz and /livez; empty turns the server off. */
  healthzBindAddress: string;
  /** host:port for /metrics; empty turns the server off. */
  metricsBindAddress: string;
  iptablesMasqueradeBit: number;
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
  const cidrs = text.split(',').map((part) => part.trim()).filter(Boolean);
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
  };
}

export function allIpsetNames(): string[] {
  return (Object.keys(KUBE_IPSETS) as KubeIpsetId[]).flatMap((id) => [ipsetName(id, 'inet'), ipsetName(id, 'inet6')]);
}
