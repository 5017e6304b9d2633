// What the agent sets on the node before its first sync, once: IPVS connection timeouts, the
// sysctls IPVS needs (logged, as kube-proxy does), and the iptables backend its rules go through.
import { cpus, release } from 'node:os';
import type { Logger } from 'pino';
import { IpvsClient } from '../netlink/ipvs/client.js';
import { IpsetClient } from '../netlink/ipset/client.js';
import { KernelUnsupportedError, NetlinkRequestError } from '../netlink/errors.js';
import { emptyIpsets } from '../translate/merge.js';
import { applyIptablesRules, detectIptables } from '../kernel/iptables.js';
import { ensureConntrackSysctls, ensureIpvsSysctls, type ConntrackConfig } from '../kernel/sysctl.js';
import { buildIptablesRules, iptablesRestoreInput, lbNoNodeAccess as lbNoNodeAccessOf } from '../translate/iptables-rules.js';
import type { DesiredState } from '../model/desired.js';
import type { NodeFacts, ProxySettings } from '../model/settings.js';

/**
 * Writes kube-proxy's IPVS-mode chains and rules for every family of the node; `desired` fills
 * KUBE-IPVS-OUT-FILTER. With onlyIfChanged, a family whose text is what was last written is skipped.
 */
export type RulesWriter = (desired?: DesiredState, options?: { readonly onlyIfChanged?: boolean }) => Promise<void>;

/** The agent options node setup reads (kube-proxy's flags of the same names; durations in milliseconds). */
export interface NodeSetupOptions {
  readonly netns?: string | undefined;
  readonly ipvsTcpTimeout: number;
  readonly ipvsTcpfinTimeout: number;
  readonly ipvsUdpTimeout: number;
  readonly ipvsStrictArp: boolean;
  readonly iptablesMasqueradeBit: number;
  /** kube-proxy's conntrack settings (sizing, timeouts, be_liberal), resolved by the CLI. */
  readonly conntrack: ConntrackConfig;
}

export interface NodeSetup {
  readonly options: NodeSetupOptions;
  readonly settings: ProxySettings;
  readonly node: NodeFacts;
  /** The node as it is now: NodeCIDR detect-local follows the Node's podCIDRs (set after start on a new node). */
  readonly currentNode?: () => NodeFacts;
  readonly log: Logger;
}

export async function prepareNode({ options, settings, node, currentNode, log }: NodeSetup): Promise<RulesWriter> {
  const netns = options.netns ? { netns: options.netns } : {};
  const ipvs = await IpvsClient.open(netns);
  try {
    await checkScheduler(ipvs, settings.scheduler);
    if (options.ipvsTcpTimeout || options.ipvsTcpfinTimeout || options.ipvsUdpTimeout) {
      await ipvs.setTimeouts({ tcp: options.ipvsTcpTimeout / 1000, tcpFin: options.ipvsTcpfinTimeout / 1000, udp: options.ipvsUdpTimeout / 1000 });
    }
  } finally {
    ipvs.close();
  }
  const { backend, randomFully } = await detectIptables(netns);
  log.info({ backend: backend.mode, reason: backend.reason, randomFully }, 'iptables backend');
  const { changes, skipped } = ensureIpvsSysctls({ strictArp: options.ipvsStrictArp, kernelRelease: release(), netns: options.netns });
  for (const change of changes) log.info({ sysctl: change.name, from: change.old, to: change.new }, 'set sysctl');
  for (const skip of skipped) log.info({ sysctl: skip.name, reason: skip.reason }, 'left sysctl as is');
  const conntrack = ensureConntrackSysctls(options.conntrack, { netns: options.netns, cpus: cpus().length });
  for (const change of conntrack.changes) log.info({ sysctl: change.name, from: change.old, to: change.new }, 'set conntrack sysctl');
  for (const skip of conntrack.skipped) log.warn({ sysctl: skip.name, reason: skip.reason }, 'left conntrack sysctl as is');
  const written = new Map<string, string>();
  const writeRules: RulesWriter = async (desired, { onlyIfChanged = false } = {}) => {
    for (const family of node.families) {
      const lbNoNodeAccess = desired ? lbNoNodeAccessOf(desired.ipsets, family) : [];
      const rules = buildIptablesRules(settings, {
        family,
        masqueradeMark: 2 ** options.iptablesMasqueradeBit,
        masqueradeRandomFully: randomFully,
        nodePodCidrs: (currentNode?.() ?? node).podCIDRs,
        lbNoNodeAccess,
      });
      const text = iptablesRestoreInput(rules);
      if (onlyIfChanged && written.get(family) === text) continue;
      const result = await applyIptablesRules(rules, { netns: options.netns, backend: backend.mode });
      written.set(family, text); // only once written: a failed write is tried again by the next
      if (result.insertedJumps.length > 0) log.info({ family, rules: result.ruleCount, insertedJumps: result.insertedJumps.length }, 'iptables rules written');
    }
  };
  return writeRules;
}

