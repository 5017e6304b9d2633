// What the agent sets on the node before its first sync, once: IPVS connection timeouts, the
// sysctls IPVS needs (logged, as kube-proxy does), and the iptables backend its rules go through.
import { cpus, release } from 'node:os';
import type { Logger } from 'pino';
import { IpvsClient } from '../netlink/ipvs/client.js';
import { applyIptablesRules, detectIptablesBackend, hasRandomFully } from '../kernel/iptables.js';
import { ensureConntrackSysctls, ensureIpvsSysctls } from '../kernel/sysctl.js';
import { buildIptablesRules, iptablesRestoreInput, lbNoNodeAccess as lbNoNodeAccessOf } from '../translate/iptables-rules.js';
import type { DesiredState } from '../model/desired.js';
import type { NodeFacts, ProxySettings } from '../model/settings.js';
import { conntrackConfigOf, type AgentOptions } from '../cli/agent-options.js';

/**
 * Writes kube-proxy's IPVS-mode chains and rules for every family of the node; `desired` fills
 * KUBE-IPVS-OUT-FILTER. With onlyIfChanged, a family whose text is what was last written is skipped.
 */
export type RulesWriter = (desired?: DesiredState, options?: { readonly onlyIfChanged?: boolean }) => Promise<void>;

export interface NodeSetup {
  readonly options: AgentOptions;
  readonly settings: ProxySettings;
  readonly node: NodeFacts;
  readonly log: Logger;
}

export async function prepareNode({ options, settings, node, log }: NodeSetup): Promise<RulesWriter> {
  const netns = options.netns ? { netns: options.netns } : {};
  if (options.ipvsTcpTimeout || options.ipvsTcpfinTimeout || options.ipvsUdpTimeout) {
    const ipvs = await IpvsClient.open(netns);
    try {
      await ipvs.setTimeouts({ tcp: options.ipvsTcpTimeout / 1000, tcpFin: options.ipvsTcpfinTimeout / 1000, udp: options.ipvsUdpTimeout / 1000 });
    } finally {
      ipvs.close();
    }
  }
  const backend = await detectIptablesBackend(netns);
  const randomFully = await hasRandomFully(backend.mode, netns);
  log.info({ backend: backend.mode, reason: backend.reason, randomFully }, 'iptables backend');
  const { changes, skipped } = ensureIpvsSysctls({ strictArp: options.ipvsStrictArp, kernelRelease: release(), netns: options.netns });
  for (const change of changes) log.info({ sysctl: change.name, from: change.old, to: change.new }, 'set sysctl');
  for (const skip of skipped) log.info({ sysctl: skip.name, reason: skip.reason }, 'left sysctl as is');
  const conntrack = ensureConntrackSysctls(conntrackConfigOf(options), { netns: options.netns, cpus: cpus().length });
  for (const change of conntrack.changes) log.info({ sysctl: change.name, from: change.old, to: change.new }, 'set conntrack sysctl');
  for (const skip of conntrack.skipped) log.warn({ sysctl: skip.name, reason: skip.reason }, 'left conntrack sysctl as is');
  // The rules reference kube-proxy's ipsets, which the first sync creates: written after it.
  const written = new Map<string, string>();
  return async (desired, { onlyIfChanged = false } = {}) => {
    for (const family of node.families) {
      const lbNoNodeAccess = desired ? lbNoNodeAccessOf(desired.ipsets, family) : [];
      const rules = buildIptablesRules(settings, {
        family, masqueradeMark: 2 ** options.iptablesMasqueradeBit, masqueradeRandomFully: randomFully, nodePodCidrs: node.podCIDRs, lbNoNodeAccess,
      });
      const text = iptablesRestoreInput(rules);
      if (onlyIfChanged && written.get(family) === text) continue;
      written.set(family, text);
      const result = await applyIptablesRules(rules, { netns: options.netns, backend: backend.mode });
      if (result.insertedJumps.length > 0) log.info({ family, rules: result.ruleCount, insertedJumps: result.insertedJumps.length }, 'iptables rules written');
    }
  };
}
