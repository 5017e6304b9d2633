// The kernel adapter's fallback when /proc/net/ip_vs cannot be read or parsed, with its netlink
// clients replaced by fakes (the kernel tests run it against a real kernel, where /proc reads).
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { IpvsService } from '../../../src/netlink/ipvs/types.js';
import { realServerKey, virtualServerKey } from '../../../src/model/desired.js';
import { realServer } from '../../support/ipvs-objects.js';

const service: IpvsService = { key: { family: 'inet', protocol: 'TCP', address: '10.96.0.1', port: 80 }, scheduler: 'rr', flags: 0, timeout: 0, netmask: 32 };
const destination = realServer('10.244.1.2', { activeConns: 0, inactiveConns: 0, persistConns: 0 });

const fakes = vi.hoisted(() => ({ procReads: 0, procError: new Error('ENOENT: /proc/thread-self/net/ip_vs'), snapshots: 0 }));

vi.mock('../../../src/netlink/ipvs/proc-table.js', () => ({
  readProcIpvsTable: () => {
    fakes.procReads++;
    return Promise.reject(fakes.procError);
  },
}));
vi.mock('../../../src/netlink/ipvs/client.js', () => ({
  IpvsClient: {
    open: () =>
      Promise.resolve({
        listServices: () => Promise.resolve([service]),
        snapshot: () => {
          fakes.snapshots++;
          return Promise.resolve([{ service, destinations: [destination] }]);
        },
        listDestinationsOf: () => Promise.reject(new Error('not a whole read')),
        close: () => undefined,
      }),
  },
}));
vi.mock('../../../src/netlink/ipset/client.js', () => ({
  IpsetClient: { open: () => Promise.resolve({ readSet: () => Promise.resolve(null), close: () => undefined }) },
}));
vi.mock('../../../src/netlink/rtnl/client.js', () => ({
  LinkClient: { open: () => ({ getLink: () => Promise.resolve(null), close: () => undefined }) },
}));
vi.mock('../../../src/netlink/conntrack/client.js', () => ({
  ConntrackClient: { open: () => ({ close: () => undefined }) },
}));

const { NetlinkKernel } = await import('../../../src/kernel/netlink-kernel.js');

describe('NetlinkKernel when /proc/net/ip_vs cannot be read', () => {
  beforeEach(() => {
    fakes.procReads = 0;
    fakes.snapshots = 0;
  });

  it('reads the whole table over netlink at each full read instead, and says so once', async () => {
    const told: Error[] = [];
    const kernel = await NetlinkKernel.open({ dummyInterface: 'kube-ipvs0', ipsetNames: ['KUBE-CLUSTER-IP'], onProcUnreadable: (error) => told.push(error) });
    const expected = await kernel.observe();
    expect(fakes.procReads).toBe(0);
    for (const round of [0, 1]) {
      const read = await kernel.observe({ expected, round });
      expect([...read.virtualServers.keys()]).toEqual([virtualServerKey(service.key)]);
      expect([...(read.virtualServers.get(virtualServerKey(service.key))?.realServers.keys() ?? [])]).toEqual([realServerKey(destination)]);
    }
    expect(fakes.procReads).toBe(2);
    // The first observe() and both assisted reads: every one a whole netlink read.
    expect(fakes.snapshots).toBe(3);
    expect(told).toEqual([fakes.procError]);
    kernel.close();
  });
});
