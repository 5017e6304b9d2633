// kube-proxy's conntrack settings in a namespace of their own, with the sysctl tool run inside it
// as the oracle. The timeouts and be_liberal are per network namespace: set there, and not in the
// test's own namespace. nf_conntrack_max and the hashsize are global to the kernel: with a netns
// (kipvs programming a namespace that is not its own) they are reported as left alone, and the
// test checks that they did not change — so the host is never touched, in UML or direct mode.
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_CONNTRACK, ensureConntrackSysctls } from '../../src/kernel/sysctl.js';
import { createTestNetns, type TestNetns } from './helpers/netns.js';

const namespaces: TestNetns[] = [];
afterEach(() => {
  for (const ns of namespaces.splice(0)) ns.destroy();
});

const PER_NAMESPACE = [
  'net.netfilter.nf_conntrack_tcp_timeout_established',
  'net.netfilter.nf_conntrack_tcp_timeout_close_wait',
  'net.netfilter.nf_conntrack_tcp_be_liberal',
  'net.netfilter.nf_conntrack_udp_timeout',
  'net.netfilter.nf_conntrack_udp_timeout_stream',
];
const read = (ns: TestNetns, name: string): string => ns.run('sysctl', ['-n', name]).trim();
const readOwn = (name: string): string => readFileSync(`/proc/sys/${name.replaceAll('.', '/')}`, 'utf8').trim();
const HASHSIZE = '/sys/module/nf_conntrack/parameters/hashsize';

describe('conntrack sysctls', () => {
  it("sets kube-proxy's timeouts and be_liberal in the namespace only, and leaves the global maximum alone there", () => {
    const ns = createTestNetns('kipvs-ct');
    namespaces.push(ns);
    const own = PER_NAMESPACE.map(readOwn);
    const globalMax = readOwn('net.netfilter.nf_conntrack_max');
    const hashsize = readFileSync(HASHSIZE, 'utf8').trim();
    const config = {
      ...DEFAULT_CONNTRACK,
      maxPerCore: 1 << 20,
      tcpEstablishedTimeoutMs: 7_200_000,
      tcpCloseWaitTimeoutMs: 1_800_000,
      tcpBeLiberal: true,
      udpTimeoutMs: 45_000,
      udpStreamTimeoutMs: 150_000,
    };

    const { changes, skipped } = ensureConntrackSysctls(config, { netns: ns.path, cpus: 2 });
    const wanted = ['7200', '1800', '1', '45', '150'];
    expect(PER_NAMESPACE.map((name) => read(ns, name))).toEqual(wanted);
    expect(changes.map((change) => change.name)).toEqual(PER_NAMESPACE.filter((_, i) => changes.some((c) => c.name === PER_NAMESPACE[i])));
    expect(changes.length).toBeGreaterThan(0);
    expect(skipped).toEqual([expect.objectContaining({ name: 'net.netfilter.nf_conntrack_max' })]);
    expect(skipped[0]?.reason).toContain(String(2 << 20));
    // Nothing changed outside the namespace.
    expect(PER_NAMESPACE.map(readOwn)).toEqual(own);
    expect(readOwn('net.netfilter.nf_conntrack_max')).toBe(globalMax);
    expect(readFileSync(HASHSIZE, 'utf8').trim()).toBe(hashsize);
    // A second call changes nothing.
    expect(ensureConntrackSysctls(config, { netns: ns.path, cpus: 2 }).changes).toEqual([]);
  });
});
