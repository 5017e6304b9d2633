// Every wire constant of every netlink family (src/netlink/*/wire.ts) against the kernel's uapi
// headers, compiled with the system's cc: each attribute's `orig`, each `*Orig` name map (commands),
// each `uapiConstants` map, and each exported constant named after a uapi constant. A misspelt
// name fails here as "not in the headers", a wrong value with both values, before any kernel sees it.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as ipset from '../../../src/netlink/ipset/wire.js';
import { readUapiValues, uapiIdentifiers } from '../support/uapi.js';
import { defined } from '../../support/defined.js';

type WireModule = Readonly<Record<string, unknown>>;

/** One value of ours and the C expression that gives the kernel's. */
interface Expectation {
  readonly where: string;
  readonly expression: string;
  readonly value: number | string;
}

interface FieldLike {
  readonly id: number;
  readonly orig: string;
  readonly kind: string;
  readonly table?: Readonly<Record<string, unknown>>;
}

const isObject = (value: unknown): value is Readonly<Record<string, unknown>> => typeof value === 'object' && value !== null;
const isField = (value: unknown): value is FieldLike =>
  isObject(value) && typeof value.orig === 'string' && typeof value.id === 'number' && typeof value.kind === 'string';

/** Every attribute of every exported table, nested tables included: `orig` has the value `id`. */
function attributeExpectations(module: WireModule): Expectation[] {
  const out: Expectation[] = [];
  const seen = new Set<object>();
  const walk = (path: string, value: unknown): void => {
    if (!isObject(value) || seen.has(value)) return;
    seen.add(value);
    if (isField(value)) {
      out.push({ where: path, expression: value.orig, value: value.id });
      if (value.table) for (const [name, field] of Object.entries(value.table)) if (isField(field)) walk(`${path}.${name}`, field);
      return;
    }
    for (const [name, field] of Object.entries(value)) if (isField(field)) walk(`${path}.${name}`, field);
  };
  for (const [name, value] of Object.entries(module)) walk(name, value);
  return out;
}

/**
 * Exported constants named like a uapi constant (`IPSET_PROTOCOL`, `IFF_UP`, `IPVS_GENL_NAME`) have
 * its value; `FOOMSG_LENGTH` is the size of `struct foomsg`, the family header it measures.
 */
function namedConstantExpectations(module: WireModule): Expectation[] {
  return Object.entries(module).flatMap(([name, value]): Expectation[] => {
    if ((typeof value !== 'number' && typeof value !== 'string') || !/^[A-Z][A-Z0-9_]+$/.test(name)) return [];
    const struct = /^([A-Z0-9]+)_LENGTH$/.exec(name)?.[1];
    return [{ where: name, expression: struct ? `sizeof(struct ${struct.toLowerCase()})` : name, value }];
  });
}

/** `uapiConstants` maps: each name has the value it is paired with. */
function uapiConstantsExpectations(module: WireModule): Expectation[] {
  const map = module.uapiConstants;
  if (map === undefined) return [];
  if (!isObject(map)) throw new Error('uapiConstants is not a map of names to values');
  return Object.entries(map).map(([name, value]) => ({ where: `uapiConstants.${name}`, expression: name, value: value as number }));
}

/**
 * `fooOrig` name maps pair each key of the export `Foo` (IpvsCommand, IpsetCommand) with its uapi
 * name: every key has a name, every name a key, and the name has the key's value.
 */
function origMapExpectations(module: WireModule): { expectations: Expectation[]; problems: string[] } {
  const expectations: Expectation[] = [];
  const problems: string[] = [];
  for (const [mapName, names] of Object.entries(module)) {
    if (!mapName.endsWith('Orig') || !isObject(names)) continue;
    const base = mapName.slice(0, -'Orig'.length).toLowerCase();
    const companionName = Object.keys(module).find((name) => name !== mapName && name.toLowerCase() === base);
    const companion = companionName === undefined ? undefined : module[companionName];
    if (!companionName || !isObject(companion)) {
      problems.push(`${mapName} names the keys of no export (expected one called ${base}, in any case)`);
      continue;
    }
    for (const key of Object.keys(companion)) if (!(key in names)) problems.push(`${companionName}.${key} has no uapi name in ${mapName}`);
    for (const [key, orig] of Object.entries(names)) {
      if (!(key in companion)) problems.push(`${mapName}.${key} names a key ${companionName} does not have`);
      else expectations.push({ where: `${companionName}.${key}`, expression: String(orig), value: companion[key] as number });
    }
  }
  return { expectations, problems };
}

