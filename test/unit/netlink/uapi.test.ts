import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readUapiConstants } from '../support/uapi.js';
import { IpvsCommand, ipvsCommandOrig } from '../../../src/netlink/ipvs/wire.js';

interface FieldLike {
  id: number;
  orig: string;
  kind: string;
  table?: Record<string, FieldLike>;
}

function isField(value: unknown): value is FieldLike {
  return typeof value === 'object' && value !== null && 'orig' in value && 'id' in value && 'kind' in value;
}

function collectFields(table: Record<string, unknown>, path: string, out: Array<[string, FieldLike]>, seen: Set<object>): void {
  if (seen.has(table)) return;
  seen.add(table);
  for (const [name, value] of Object.entries(table)) {
    if (!isField(value)) continue;
    out.push([`${path}.${name}`, value]);
    if (value.table) collectFields(value.table, `${path}.${name}`, out, seen);
  }
}

const srcNetlink = join(import.meta.dirname, '..', '..', '..', 'src', 'netlink');
const wireModules = readdirSync(srcNetlink, { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && existsSync(join(srcNetlink, entry.name, 'wire.ts')))
  .map((entry) => entry.name);

describe('wire constants come from the kernel uapi headers', () => {
  const uapi = readUapiConstants();

  it.each(wireModules)('every attribute of %s/wire.ts has the value of its uapi constant', async (family) => {
    const module = (await import(join(srcNetlink, family, 'wire.ts'))) as Record<string, unknown>;
    const fields: Array<[string, FieldLike]> = [];
    const seen = new Set<object>();
    for (const [exportName, value] of Object.entries(module)) {
      if (typeof value === 'object' && value !== null && !isField(value)) collectFields(value as Record<string, unknown>, exportName, fields, seen);
    }
    expect(fields.length).toBeGreaterThan(0);
    const mismatches = fields
      .filter(([, field]) => uapi.get(field.orig) !== field.id)
      .map(([path, field]) => `${path}: ${field.orig} is ${uapi.get(field.orig)} in the header, ${field.id} in the table`);
    expect(mismatches).toEqual([]);
  });

  it('IPVS commands match linux/ip_vs.h', () => {
    for (const [name, value] of Object.entries(IpvsCommand)) {
      expect(uapi.get(ipvsCommandOrig[name as keyof typeof IpvsCommand]), name).toBe(value);
    }
  });
});
