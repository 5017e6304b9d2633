// The IPVS sysctls in a namespace of their own, with the sysctl tool run inside it as the oracle:
// the values are set there (and not in the test's own namespace), each change is reported with its
// old value, and a second call changes nothing.
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { ensureIpvsSysctls, ensureSysctls } from '../../src/kernel/sysctl.js';
import { createTestNetns, type TestNetns } from './helpers/netns.js';

const namespaces: TestNetns[] = [];
afterEach(() => {
  for (const ns of namespaces.splice(0)) ns.destroy();
});
function freshNetns(): TestNetns {
  const ns = createTestNetns('kipvs-sysctl');
  namespaces.push(ns);
  return ns;
}

const NAMES = [
  'net.ipv4.vs.conntrack',
  'net.ipv4.vs.conn_reuse_mode',
  'net.ipv4.vs.expire_nodest_conn',
  'net.ipv4.vs.expire_quiescent_template',
  'net.ipv4.ip_forward',
  'net.ipv4.conf.all.arp_ignore',
  'net.ipv4.conf.all.arp_announce',
];
const read = (ns: TestNetns, name: string): string => ns.run('sysctl', ['-n', name]).trim();
const readOwn = (name: string): string => readFileSync(`/proc/sys/${name.replaceAll('.', '/')}`, 'utf8').trim();

describe('IPVS sysctls', () => {
  it('sets what kube-proxy sets, in the namespace only, reporting each change; a second call changes nothing', () => {
    const ns = freshNetns();
    const before = Object.fromEntries(NAMES.map((name) => [name, read(ns, name)]));
    const own = NAMES.map(readOwn);

    // A kernel older than 5.9: conn_reuse_mode is set to 0 as well.
    const { changes, skipped } = ensureIpvsSysctls({ netns: ns.path, strictArp: true, kernelRelease: '5.4.0-150-generic' });
    const wanted: Record<string, string> = {
      'net.ipv4.vs.conntrack': '1',
      'net.ipv4.vs.conn_reuse_mode': '0',
      'net.ipv4.vs.expire_nodest_conn': '1',
      'net.ipv4.vs.expire_quiescent_template': '1',
      'net.ipv4.ip_forward': '1',
      'net.ipv4.conf.all.arp_ignore': '1',
      'net.ipv4.conf.all.arp_announce': '2',
    };
    expect(skipped).toEqual([]);
    expect(changes).toEqual(NAMES.filter((name) => before[name] !== wanted[name]).map((name) => ({ name, old: before[name], new: wanted[name] })));
    expect(changes.length).toBeGreaterThan(0);
    for (const name of NAMES) expect(read(ns, name)).toBe(wanted[name]);
    expect(NAMES.map(readOwn)).toEqual(own);

    expect(ensureIpvsSysctls({ netns: ns.path, strictArp: true, kernelRelease: '5.4.0-150-generic' }).changes).toEqual([]);
  });

  it('leaves conn_reuse_mode and the ARP settings alone on kernels from 5.9 and without strict ARP', () => {
    const ns = freshNetns();
    const untouched = ['net.ipv4.vs.conn_reuse_mode', 'net.ipv4.conf.all.arp_ignore', 'net.ipv4.conf.all.arp_announce'];
    const before = untouched.map((name) => read(ns, name));
    const { changes, skipped } = ensureIpvsSysctls({ netns: ns.path, kernelRelease: '6.1.0' });
    expect(skipped).toEqual([{ name: 'net.ipv4.vs.conn_reuse_mode', reason: 'left as-is: kernel 6.1.0 has the 5.9 fix (kubernetes#93297)' }]);
    expect(changes.map((change) => change.name)).not.toContain('net.ipv4.vs.conn_reuse_mode');
    expect(untouched.map((name) => read(ns, name))).toEqual(before);
    expect(read(ns, 'net.ipv4.vs.conntrack')).toBe('1');
  });

  it('says which sysctl is missing, with a stable code', () => {
    const ns = freshNetns();
    expect(() => ensureSysctls([{ name: 'net.ipv4.vs.no_such_sysctl', value: '1' }], { netns: ns.path })).toThrow(
      expect.objectContaining({ code: 'KIPVS_SYSCTL_MISSING', sysctl: 'net.ipv4.vs.no_such_sysctl', errnoCode: 'ENOENT' }),
    );
  });
});
