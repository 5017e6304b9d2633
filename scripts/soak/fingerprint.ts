// What a node namespace holds, read with the C tools (an oracle independent of kipvs's netlink
// code), as sorted lines that two namespaces can be compared by: `ipvsadm -Sn`, `ipset save`
// (its create lines without the random initval and the growing hash size), the addresses and
// links, and `iptables-legacy-save` without counters.
import type { TestNetns } from '../lab/netns.js';

export function kernelLines(ns: TestNetns): string[] {
  const lines: string[] = [];
  for (const line of ns.run('ipvsadm', ['-Sn']).split('\n')) if (line) lines.push(`ipvs ${line}`);
  for (const line of ns.run('ipset', ['save']).split('\n')) {
    if (line) lines.push(`ipset ${line.replace(/ initval 0x[0-9a-f]+/, '').replace(/ hashsize \d+/, '')}`);
  }
  for (const line of ns.run('ip', ['-o', 'address', 'show']).split('\n')) {
    const match = /^\d+:\s+(\S+)\s+(inet6?) (\S+)/.exec(line);
    if (match && !match[3]?.startsWith('fe80:')) lines.push(`address ${match[1] ?? ''} ${match[3] ?? ''}`);
  }
  for (const line of ns.run('ip', ['-o', 'link', 'show']).split('\n')) {
    const match = /^\d+:\s+([^:@]+)[:@].*?link\/(\S+)/.exec(line);
    if (match) lines.push(`link ${match[1] ?? ''} ${match[2] ?? ''}`);
  }
  for (const table of ['nat', 'filter', 'mangle']) {
    for (const line of ns.run('iptables-legacy-save', ['-t', table]).split('\n')) {
      if (!line || line.startsWith('#')) continue;
      lines.push(`iptables ${table} ${line.replace(/ \[\d+:\d+\]$/, '')}`);
    }
  }
  return lines.sort();
}

export interface FingerprintDifference {
  /** Lines the namespace holds that the reference does not. */
  readonly orphans: readonly string[];
  /** Lines the reference holds that the namespace lacks. */
  readonly missing: readonly string[];
}

export function compareKernels(ns: readonly string[], reference: readonly string[]): FingerprintDifference {
  const have = new Set(ns);
  const want = new Set(reference);
  return { orphans: ns.filter((line) => !want.has(line)), missing: reference.filter((line) => !have.has(line)) };
}
