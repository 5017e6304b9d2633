// The set members compared with the expectation as they are decoded, held to the plain keyed read
// (every member read, by ipsetEntryKey()): the same keys, each with the expectation's entry where it
// holds that key and the member read elsewhere, and the expectation's own map exactly when the kernel
// holds its members, no more and no fewer.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ExpectedSetMembers, keyedPaced } from '../../../src/kernel/ipset-assisted-read.js';
import { ipsetEntryKey } from '../../../src/model/desired.js';
import type { IpPortEntry, IpsetEntry } from '../../../src/netlink/ipset/types.js';

const member = (i: number, comment?: string): IpPortEntry => ({ ip: `10.0.0.${i}`, protocol: 'tcp', port: 80, ...(comment ? { comment } : {}) });

async function compared(kernel: readonly IpsetEntry[], held: ReadonlyMap<string, IpsetEntry>): Promise<ReadonlyMap<string, IpsetEntry>> {
  const members = new ExpectedSetMembers(held);
  for (const entry of kernel) members.add(entry);
  return members.entries();
}

describe('ExpectedSetMembers', () => {
  it('equals the plain read in keys, with the expectation’s entries where it holds them, and is the expectation itself exactly when the members agree', async () => {
    const indexes = fc.uniqueArray(fc.integer({ min: 1, max: 30 }), { maxLength: 20 });
    await fc.assert(
      fc.asyncProperty(indexes, indexes, fc.boolean(), async (inKernel, expected, commented) => {
        // The kernel's members may carry a comment the expectation lacks: not part of the key.
        const kernel = inKernel.map((i) => member(i, commented ? 'kube-proxy' : undefined));
        const held = await keyedPaced(expected.map((i) => member(i)));
        const read = await compared(kernel, held);
        const plain = await keyedPaced(kernel);
        expect([...read.keys()]).toEqual([...plain.keys()]);
        for (const [key, entry] of read) expect(entry).toBe(held.get(key) ?? plain.get(key));
        const same = plain.size === held.size && [...plain.keys()].every((key) => held.has(key));
        expect(read === held).toBe(same);
      }),
    );
  });

  it('does not take the expectation whole when a sync changed its size during the read', async () => {
    const held = new Map<string, IpsetEntry>([member(1), member(2)].map((entry) => [ipsetEntryKey(entry), entry]));
    const members = new ExpectedSetMembers(held);
    members.add(member(1));
    held.delete(ipsetEntryKey(member(2))); // a sync removed it meanwhile; the kernel read had not reached it
    const read = await members.entries();
    expect(read).not.toBe(held);
    expect([...read.keys()]).toEqual([ipsetEntryKey(member(1))]);
  });
});