const srcNetlink = join(import.meta.dirname, '..', '..', '..', 'src', 'netlink');
const families = readdirSync(srcNetlink, { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && existsSync(join(srcNetlink, entry.name, 'wire.ts')))
  .map((entry) => entry.name)
  .sort();
const modules = new Map<string, WireModule>(
  await Promise.all(families.map(async (family) => [family, (await import(join(srcNetlink, family, 'wire.ts'))) as WireModule] as const)),
);

const checks = new Map(
  [...modules].map(([family, module]) => {
    const origMaps = origMapExpectations(module);
    return [
      family,
      {
        attributes: attributeExpectations(module),
        named: namedConstantExpectations(module),
        maps: [...uapiConstantsExpectations(module), ...origMaps.expectations],
        mapProblems: origMaps.problems,
      },
    ];
  }),
);

/** The headers enum ipset_errno and the hash and bitmap type-specific errors come from. */
const IPSET_ERROR_HEADERS = ['linux/netfilter/ipset/ip_set.h', 'linux/netfilter/ipset/ip_set_hash.h', 'linux/netfilter/ipset/ip_set_bitmap.h'];
const ipsetErrorNames = uapiIdentifiers('IPSET_ERR_', IPSET_ERROR_HEADERS);

// One compilation for every value of every family.
const uapi = readUapiValues([
  ...[...checks.values()].flatMap((check) => [...check.attributes, ...check.named, ...check.maps].map((expectation) => expectation.expression)),
  ...ipsetErrorNames,
]);

function mismatches(family: string, expectations: readonly Expectation[]): string[] {
  return expectations.flatMap(({ where, expression, value }) => {
    const unknown = uapi.unknown.get(expression);
    if (unknown !== undefined) return [`${family}/wire.ts ${where}: ${expression} is not in the headers (${unknown})`];
    const theirs = uapi.values.get(expression);
    return theirs === value ? [] : [`${family}/wire.ts ${where}: ${expression} is ${String(theirs)} in the headers, ${String(value)} here`];
  });
}

describe('wire constants come from the kernel uapi headers', () => {
  it('finds the wire tables of every family', () => {
    expect(families).toEqual(expect.arrayContaining(['ipset', 'ipvs', 'rtnl']));
  });

  describe.each(families)('%s/wire.ts', (family) => {
    const check = defined(checks.get(family), `the checks of ${family}`);

    it('every attribute of every table has the value of its uapi constant', () => {
      expect(check.attributes.length).toBeGreaterThan(0);
      expect(mismatches(family, check.attributes)).toEqual([]);
    });

    it('every exported constant named after a uapi constant has its value, a *MSG_LENGTH the size of its struct', () => {
      expect(check.named.length).toBeGreaterThan(0);
      expect(mismatches(family, check.named)).toEqual([]);
    });

    it('every name of its *Orig and uapiConstants maps has the value it is paired with', () => {
      expect(check.mapProblems).toEqual([]);
      expect(mismatches(family, check.maps)).toEqual([]);
    });
  });

  it('checks the commands of IPVS and ipset, the rtnetlink constants, and more than 20 ipset constants', () => {
    const expressions = (family: string): string[] => {
      const check = defined(checks.get(family), `the checks of ${family}`);
      return [...check.maps, ...check.named].map((e) => e.expression);
    };
    expect(expressions('ipvs')).toEqual(expect.arrayContaining(['IPVS_CMD_NEW_SERVICE', 'IPVS_CMD_FLUSH', 'IPVS_GENL_NAME']));
    expect(expressions('ipset')).toEqual(expect.arrayContaining(['IPSET_CMD_PROTOCOL', 'IPSET_CMD_TYPE', 'IPPROTO_SCTP', 'sizeof(struct nfgenmsg)']));
    expect(expressions('rtnl')).toEqual(expect.arrayContaining(['RTM_NEWLINK', 'IFA_F_NOPREFIXROUTE', 'sizeof(struct ifinfomsg)']));
    expect(checks.get('ipset')?.named.length).toBeGreaterThan(20);
  });

  it('ipset error names cover enum ipset_errno and the hash and bitmap type-specific errors, in order', () => {
    const value = (name: string): number => uapi.values.get(name) as number;
    const common = ipsetErrorNames.filter((name) => value(name) >= ipset.IPSET_ERR_PRIVATE && value(name) < ipset.IPSET_ERR_TYPE_SPECIFIC);
    expect(common).toHaveLength(ipset.ipsetCommonErrors.length);
    ipset.ipsetCommonErrors.forEach((name, offset) => {
      expect(value(name), name).toBe(ipset.IPSET_ERR_PRIVATE + offset);
    });
    ipset.ipsetHashErrors.forEach((name, offset) => {
      expect(value(name), name).toBe(ipset.IPSET_ERR_TYPE_SPECIFIC + offset);
    });
    ipset.ipsetBitmapErrors.forEach((name, offset) => {
      expect(value(name), name).toBe(ipset.IPSET_ERR_TYPE_SPECIFIC + offset);
    });
    const specific = ipsetErrorNames.filter((name) => value(name) >= ipset.IPSET_ERR_TYPE_SPECIFIC && name !== 'IPSET_ERR_TYPE_SPECIFIC');
    expect(specific.sort()).toEqual([...ipset.ipsetHashErrors, ...ipset.ipsetBitmapErrors].sort());
  });
});
