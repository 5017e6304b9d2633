// Reads constants straight from the kernel's uapi headers (linux-libc-dev), so that tests can check
// every wire constant kipvs uses against the kernel's own definition.
import { existsSync, readFileSync } from 'node:fs';

export const UAPI_HEADERS = [
  '/usr/include/linux/netlink.h',
  '/usr/include/linux/genetlink.h',
  '/usr/include/linux/ip_vs.h',
  '/usr/include/linux/netfilter/nfnetlink.h',
  '/usr/include/linux/netfilter/ipset/ip_set.h',
  '/usr/include/linux/netfilter/ipset/ip_set_hash.h',
  '/usr/include/linux/netfilter/ipset/ip_set_bitmap.h',
  '/usr/include/linux/rtnetlink.h',
  '/usr/include/linux/if_link.h',
  '/usr/include/linux/if_addr.h',
  '/usr/include/linux/if.h',
  '/usr/include/linux/netfilter/nfnetlink_conntrack.h',
];

function evaluate(expression: string, known: Map<string, number>): number | undefined {
  const cleaned = expression.replace(/\b(\d+)U?L{0,2}\b/g, '$1').trim();
  if (cleaned === '') return undefined;
  let unresolved = false;
  const substituted = cleaned.replace(/\b[A-Za-z_]\w*\b/g, (name) => {
    const value = known.get(name);
    if (value === undefined) unresolved = true;
    return String(value);
  });
  if (unresolved || !/^[\d\s()+\-*|&<>~x a-fA-F]+$/.test(substituted)) return undefined;
  try {
    const value = Function(`"use strict"; return (${substituted});`)() as unknown;
    return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Every `#define NAME number-expression` and every enumerator of the given headers. */
export function readUapiConstants(headers: readonly string[] = UAPI_HEADERS): Map<string, number> {
  const known = new Map<string, number>();
  for (const header of headers) {
    if (!existsSync(header)) {
      throw new Error(`${header} is missing: install linux-libc-dev (the kernel's uapi headers) to check wire constants`);
    }
    const text = readFileSync(header, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
    for (const match of text.matchAll(/^#define\s+([A-Za-z_]\w*)\s+(.+)$/gm)) {
      const value = evaluate(match[2]!, known);
      if (value !== undefined) known.set(match[1]!, value);
    }
    for (const match of text.matchAll(/enum\s*\w*\s*\{([^}]*)\}/g)) {
      let next = 0;
      // Enum bodies interleave preprocessor lines (`#define IFLA_COST IFLA_COST`): drop them.
      for (const entry of match[1]!.replace(/^\s*#.*$/gm, '').split(',')) {
        const [name, expression] = entry.split('=').map((part) => part.trim());
        if (!name || !/^[A-Za-z_]\w*$/.test(name)) continue;
        const value = expression === undefined ? next : evaluate(expression, known);
        if (value === undefined) continue;
        known.set(name, value);
        next = value + 1;
      }
    }
  }
  return known;
}
