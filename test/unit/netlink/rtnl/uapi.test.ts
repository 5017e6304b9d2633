// Every rtnetlink constant and attribute id we use, against the kernel's uapi headers: a C
// program prints each by its `orig` name, so a typo in a name or a value fails here, not in the kernel.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AttrTable } from '../../../../src/netlink/attributes.js';
import { addressAttributes, linkAttributes, uapiConstants } from '../../../../src/netlink/rtnl/wire.js';

function tableEntries(table: AttrTable): Array<[string, number]> {
  return Object.values(table).flatMap((field) => [
    [field.orig, field.id] as [string, number],
    ...(field.kind === 'nested' ? tableEntries(field.table) : []),
  ]);
}

/** The values the installed headers give these names, compiled and run with the system's cc. */
function headerValues(names: readonly string[]): Map<string, number> {
  const dir = mkdtempSync(join(tmpdir(), 'kipvs-uapi-'));
  try {
    const source = [
      '#include <stdio.h>',
      '#include <sys/socket.h>',
      '#include <linux/if.h>',
      '#include <linux/if_addr.h>',
      '#include <linux/if_link.h>',
      '#include <linux/rtnetlink.h>',
      'int main(void) {',
      ...names.map((name) => `  printf("%s %lld\\n", "${name}", (long long)(${name}));`),
      '  return 0;',
      '}',
    ].join('\n');
    writeFileSync(join(dir, 'uapi.c'), source);
    execFileSync('cc', ['-o', join(dir, 'uapi'), join(dir, 'uapi.c')], { stdio: ['ignore', 'ignore', 'pipe'] });
    const output = execFileSync(join(dir, 'uapi'), { encoding: 'utf8' });
    return new Map(output.trim().split('\n').map((line) => {
      const [name, value] = line.split(' ') as [string, string];
      return [name, Number(value)];
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('rtnetlink constants', () => {
  it('match linux/rtnetlink.h, if_link.h, if_addr.h and if.h', () => {
    const ours = new Map<string, number>([
      ...Object.entries(uapiConstants),
      ...tableEntries(linkAttributes),
      ...tableEntries(addressAttributes),
    ]);
    const headers = headerValues([...ours.keys()]);
    expect(Object.fromEntries(headers)).toEqual(Object.fromEntries(ours));
  });
});
