// `kipvs agent` and `kipvs cleanup`. Flag names follow kube-proxy's where they mean the same thing.
import { Command, InvalidArgumentError, Option } from 'commander';
import { pino, type Logger } from 'pino';
import { familyOf } from '../ip.js';
import { KipvsError } from '../netlink/errors.js';
import { IpvsClient } from '../netlink/ipvs/client.js';
import { NetlinkKernel } from '../kernel/netlink-kernel.js';
import { DEFAULT_SETTINGS, type ProxySettings } from '../model/settings.js';
import { ipsetName, KUBE_IPSETS, type KubeIpsetId } from '../model/ipsets.js';
import { Proxier } from '../agent/proxier.js';
import { FileOwnershipStore } from '../agent/ownership.js';
import { discoverNodeFacts } from '../agent/node-facts.js';
import { startDaemon } from '../agent/daemon.js';
import { FileSource, watchObjects, type FileSnapshot } from '../sources/file-source.js';
import { ClusterStore } from '../sources/cluster-store.js';
import { formatPlan } from './plan-format.js';
import { release } from 'node:os';
import { applyIptablesRules, cleanupIptables, detectIptablesBackend, type IptablesBackend } from '../kernel/iptables.js';
import { buildIptablesRules, KIPVS_IPTABLES_OWNERSHIP } from '../translate/iptables-rules.js';
import { ensureIpvsSysctls } from '../kernel/sysctl.js';
import type { AddressFamily } from '../ip.js';

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

function parseCidrs(text: string): string[] {
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

const SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'twos'];

