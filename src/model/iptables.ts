// kube-proxy IPVS mode's iptables rules as plain data (what translate/iptables-rules.ts builds and
// kernel/iptables.ts applies), and their iptables-restore text, which both the kernel adapter and
// --dry-run comparisons print.
import type { AddressFamily } from '../ip.js';

export type IptablesTable = 'nat' | 'filter';

export interface IptablesChainRef {
  readonly table: IptablesTable;
  readonly chain: string;
}

/** A rule in a built-in chain that jumps to one of ours: `-A PREROUTING -m comment --comment "…" -j KUBE-SERVICES`. */
export interface IptablesJump {
  readonly table: IptablesTable;
  readonly from: string;
  readonly to: string;
  readonly comment: string;
}

/** What kipvs owns in the tables, and the only things cleanup removes. */
export interface IptablesOwnership {
  readonly chains: readonly IptablesChainRef[];
  /** In kube-proxy's order; each is prepended, so the last listed ends up first (EnsureRule(Prepend)). */
  readonly jumps: readonly IptablesJump[];
}

export interface IptablesRuleset extends IptablesOwnership {
  readonly family: AddressFamily;
  /** The `-A` lines of our chains per table, in iptables-restore syntax. */
  readonly rules: Readonly<Record<IptablesTable, readonly string[]>>;
}

export const TABLES: readonly IptablesTable[] = ['nat', 'filter'];

/** The jump's rule spec exactly as iptables-save prints it, so presence is a string comparison. */
export const jumpRuleSpec = (jump: IptablesJump): string => `-m comment --comment "${jump.comment}" -j ${jump.to}`;

/**
 * The restore input: per table, our chains declared (which flushes them under --noflush) and
 * rewritten, then `-I … 1` for each jump to insert (kube-proxy prepends its jumps).
 */
export function renderRestoreInput(ruleset: IptablesRuleset, jumpsToInsert: readonly IptablesJump[]): string {
  const lines: string[] = [];
  for (const table of TABLES) {
    lines.push(`*${table}`);
    for (const { chain } of ruleset.chains.filter((ref) => ref.table === table)) lines.push(`:${chain} - [0:0]`);
    lines.push(...ruleset.rules[table]);
    for (const jump of jumpsToInsert.filter((j) => j.table === table)) lines.push(`-I ${jump.from} 1 ${jumpRuleSpec(jump)}`);
    lines.push('COMMIT');
  }
  return `${lines.join('\n')}\n`;
}
