// Canonical address text: what the kernel prints back, and the keys kipvs compares with it.
import { describe, expect, it } from 'vitest';
import { canonicalAddress } from '../../src/ip.js';

describe('canonical addresses', () => {
  it('keeps IPv4 dotted decimal as it is, and refuses what node does not take as IPv4 (leading zeros, spaces)', () => {
    for (const address of ['10.244.1.2', '0.0.0.0', '255.255.255.255']) expect(canonicalAddress(address)).toBe(address);
    for (const address of ['010.0.0.1', '1.2.3.04', ' 1.2.3.4', '1.2.3', '256.1.1.1', 'node-a']) expect(canonicalAddress(address)).toBeUndefined();
  });

  it('writes IPv6 as inet_ntop does: lower case, no leading zeros, the longest run of zero groups compressed', () => {
    expect(canonicalAddress('2001:0DB8:0000:0000:0000:0000:0000:0001')).toBe('2001:db8::1');
    expect(canonicalAddress('2001:db8:0:1:0:0:0:1')).toBe('2001:db8:0:1::1');
    expect(canonicalAddress('::ffff:192.0.2.1')).toBe('::ffff:192.0.2.1');
    expect(canonicalAddress('fe80::1%eth0')).toBe('fe80::1');
  });
});