function parseScheduler(name: string): string {
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

function createLogger(): Logger {
  return pino({ base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2));
}

async function runAgent(options: AgentOptions): Promise<void> {
  if (options.kubeconfig) throw new KipvsError('KIPVS_USAGE', '--kubeconfig: the Kubernetes API source is not available in this version; use --source FILE|DIR');
  if (!options.source) throw new KipvsError('KIPVS_USAGE', 'no source: give --source FILE|DIR (Service and EndpointSlice objects as kubectl prints them)');
  const log = createLogger();
  const settings = settingsFrom(options);
  const source = options.source;
  const files = new FileSource(source);
  const first = files.read();
  const kernel = await NetlinkKernel.open({ netns: options.netns, dummyInterface: settings.dummyInterface, ipsetNames: allIpsetNames() });
  try {
    if (!options.dryRun && (options.ipvsTcpTimeout || options.ipvsTcpfinTimeout || options.ipvsUdpTimeout)) {
      const ipvs = await IpvsClient.open(options.netns ? { netns: options.netns } : {});
      try {
        await ipvs.setTimeouts({ tcp: options.ipvsTcpTimeout / 1000, tcpFin: options.ipvsTcpfinTimeout / 1000, udp: options.ipvsUdpTimeout / 1000 });
      } finally {
        ipvs.close();
      }
    }
    const node = await discoverNodeFacts({
      netns: options.netns,
      hostnameOverride: options.hostnameOverride,
      nodePortAddresses: options.nodeportAddresses,
      dummyInterface: settings.dummyInterface,
    });
    log.info({ node: node.name, addresses: node.addresses, scheduler: settings.scheduler, source }, 'starting');
    const backend = options.dryRun ? undefined : await detectIptablesBackend(options.netns ? { netns: options.netns } : {});
    if (backend) log.info({ backend: backend.mode, reason: backend.reason }, 'iptables backend');
    if (!options.dryRun) {
      const { changes, skipped } = ensureIpvsSysctls({ strictArp: options.ipvsStrictArp, kernelRelease: release(), netns: options.netns });
      for (const change of changes) log.info({ sysctl: change.name, from: change.old, to: change.new }, 'set sysctl');
      for (const skip of skipped) log.info({ sysctl: skip.name, reason: skip.reason }, 'left sysctl as is');
    }
    // The rules reference kube-proxy's ipsets, which the first sync creates: apply them after it.
    const applyRules = async (): Promise<void> => {
      for (const family of node.families) {
        const result = await applyIptablesRules(buildIptablesRules(settings, { family }), { netns: options.netns, backend: backend!.mode });
        if (result.insertedJumps.length > 0) log.info({ family, rules: result.ruleCount, insertedJumps: result.insertedJumps.length }, 'iptables rules written');
      }
    };
    const cluster = new ClusterStore();
    const proxier = new Proxier({ kernel, node, settings, log, ownership: FileOwnershipStore.forNamespace(options.netns), cluster });
    const take = (snapshot: FileSnapshot): void => {
      for (const problem of snapshot.problems) log.warn({ file: problem.file, reason: problem.reason }, 'skipped');
      for (const id of cluster.replaceAll(snapshot.services, snapshot.endpointSlices)) {
        log.warn({ object: id, reason: 'the source holds this Service twice; the later copy is ignored' }, 'skipped');
      }
    };
    const load = (): void => take(files.read());
    take(first);

    if (options.dryRun) {
      const { plan } = await proxier.plan();
      process.stdout.write(formatPlan(plan, settings.dummyInterface));
      return;
    }
    if (options.once) {
      const result = await proxier.sync();
      await applyRules();
      const { plan: remaining } = await proxier.plan();
      const leftover = remaining.operations.length;
      if (result.failures.length > 0 || leftover > 0) {
        throw new KipvsError('KIPVS_NOT_CONVERGED', `not converged: ${result.failures.length} operations failed, ${leftover} still to do`);
      }
      return;
    }
    const daemon = startDaemon({ proxier, cluster, log, syncPeriodMs: options.ipvsSyncPeriod, minSyncPeriodMs: options.ipvsMinSyncPeriod, applyRules });
    const stopWatching = watchObjects(source, () => {
      try {
        load();
      } catch (error) {
        log.error({ err: (error as Error).message }, 'cannot reload source; keeping the last good objects');
      }
    });
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        log.info('stopping; the kernel state stays as programmed');
        stopWatching();
        // A sync under way finishes first: closing its sockets mid-apply could leave a virtual
        // server without its real servers.
        void daemon.stop().then(resolve);
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
  } finally {
    kernel.close();
  }
}

export function agentCommand(): Command {
  const duration = (text: string): number => parseDuration(text);
  return new Command('agent')
    .description('program IPVS, ipsets and addresses from Services and EndpointSlices, and keep them in sync')
    .addOption(new Option('--scheduler <name>', 'IPVS scheduler (rr, lc, wrr, wlc, sh, dh, sed, nq, mh, ...)').default('rr').argParser(parseScheduler))
    .option('--source <path>', 'a YAML/JSON file or directory of Service and EndpointSlice objects')
    .option('--kubeconfig <path>', 'read objects from the Kubernetes API server')
    .option('--hostname-override <name>', "this node's name, for externalTrafficPolicy/internalTrafficPolicy Local")
    .addOption(new Option('--cluster-cidr <cidrs>', 'pod CIDRs; traffic from outside them to a ClusterIP is masqueraded').default([]).argParser(parseCidrs))
    .option('--masquerade-all', 'masquerade all traffic to services', false)
    .addOption(new Option('--nodeport-addresses <cidrs>', 'node addresses NodePorts listen on (default: all)').default([]).argParser(parseCidrs))
    .addOption(new Option('--ipvs-sync-period <duration>', 'longest time between full syncs').default(30_000, '30s').argParser(duration))
    .addOption(new Option('--ipvs-min-sync-period <duration>', 'shortest time between syncs').default(1_000, '1s').argParser(duration))
    .option('--ipvs-strict-arp', 'set arp_ignore=1 and arp_announce=2', false)
    .addOption(new Option('--ipvs-exclude-cidrs <cidrs>', 'virtual servers kipvs must not touch').default([]).argParser(parseCidrs))
    .addOption(new Option('--ipvs-tcp-timeout <duration>', 'IPVS TCP idle timeout (0: leave)').default(0).argParser(duration))
    .addOption(new Option('--ipvs-tcpfin-timeout <duration>', 'IPVS TCP FIN_WAIT timeout (0: leave)').default(0).argParser(duration))
    .addOption(new Option('--ipvs-udp-timeout <duration>', 'IPVS UDP timeout (0: leave)').default(0).argParser(duration))
    .addOption(new Option('--graceful-termination-timeout <duration>', 'longest a removed TCP real server drains at weight 0').default(900_000, '15m').argParser(duration))
    .option('--netns <name|path>', 'program this network namespace')
    .option('--once', 'converge once; exit 0 when the kernel matches, non-zero on any error', false)
    .option('--dry-run', 'print the plan and change nothing', false)
    .action(async (options: AgentOptions) => runAgent(options));
}

export { IpvsClient };

/** Removes kipvs's iptables chains and jumps in both families (before its ipsets, which they use). */
export async function cleanupRules(netns: string | undefined): Promise<number> {
  let removed = 0;
  const backend: IptablesBackend = await detectIptablesBackend(netns ? { netns } : {});
  for (const family of ['inet', 'inet6'] as AddressFamily[]) {
    const result = await cleanupIptables(family, KIPVS_IPTABLES_OWNERSHIP, { netns, backend: backend.mode });
    removed += result.removedChains.length;
  }
  return removed;
}
