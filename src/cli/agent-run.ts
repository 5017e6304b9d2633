// What `kipvs agent` runs: options resolved, the node prepared, the source read, then one sync
// (--once), the plan (--dry-run) or the daemon (agent-daemon.ts, loaded only then).
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { pino, type Logger } from 'pino';
import { KipvsError } from '../errors.js';
import { NetlinkKernel } from '../kernel/netlink-kernel.js';
import { Proxier, type SyncResult } from '../agent/proxier.js';
import { FileOwnershipStore, removeStaleStateFiles } from '../agent/ownership.js';
import { discoverNode, LiveNodeFacts, type NodeFactsOptions } from '../agent/node-facts.js';
import { prepareNode, writeFirstRules, type RulesWriter } from '../agent/node-setup.js';
import { ServiceNamesRecorder, serviceNamesPath } from '../agent/service-names.js';
import { ProxyHealth } from '../agent/health-server.js';
import type { ProxyMetrics } from '../agent/metrics.js';
import { ClusterStore } from '../sources/cluster-store.js';
import { startClusterSource, type ClusterSource } from '../sources/start.js';
import { checkSourcePath } from '../sources/file-source.js';
import { formatPlan } from './plan-format.js';
import { allIpsetNames, settingsFrom, conntrackConfigOf, type AgentOptions } from './agent-options.js';
import { explicitFlags, KIPVS_VERSION, logLevelOf, mergeWithFlags, resolveKubeProxyFlags } from './kube-proxy-flags.js';

function createLogger(): Logger {
  return pino({ base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2));
}

/** The file's settings under the flags given on the command line, then what kube-proxy's own flags mean. */
async function resolveOptions(cli: AgentOptions, command: Command, log: Logger): Promise<AgentOptions> {
  const given = explicitFlags(command);
  let options = cli;
  if (cli.config) {
    // The YAML parser it needs is loaded only then.
    const { loadKubeProxyConfiguration } = await import('./kube-proxy-config.js');
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
    const { defaultKubeProxyConfiguration } = await import('./kube-proxy-config.js');
    writeFileSync(options.writeConfigTo, defaultKubeProxyConfiguration());
    return true;
  }
  if (options.cleanup) {
    // Loaded only for it, as the command's other rarely used parts.
    const { cleanupAndReport } = await import('./cleanup.js');
    await cleanupAndReport({ netns: options.netns });
    return true;
  }
  return false;
}

export async function runAgent(cli: AgentOptions, command: Command): Promise<void> {
  const log = createLogger();
  log.level = logLevelOf(cli.v);
  const options = await resolveOptions(cli, command, log);
  log.level = logLevelOf(options.v);
  if (await runAndExit(options)) return;
  if (options.source && options.kubeconfig && command.getOptionValueSource('kubeconfig') === 'cli') {
    throw new KipvsError('KIPVS_USAGE', '--source and --kubeconfig: give one source of Services and EndpointSlices');
  }
  // A source that cannot be listed is refused before the node's setup changes anything.
  if (options.source) checkSourcePath(options.source);
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
    // The daemon's own parts (prom-client, the HTTP servers, the observers) load only for it.
    const daemonParts = daemon ? await import('./agent-daemon.js') : undefined;
    const metrics: ProxyMetrics | undefined = daemonParts?.daemonMetrics(node);
    // Served before the first list (see serveHealthAndMetrics).
    if (daemonParts && metrics) servers = daemonParts.serveHealthAndMetrics(options, health, metrics, log);
    // Before the source is read, the node's setup and the first rules: they run iptables tools,
    // and a process forks in time proportional to its memory (under User-Mode Linux hundreds of ms
    // a tool once 1,000 Services are read); none of it depends on the Services. The Node object
    // the source brings can change the rules (NodeCIDR's podCIDRs): then they are written again
    // before the first sync.
    const writeRules = options.dryRun
      ? undefined
      : await prepareNode({
          options: { ...options, conntrack: conntrackConfigOf(options) },
          settings,
          node,
          currentNode: () => liveNode.current,
          log,
        });
    const rulesWritten = writeRules !== undefined && (await writeFirstRules({ netns: options.netns, node, writeRules, log }));
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
        metrics?.recordSourceFailing(failing.length);
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
    if (writeRules === undefined) {
      // --dry-run: the node is left as it is.
      const { plan } = await proxier.plan();
      process.stdout.write(formatPlan(plan, settings.dummyInterface));
      return;
    }
    if (rulesWritten) {
      await writeRules(undefined, { onlyIfChanged: true }).catch((error: unknown) =>
        log.warn({ err: (error as Error).message }, 'iptables rules not written before the first sync; written after it'),
      );
    }
    const names = new ServiceNamesRecorder(serviceNamesPath(options.netns));
    if (options.once) {
      await syncOnce(proxier, writeRules, source, (result) => {
        names.record(result.desired, result.changes.services, cluster);
      });
      return;
    }
    if (daemonParts && metrics && !stopping.signal.aborted) {
      await daemonParts.runDaemon({
        options,
        dummyInterface: settings.dummyInterface,
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
        stopping: stopping.signal,
        source,
      });
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
