// The IPVS read through /proc/net/ip_vs (NetlinkKernel.observe with a hint) held to the full
// netlink read in a real kernel: a table programmed by kipvs, then changed behind its back with
// ipvsadm, ip and ipset as an administrator would, read both ways against the agent's stale
// mirror. Everything the full read finds, the assisted read finds; what /proc cannot show (a
// threshold) it finds on the virtual server's turn.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KernelMirror } from '../../src/kernel/mirror.js';
import { NetlinkKernel } from '../../src/kernel/netlink-kernel.js';
import { FULL_READ_ROUNDS, turnOf } from '../../src/kernel/proc-assisted-read.js';
import type { IpsetSetSpec } from '../../src/netlink/ipset/types.js';
import type { IpvsDestination, IpvsServiceKey } from '../../src/netlink/ipvs/types.js';
import { realServerKey, virtualServerKey } from '../../src/model/desired.js';
import type { KernelOperation } from '../../src/reconcile/state.js';
import { comparableState } from './helpers/comparable-state.js';
import { createTestNetns, type TestNetns } from './helpers/netns.js';
import { realServer, virtualServer } from '../support/ipvs-objects.js';

const DUMMY = 'kube-ipvs0';
const CLUSTER_IP = 'KUBE-CLUSTER-IP';
const SPEC: IpsetSetSpec = { type: 'hash:ip,port', family: 'inet', comment: true };

const tcp = (address: string, port = 80): IpvsServiceKey => ({ family: address.includes(':') ? 'inet6' : 'inet', protocol: 'TCP', address, port });
const KEYS: IpvsServiceKey[] = [
  tcp('10.96.0.1'),
  tcp('10.96.0.2'),
  tcp('10.96.0.3'),
  tcp('10.96.0.4'),
  { family: 'inet', protocol: 'UDP', address: '10.96.0.10', port: 53 },
  tcp('fd00:96::1', 443),
  tcp('fd00:96::2', 443),
  { family: 'inet', fwmark: 7 },
  { family: 'inet6', fwmark: 7 },
];
const backends = (key: IpvsServiceKey): IpvsDestination[] =>
  key.family === 'inet'
    ? [realServer('10.244.1.2'), realServer('10.244.1.3'), realServer('10.244.2.4', { forwarding: 'route' })]
    : [realServer('fd00:244::2'), realServer('fd00:244::3')];

function programme(): KernelOperation[] {
  const operations: KernelOperation[] = [
    { kind: 'ensureDummyInterface', name: DUMMY },
    { kind: 'createIpset', name: CLUSTER_IP, spec: SPEC },
  ];
  for (const key of KEYS) {
    operations.push({ kind: 'ipvs', operation: { op: 'addService', service: virtualServer(key, key === KEYS[1] ? { flags: 1, timeout: 10800 } : {}) } });
    for (const destination of backends(key)) operations.push({ kind: 'ipvs', operation: { op: 'addDestination', service: key, destination } });
    if (!('fwmark' in key)) {
      operations.push({ kind: 'bindAddress', address: key.address });
      if (key.family === 'inet') operations.push({ kind: 'addIpsetEntry', set: CLUSTER_IP, entry: { ip: key.address, protocol: 'tcp', port: key.port } });
    }
  }
  return operations;
}

