// What the agent sets on the node before its first sync, once: IPVS connection timeouts, the
// sysctls IPVS needs (logged, as kube-proxy does), and the iptables backend its rules go through.
import { release } from 'node:os';
import type { Logger } from 'pino';
import { IpvsClient } from '../netlink/ipvs/client.js';
import { applyIptablesRules, detectIptablesBackend, hasRandomFully } from '../kernel/iptables.js';
import { ensureIpvsSysctls } from '../kernel/sysctl.js';
import { buildIptablesRules } from '../translate/iptables-rules.js';
import type { NodeFacts, ProxySettings } from '../model/settings.js';

/** Writes kube-proxy's IPVS-mode chains and rules for every family of the node. */
export type RulesWriter = () => Promise<void>;

/** The agent options node setup reads (kube-proxy's flags of the same names; durations in milliseconds). */
export interface NodeSetupOptions {
  readonly netns?: string | undefined;
  readonly ipvsTcpTimeout: number;
  readonly ipvsTcpfinTimeout: number;
  readonly ipvsUdpTimeout: number;
  readonly ipvsStrictArp: boolean;
  readonly iptablesMasqueradeBit: number;
}

export interface NodeSetup {
  readonly options: NodeSetupOptions;
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
  // The rules reference kube-proxy's ipsets, which the first sync creates: written after it.
  return async () => {
    for (const family of node.families) {
      const rules = buildIptablesRules(settings, { family, masqueradeMark: 2 ** options.iptablesMasqueradeBit, masqueradeRandomFully: randomFully });
      const result = await applyIptablesRules(rules, { netns: options.netns, backend: backend.mode });
      if (result.insertedJumps.length > 0) log.info({ family, rules: result.ruleCount, insertedJumps: result.insertedJumps.length }, 'iptables rules written');
    }
  };
}
