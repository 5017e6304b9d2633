// The agent's options: kube-proxy's flag names and meanings, parsed and checked, and the settings
// translation reads from them.
import { InvalidArgumentError } from 'commander';
import { familyOf } from '../ip.js';
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

/** Go durations as kube-proxy takes them: 30s, 1m, 500ms, 1h30m; a bare number is seconds. */
export function parseDuration(text: string): number {
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let rest = text;
  while (rest.length > 0) {
    const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)/.exec(rest);
    if (!match) throw new InvalidArgumentError(`"${text}" is not a duration (like 30s, 1m, 500ms)`);
    total += Number(match[1]) * units[match[2]!]!;
    rest = rest.slice(match[0].length);
  }
  return total;
}

export function parseCidrs(text: string): string[] {
  const cidrs = text.split(',').map((part) => part.trim()).filter(Boolean);
  for (const cidr of cidrs) {
    const [address, prefix, extra] = cidr.split('/');
    const family = address ? familyOf(address) : undefined;
    const max = family === 'inet' ? 32 : 128;
    if (!family || extra !== undefined || (prefix !== undefined && !(Number.isInteger(Number(prefix)) && Number(prefix) >= 0 && Number(prefix) <= max))) {
      throw new InvalidArgumentError(`"${cidr}" is not a CIDR`);
    }
  }
  return cidrs;
}

export const SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'twos'];

export function parseScheduler(name: string): string {
  if (!SCHEDULERS.includes(name)) throw new InvalidArgumentError(`unknown IPVS scheduler "${name}" (one of ${SCHEDULERS.join(', ')})`);
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
