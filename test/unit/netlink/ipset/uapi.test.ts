// The ipset constants that are not attribute tables (those are checked for every family by
// test/unit/netlink/uapi.test.ts): commands, errors, flags, families, protocol numbers.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readUapiConstants, UAPI_HEADERS } from '../../support/uapi.js';
import * as wire from '../../../../src/netlink/ipset/wire.js';

const uapi = readUapiConstants([...UAPI_HEADERS, '/usr/include/linux/netfilter.h']);

describe('ipset constants come from the kernel uapi headers', () => {
  it('commands match enum ipset_cmd', () => {
    for (const [name, value] of Object.entries(wire.IpsetCommand)) {
      expect(uapi.get(wire.ipsetCommandOrig[name as keyof typeof wire.IpsetCommand]), name).toBe(value);
    }
  });

  it('exported constants named after a uapi constant have its value', () => {
    const named = Object.entries(wire).filter(([name, value]) => typeof value === 'number' && /^[A-Z][A-Z0-9_]+$/.test(name));
    expect(named.length).toBeGreaterThan(20);
    const mismatches = named
      .filter(([name]) => name !== 'NFGENMSG_LENGTH' && !name.startsWith('IPPROTO_'))
      .filter(([name, value]) => uapi.get(name) !== value)
      .map(([name, value]) => `${name}: ${String(value)} here, ${String(uapi.get(name))} in the header`);
    expect(mismatches).toEqual([]);
  });

  it('protocol numbers match linux/in.h', () => {
    const inH = readFileSync('/usr/include/linux/in.h', 'utf8');
    for (const name of ['IPPROTO_TCP', 'IPPROTO_UDP', 'IPPROTO_SCTP'] as const) {
      expect(Number(new RegExp(`\\b${name}\\s*=\\s*(\\d+)`).exec(inH)?.[1]), name).toBe(wire[name]);
    }
  });

  it('error names cover enum ipset_errno and the hash and bitmap type-specific errors, in order', () => {
    const common = [...uapi].filter(([name, value]) => name.startsWith('IPSET_ERR_') && value >= 4096 && value < 4352);
    expect(common.length).toBe(wire.ipsetCommonErrors.length);
    wire.ipsetCommonErrors.forEach((name, offset) => expect(uapi.get(name), name).toBe(wire.IPSET_ERR_PRIVATE + offset));
    wire.ipsetHashErrors.forEach((name, offset) => expect(uapi.get(name), name).toBe(wire.IPSET_ERR_TYPE_SPECIFIC + offset));
    wire.ipsetBitmapErrors.forEach((name, offset) => expect(uapi.get(name), name).toBe(wire.IPSET_ERR_TYPE_SPECIFIC + offset));
    const specific = [...uapi].filter(([name, value]) => name.startsWith('IPSET_ERR_') && value >= 4352 && name !== 'IPSET_ERR_TYPE_SPECIFIC');
    expect(specific.map(([name]) => name).sort()).toEqual([...wire.ipsetHashErrors, ...wire.ipsetBitmapErrors].sort());
  });
});