/**
 * On a new node the masquerade and filter rules must be in place before the first virtual server
 * answers (kube-proxy #133773: without them the first connections to a ClusterIP go out
 * unmasqueraded): the sets they name are made now, the rules written, and only then the first
 * sync runs. A set that cannot be made yet (one of the wrong type, which the sync replaces) leaves
 * the rules to be written right after the first sync, as every sync retries: then false.
 */
export async function writeFirstRules({
  netns,
  node,
  writeRules,
  log,
}: {
  netns?: string | undefined;
  node: NodeFacts;
  writeRules: RulesWriter;
  log: Logger;
}): Promise<boolean> {
  const setsMade = await ensureKubeIpsets(netns, node, log);
  if (!setsMade) return false;
  await writeRules().catch((error: unknown) =>
    log.warn({ err: (error as Error).message }, 'iptables rules not written before the first sync; written after it'),
  );
  return true;
}

/**
 * The scheduler every Service without its own gets must be in the kernel, or no Service works:
 * checked before the first sync as kube-proxy's CanUseIPVSProxier() (pkg/proxy/ipvs) checks it:
 * a virtual server already using it proves it; else
 * a probe virtual server on 198.51.100.0:20000 (TEST-NET-2, kube-proxy's own choice) is added and
 * removed, which also has the kernel load the scheduler's module.
 */
async function checkScheduler(ipvs: IpvsClient, scheduler: string): Promise<void> {
  if ((await ipvs.listServices({ withStats: false })).some((service) => service.scheduler === scheduler)) return;
  const key = { family: 'inet' as const, protocol: 'TCP' as const, address: '198.51.100.0', port: 20000 };
  const [added] = await ipvs.apply([{ op: 'addService', service: { key, scheduler, flags: 0, timeout: 0, netmask: 32 } }]);
  if (added && !added.ok) {
    const error = added.error;
    if (error instanceof NetlinkRequestError && error.errnoName === 'ENOENT') {
      throw new KernelUnsupportedError(
        `scheduler ${scheduler} is not in this kernel: module ip_vs_${scheduler} is missing or cannot be loaded (modprobe ip_vs_${scheduler}; --scheduler names one that is)`,
      );
    }
    if (!(error instanceof NetlinkRequestError && error.errnoName === 'EEXIST')) throw error;
  }
  await ipvs.applyAll([{ op: 'deleteService', key }]);
}

/** Creates kube-proxy's sets for the node's families (an identical one is kept); false when one could not be made. */
async function ensureKubeIpsets(netns: string | undefined, node: NodeFacts, log: Logger): Promise<boolean> {
  const client = await IpsetClient.open(netns ? { netns } : {});
  let all = true;
  try {
    for (const set of emptyIpsets(node).values()) {
      await client.create(set.name, set.spec).catch((error: unknown) => {
        all = false;
        log.warn({ set: set.name, err: (error as Error).message }, 'ipset not made before the first sync');
      });
    }
  } finally {
    client.close();
  }
  return all;
}
