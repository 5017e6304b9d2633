// formatEntry prints what `ipset list` prints for a member; the expected lines below are the
// tool's own output (ipset 7.17), and the kernel tests compare against the tool directly.
import { describe, expect, it } from 'vitest';
import { describeEntryOperation, entrySetType, formatEntry, formatNet, type IpsetEntry } from '../../../../src/netlink/ipset/types.js';

describe('formatEntry', () => {
  it.each([
    [{ ip: '10.0.0.1' }, '10.0.0.1'],
    [{ ip: '10.0.0.1', comment: 'x y' }, '10.0.0.1 comment "x y"'],
    [{ ip: '10.0.0.1', protocol: 'udp', port: 53, comment: 'x' }, '10.0.0.1,udp:53 comment "x"'],
    [{ ip: '2001:db8::1', protocol: 'sctp', port: 80 }, '2001:db8::1,sctp:80'],
    [{ ip: '10.0.0.1', protocol: 'tcp', port: 80, ip2: '10.0.0.1' }, '10.0.0.1,tcp:80,10.0.0.1'],
    [{ ip: '10.0.0.1', protocol: 'tcp', port: 80, net: { address: '10.1.0.0', prefix: 16 } }, '10.0.0.1,tcp:80,10.1.0.0/16'],
    [{ ip: '10.0.0.1', protocol: 'tcp', port: 80, net: { address: '10.2.0.1', prefix: 32 } }, '10.0.0.1,tcp:80,10.2.0.1'],
    [{ net: { address: '10.0.0.0', prefix: 24 } }, '10.0.0.0/24'],
    [{ net: { address: '2001:db8::', prefix: 32 } }, '2001:db8::/32'],
    [{ net: { address: '2001:db8::1', prefix: 128 } }, '2001:db8::1'],
    [{ port: 80, comment: 'http' }, '80 comment "http"'],
    [{ ip: '2001:DB8:0:0:0:0:0:1' }, '2001:db8::1'],
    [{ ip: '10.0.0.1', comment: '' }, '10.0.0.1'],
  ] as Array<[IpsetEntry, string]>)('%j prints as %s', (entry, line) => {
    expect(formatEntry(entry)).toBe(line);
  });

  it('prints a host network bare and any other with its prefix', () => {
    expect(formatNet({ address: '10.0.0.1', prefix: 32 })).toBe('10.0.0.1');
    expect(formatNet({ address: '0.0.0.0', prefix: 0 })).toBe('0.0.0.0/0');
  });
});

describe('entry shapes', () => {
  it.each([
    [{ ip: '10.0.0.1' }, 'hash:ip'],
    [{ ip: '10.0.0.1', protocol: 'tcp', port: 1 }, 'hash:ip,port'],
    [{ ip: '10.0.0.1', protocol: 'tcp', port: 1, ip2: '10.0.0.2' }, 'hash:ip,port,ip'],
    [{ ip: '10.0.0.1', protocol: 'tcp', port: 1, net: { address: '10.0.0.0', prefix: 8 } }, 'hash:ip,port,net'],
    [{ net: { address: '10.0.0.0', prefix: 8 } }, 'hash:net'],
    [{ port: 1 }, 'bitmap:port'],
  ] as Array<[IpsetEntry, string]>)('%j belongs in a %s set', (entry, type) => {
    expect(entrySetType(entry)).toBe(type);
  });

  it('describes operations the way errors name them', () => {
    const entry: IpsetEntry = { ip: '10.0.0.1', protocol: 'tcp', port: 80 };
    expect(describeEntryOperation('add', 'KUBE-CLUSTER-IP', entry)).toBe('add 10.0.0.1,tcp:80 to set KUBE-CLUSTER-IP');
    expect(describeEntryOperation('del', 'KUBE-CLUSTER-IP', entry)).toBe('del 10.0.0.1,tcp:80 from set KUBE-CLUSTER-IP');
    expect(describeEntryOperation('test', 'KUBE-CLUSTER-IP', entry)).toBe('test 10.0.0.1,tcp:80 in set KUBE-CLUSTER-IP');
  });
});