describe('the IPVS read through /proc/net/ip_vs in a real kernel', () => {
  let ns: TestNetns;
  let kernel: NetlinkKernel;
  let mirror: KernelMirror;
  beforeEach(async () => {
    ns = createTestNetns('kipvs-procread');
    kernel = await NetlinkKernel.open({ netns: ns.path, dummyInterface: DUMMY, ipsetNames: [CLUSTER_IP] });
    const { failures } = await kernel.apply({ operations: programme(), draining: new Map() });
    expect(failures.map((f) => f.error.message)).toEqual([]);
    mirror = KernelMirror.adopt(await kernel.observe(), DUMMY);
  });
  afterEach(() => {
    kernel.close();
    ns.destroy();
  });

  it('reads as the full read does when nothing changed, and when the table is empty', async () => {
    for (const round of [0, 1, 17]) expect(comparableState(await kernel.observe({ expected: mirror.view(), round }))).toEqual(comparableState(mirror.view()));
    ns.run('ipvsadm', ['-C']);
    expect(comparableState(await kernel.observe({ expected: mirror.view(), round: 2 }))).toEqual(comparableState(await kernel.observe()));
  });

  it('finds every change the full read finds: deleted virtual and real servers, weights, foreign real servers, addresses and ipset entries', async () => {
    ns.run('ipvsadm', ['-D', '-t', '10.96.0.1:80']);
    ns.run('ipvsadm', ['-d', '-t', '10.96.0.2:80', '-r', '10.244.1.3:8080']);
    ns.run('ipvsadm', ['-e', '-t', '10.96.0.3:80', '-r', '10.244.1.2:8080', '-m', '-w', '7']);
    ns.run('ipvsadm', ['-e', '-t', '10.96.0.3:80', '-r', '10.244.2.4:8080', '-m', '-w', '1']);
    ns.run('ipvsadm', ['-a', '-t', '10.96.0.4:80', '-r', '10.244.9.9:8080', '-m', '-w', '1']);
    ns.run('ipvsadm', ['-a', '-u', '10.96.0.10:53', '-r', '10.244.1.2:8080', '-g', '-w', '0']);
    ns.run('ipvsadm', ['-d', '-t', '[fd00:96::1]:443', '-r', '[fd00:244::2]:8080']);
    ns.run('ipvsadm', ['-a', '-f', '7', '-6', '-r', '[fd00:244::9]:8080', '-m']);
    ns.run('ipvsadm', ['-A', '-t', '10.99.0.1:80', '-s', 'rr']);
    ns.run('ipvsadm', ['-a', '-t', '10.99.0.1:80', '-r', '10.244.1.2:80', '-m']);
    ns.run('ip', ['address', 'del', '10.96.0.2/32', 'dev', DUMMY]);
    ns.run('ipset', ['del', CLUSTER_IP, '10.96.0.3,tcp:80']);
    const full = comparableState(await kernel.observe());
    expect(full).not.toEqual(comparableState(mirror.view()));
    for (let round = 0; round < FULL_READ_ROUNDS; round++) expect(comparableState(await kernel.observe({ expected: mirror.view(), round }))).toEqual(full);
    // Some virtual servers alone (what the whole-diff round reads again in line): as the full read
    // has them, and one deleted by hand absent.
    const some = [KEYS[0], KEYS[1], KEYS[2], KEYS[6], KEYS[8]] as IpvsServiceKey[];
    const alone = comparableState({
      dummyInterfaceExists: true,
      virtualServers: await kernel.observeVirtualServers(some),
      boundAddresses: new Set(),
      ipsets: new Map(),
    });
    const wholeRead = await kernel.observe();
    const fromWhole = new Map([...wholeRead.virtualServers].filter(([key]) => some.map(virtualServerKey).includes(key)));
    expect(fromWhole.has(virtualServerKey(tcp('10.96.0.1')))).toBe(false);
    expect(alone).toEqual(comparableState({ dummyInterfaceExists: true, virtualServers: fromWhole, boundAddresses: new Set(), ipsets: new Map() }));
  });

  it('finds an ipset member replaced by a foreign one, the set as large as expected', async () => {
    ns.run('ipset', ['del', CLUSTER_IP, '10.96.0.3,tcp:80']);
    ns.run('ipset', ['add', CLUSTER_IP, '10.96.9.9,tcp:80']);
    const full = comparableState(await kernel.observe());
    expect(full).not.toEqual(comparableState(mirror.view()));
    expect(comparableState(await kernel.observe({ expected: mirror.view(), round: 0 }))).toEqual(full);
  });

  it("takes thresholds from the expectation, which /proc does not show, until the virtual server's turn", async () => {
    ns.run('ipvsadm', ['-e', '-t', '10.96.0.4:80', '-r', '10.244.1.2:8080', '-m', '-w', '1', '-x', '100']);
    const key = virtualServerKey(tcp('10.96.0.4'));
    const threshold = async (round: number): Promise<number | undefined> =>
      (await kernel.observe({ expected: mirror.view(), round })).virtualServers.get(key)?.realServers.get(realServerKey(realServer('10.244.1.2')))
        ?.upperThreshold;
    expect(await threshold(turnOf(key) + 1)).toBe(0);
    expect(await threshold(turnOf(key))).toBe(100);
  });
});
