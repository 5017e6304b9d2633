// `kipvs agent` and `kipvs cleanup`. Flag names follow kube-proxy's where they mean the same thing.
import { writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { pino, type Logger } from 'pino';
import { KipvsError } from '../errors.js';
import { NetlinkKernel } from '../kernel/netlink-kernel.js';
import { Proxier, type SyncResult } from '../agent/proxier.js';
import { FileOwnershipStore, removeStaleStateFiles } from '../agent/ownership.js';
import { discoverNode, LiveNodeFacts, nodeAddressReader, type NodeFactsOptions } from '../agent/node-facts.js';
import { startDaemon, type SyncObserver } from '../agent/daemon.js';
import { RetryBackoff } from '../agent/retry.js';
import { prepareNode, type RulesWriter } from '../agent/node-setup.js';
import { healthObserver, metricsObserver, serviceHealthObserver } from '../agent/observers.js';
import { ServiceNamesRecorder, serviceNamesObserver, serviceNamesPath } from '../agent/service-names.js';
import { serviceTrafficObserver } from '../agent/service-metrics.js';
import { DEFAULT_HEALTHZ_BIND_ADDRESS, ProxyHealth, startHealthServer } from '../agent/health-server.js';
import type { HttpEndpoint } from '../agent/http.js';
import { DEFAULT_METRICS_BIND_ADDRESS, ProxyMetrics, startMetricsServer } from '../agent/metrics.js';
import { ServiceHealthServer } from '../agent/service-health.js';
import { ClusterStore } from '../sources/cluster-store.js';
import { startClusterSource, type ClusterSource } from '../sources/start.js';
import { formatPlan } from './plan-format.js';
import type { NodeFacts } from '../model/settings.js';
import {
  allIpsetNames,
  parseCidrs,
  parseDetectLocalMode,
  parseDuration,
  parseInt32,
  parseNodePortAddresses,
  parseScheduler,
  settingsFrom,
  conntrackConfigOf,
  type AgentOptions,
} from './agent-options.js';
import { boolOption, logLevelOf, resolveKubeProxyFlags, warnedFlagOptions } from './kube-proxy-flags.js';
import { DEFAULT_CONNTRACK } from '../kernel/sysctl.js';
import { defaultKubeProxyConfiguration, explicitFlags, KIPVS_VERSION, loadKubeProxyConfiguration, mergeWithFlags } from './kube-proxy-config.js';

export { allIpsetNames, parseDuration, settingsFrom, type AgentOptions };

function createLogger(): Logger {
  return pino({ base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2));
}

/** The file's settings under the flags given on the command line, then what kube-proxy's own flags mean. */
function resolveOptions(cli: AgentOptions, command: Command, log: Logger): AgentOptions {
  const given = explicitFlags(command);
  let options = cli;
  if (cli.config) {
    const loaded = loadKubeProxyConfiguration(cli.config);
    for (const warning of loaded.warnings) log.warn({ config: cli.config }, warning);
    options = mergeWithFlags<AgentOptions>(loaded.options, cli, given);
  }
  const resolved = resolveKubeProxyFlags(options, given);
  for (const warning of resolved.warnings) log.warn(warning);
  return resolved.options;
}

/** --version, --write-config-to, --cleanup: kube-proxy's flags that do one thing and exit. */
async function runAndExit(options: AgentOptions): Promise<boolean> {
  if (options.version) {
    process.stdout.write(`kipvs ${KIPVS_VERSION}\n`);
    return true;
  }
  if (options.writeConfigTo !== undefined) {
    writeFileSync(options.writeConfigTo, defaultKubeProxyConfiguration());
    return true;
  }
  if (options.cleanup) {
    // Imported here: cleanup.ts imports this module for the rules' cleanup.
    const { cleanupAndReport } = await import('./cleanup.js');
    await cleanupAndReport({ netns: options.netns });
    return true;
  }
  return false;
}

async function runAgent(cli: AgentOptions, command: Command): Promise<void> {
  const log = createLogger();
  log.level = logLevelOf(cli.v);
  const options = resolveOptions(cli, command, log);
  log.level = logLevelOf(options.v);
  if (await runAndExit(options)) return;
  if (options.source && options.kubeconfig && command.getOptionValueSource('kubeconfig') === 'cli') {
    throw new KipvsError('KIPVS_USAGE', '--source and --kubeconfig: give one source of Services and EndpointSlices');
  }
  const daemon = !options.once && !options.dryRun;
  const settings = settingsFrom(options);
  const stopping = new AbortController();
  const stop = (): void => {
    log.info('stopping; the kernel state stays as programmed');
    stopping.abort();
  };
  if (daemon) {
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  }
  const kernel = await NetlinkKernel.open({
    netns: options.netns,
    dummyInterface: settings.dummyInterface,
    ipsetNames: allIpsetNames(),
    onProcUnreadable: (error) => {
      log.warn({ err: error.message }, '/proc/net/ip_vs cannot be used; full syncs read every virtual server over netlink');
    },
  });
  let source: ClusterSource | undefined;
  let servers: Array<{ close(): Promise<void> }> = [];
  try {
    const nodeOptions: NodeFactsOptions = {
      netns: options.netns,
      hostnameOverride: options.hostnameOverride,
      nodePortAddresses: options.nodeportAddresses,
      bindAddress: options.bindAddress,
      dummyInterface: settings.dummyInterface,
    };
    const { facts: node, linkAddresses } = await discoverNode(nodeOptions);
    const liveNode = new LiveNodeFacts(node, nodeOptions, linkAddresses);
    const cluster = new ClusterStore();
    const health = new ProxyHealth({ healthTimeoutMs: 2 * options.ipvsSyncPeriod, families: node.families });
    const metrics = new ProxyMetrics({ families: node.families, defaultMetrics: daemon });
    // Served before the first list, as kube-proxy does: a pod restarting while the API server is
    // away must not be killed by its liveness probe.
    if (daemon) {
      servers = [
        keepServing(options.healthzBindAddress, 'healthz', () => startHealthServer(options.healthzBindAddress, health, metrics), log),
        keepServing(options.metricsBindAddress, 'metrics', () => startMetricsServer(options.metricsBindAddress, metrics), log),
      ];
    }
    source = await startClusterSource({
      file: options.source,
      kubeconfig: options.kubeconfig,
      nodeName: node.name,
      cluster,
      log,
      onNode: (info) => health.setNode(info),
      onNodeInfo: (info) => {
        liveNode.setNodeObject(info);
      },
      signal: stopping.signal,
      minSyncPeriodMs: options.ipvsMinSyncPeriod,
      onFailing: (failing) => {
        health.setSourceProblems(failing.map((problem) => `${problem.file}: ${problem.reason}`));
        metrics.recordSourceFailing(failing.length);
      },
    });
    log.info(
      {
        node: node.name,
        addresses: node.addresses,
        scheduler: settings.scheduler,
        source: options.source ?? options.kubeconfig ?? 'in-cluster',
        ...cluster.size,
      },
      'starting',
    );
    for (const file of removeStaleStateFiles()) log.info({ file }, 'removed the state file of a network namespace that is gone');
    const ownership = FileOwnershipStore.forNamespace(options.netns, undefined, (problem) => {
      log.warn({ problem }, 'state file');
    });
    const proxier = new Proxier({ kernel, node, currentNode: () => liveNode.current, settings, log, ownership, cluster });
    if (options.dryRun) {
      const { plan } = await proxier.plan();
      process.stdout.write(formatPlan(plan, settings.dummyInterface));
      return;
    }
    const writeRules = await prepareNode({
      options: { ...options, conntrack: conntrackConfigOf(options) },
      settings,
      node,
      currentNode: () => liveNode.current,
      log,
    });
    const names = new ServiceNamesRecorder(serviceNamesPath(options.netns));
    if (options.once) {
      await syncOnce(proxier, writeRules, source, (result) => {
        names.record(result.desired, result.changes.services, cluster);
      });
      return;
    }
    if (!stopping.signal.aborted) {
      await runDaemon({ options, node, liveNode, nodeOptions, cluster, proxier, writeRules, health, metrics, names, log, stopping: stopping.signal, source });
    }
  } catch (error) {
    // SIGTERM while waiting for the first list from the API server: a clean stop.
    if (stopping.signal.aborted && (error as KipvsError).code === 'KIPVS_ABORTED') return;
    throw error;
  } finally {
    await Promise.all(servers.map((server) => server.close()));
    await source?.stop();
    kernel.close();
  }
}

/**
 * --once: converge, write the rules, and fail unless the kernel acknowledged every operation and
 * nothing is left to do (against what was programmed: a second read of 10,000 virtual servers
 * would only catch someone else changing them meanwhile). A source file that could not be used
 * fails it too, after the good objects are programmed (and nothing it may define removed).
 */
async function syncOnce(proxier: Proxier, writeRules: RulesWriter, source: ClusterSource, synced: (result: SyncResult) => void): Promise<void> {
  const result = await proxier.sync();
  synced(result);
  // Written before the sync already; again only when the synced state changed them (the
  // LoadBalancer source ranges in KUBE-IPVS-OUT-FILTER): each write is an iptables-save and an
  // iptables-restore per family, dear to start under a slow kernel.
  await writeRules(result.desired, { onlyIfChanged: true });
  const failing = source.failing();
  const first = failing[0];
  if (first) {
    const more = failing.length > 1 ? ` (and ${String(failing.length - 1)} more)` : '';
    throw new KipvsError('KIPVS_SOURCE', `source not fully read: ${first.file}: ${first.reason}${more}`);
  }
  const { plan: remaining } = await proxier.plan({ full: false });
  const leftover = remaining.operations.length;
  if (result.failures.length > 0 || leftover > 0) {
    throw new KipvsError('KIPVS_NOT_CONVERGED', `not converged: ${result.failures.length} operations failed, ${leftover} still to do`);
  }
}

interface DaemonContext {
  readonly options: AgentOptions;
  readonly node: NodeFacts;
  readonly liveNode: LiveNodeFacts;
  readonly nodeOptions: NodeFactsOptions;
  readonly cluster: ClusterStore;
  readonly proxier: Proxier;
  readonly writeRules: RulesWriter;
  readonly health: ProxyHealth;
  readonly metrics: ProxyMetrics;
  readonly names: ServiceNamesRecorder;
  readonly log: Logger;
  readonly stopping: AbortSignal;
  readonly source: ClusterSource;
}

/** Until `stopping` (SIGTERM or SIGINT): syncs, and the observers that feed health, metrics and health-check node ports. */
async function runDaemon({
  options,
  node,
  liveNode,
  nodeOptions,
  cluster,
  proxier,
  writeRules,
  health,
  metrics,
  names,
  log,
  stopping,
  source,
}: DaemonContext): Promise<void> {
  const serviceHealth = new ServiceHealthServer({ addresses: options.nodeportAddresses.length > 0 ? node.addresses : [], health, log });
  const observers: SyncObserver[] = [
    healthObserver(health),
    metricsObserver(metrics, cluster),
    serviceHealthObserver(serviceHealth, node, log),
    serviceNamesObserver(names),
  ];
  observers.push(serviceTrafficObserver(metrics, options.netns, log, options.metricsPerEndpoint));
  observers.push({
    retryScheduled: (operations, delayMs) => {
      metrics.recordRetries(operations);
      log.info({ operations, inMs: delayMs }, 'retrying refused operations');
    },
  });
  // Refused operations: tried again after 1 s, doubling up to the sync period, jittered by half.
  const retry = new RetryBackoff({ initialMs: 1000, maxMs: Math.max(1000, options.ipvsSyncPeriod), jitter: 0.5 }, proxierDummy(options));
  // As kube-proxy's runner: the proxy counts as updated when its loop starts.
  health.updated();
  metrics.recordQueued();
  const nodeAddresses = nodeAddressReader(liveNode, nodeOptions, log);
  const daemon = startDaemon({
    proxier,
    cluster,
    log,
    syncPeriodMs: options.ipvsSyncPeriod,
    minSyncPeriodMs: options.ipvsMinSyncPeriod,
    applyRules: writeRules,
    observers,
    retry,
    checkSource: () => {
      source.check();
      nodeAddresses.check();
    },
    nodeFacts: liveNode,
  });
  await new Promise<void>((resolve) => stopping.addEventListener('abort', () => resolve(), { once: true }));
  // A sync under way finishes first: closing its sockets mid-apply could leave a virtual server
  // without its real servers.
  await daemon.stop();
  await serviceHealth.close();
}

const proxierDummy = (options: AgentOptions): string => settingsFrom(options).dummyInterface;

/**
 * Serves on `address` (empty: not at all). A port that is taken is logged and tried again every
 * 5 s, as kube-proxy does: the proxy itself matters more than its health endpoint.
 */
function keepServing(address: string, what: string, start: () => Promise<HttpEndpoint>, log: Logger): { close(): Promise<void> } {
  let endpoint: HttpEndpoint | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const attempt = (): void => {
    start().then(
      (opened) => {
        if (closed) return void opened.close();
        endpoint = opened;
        log.info({ address: opened.address }, `serving ${what}`); // host:port already
      },
      (error: unknown) => {
        log.error({ err: (error as Error).message }, `cannot serve ${what}; trying again in 5 s`);
        if (!closed) timer = setTimeout(attempt, 5000);
      },
    );
  };
  if (address !== '') attempt();
  return {
    close: async () => {
      closed = true;
      clearTimeout(timer);
      await endpoint?.close();
    },
  };
}

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
  return command.action(async (options: AgentOptions, self: Command) => runAgent(options, self));
}
