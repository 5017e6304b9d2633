// Real TCP traffic from a client namespace through IPVS (masquerading) to pods in namespaces; the
// counters kipvs reads must be those ipvsadm shows.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IpvsClient, type IpvsServiceWithDestinations } from '../../src/netlink/ipvs/client.js';
import type { IpvsStats } from '../../src/netlink/ipvs/types.js';
import { formatIpvsadmListing } from '../../src/cli/ipvsadm-format.js';
import { defined } from '../support/defined.js';
import { Teardown } from './helpers/teardown.js';
import type { Topology } from './helpers/topology.js';
import { sleep } from './helpers/wait.js';

const statsOf = (object: { readonly stats?: IpvsStats }): IpvsStats => defined(object.stats, 'stats read back with the virtual server');

describe('statistics after real traffic', () => {
  let topology: Topology;
  let ipvs: IpvsClient;
  const vip = '10.96.0.10';
  const teardown = new Teardown();

  beforeAll(async () => {
    topology = teardown.createTopology(2);
    const { node } = topology;
    node.run('ip', ['link', 'add', 'kube-ipvs0', 'type', 'dummy']);
    node.run('ip', ['addr', 'add', `${vip}/32`, 'dev', 'kube-ipvs0']);
    await Promise.all(topology.pods.map((pod) => topology.startServer(pod, 8080)));
    ipvs = await IpvsClient.open({ netns: node.path });
    teardown.add(() => {
      ipvs.close();
    });
    const key = { family: 'inet', protocol: 'TCP', address: vip, port: 80 } as const;
    await ipvs.applyAll([
      { op: 'addService', service: { key, scheduler: 'rr', flags: 0, timeout: 0, netmask: 32 } },
      ...topology.pods.map((pod) => ({
        op: 'addDestination' as const,
        service: key,
        destination: {
          address: pod.address,
          port: 8080,
          family: 'inet' as const,
          forwarding: 'masq' as const,
          weight: 1,
          upperThreshold: 0,
          lowerThreshold: 0,
        },
      })),
    ]);
  });
  afterAll(() => teardown.run());

  it('counts the connections and packets that went through, as ipvsadm --stats does', async () => {
    const result = topology.request(vip, 80, 20);
    expect(result).toEqual({ answers: { pod0: 10, pod1: 10 }, failures: 0 });

    // Linux 6.1 publishes the per-CPU counters from its estimator, every 2 s: wait for a tick
    // (up to 60 s: a busy machine runs the estimator late).
    const virtualServer = async (): Promise<IpvsServiceWithDestinations> => defined((await ipvs.snapshot())[0], `the virtual server ${vip}:80`);
    let entry = await virtualServer();
    for (let attempt = 0; attempt < 240 && statsOf(entry.service).conns < 20; attempt++) {
      await sleep(250);
      entry = await virtualServer();
    }
    expect(statsOf(entry.service).conns).toBe(20);
    expect(statsOf(entry.service).inPackets).toBeGreaterThanOrEqual(20 * 3);
    expect(statsOf(entry.service).outBytes).toBeGreaterThan(0);
    expect(entry.destinations.map((d) => statsOf(d).conns)).toEqual([10, 10]);

    const info = await ipvs.info();
    const ipvsadmStats = topology.node.run('ipvsadm', ['-Ln', '--stats']).replace(/\n$/, '').split('\n');
    expect(formatIpvsadmListing(info, await ipvs.snapshot(), 'stats')).toEqual(ipvsadmStats);
  });

  it('shows the same rates as ipvsadm --rate (read back to back, retried across an estimator tick)', async () => {
    const info = await ipvs.info();
    let ours: string[] = [];
    let theirs: string[] = [];
    for (let attempt = 0; attempt < 5; attempt++) {
      ours = formatIpvsadmListing(info, await ipvs.snapshot(), 'rate');
      theirs = topology.node.run('ipvsadm', ['-Ln', '--rate']).replace(/\n$/, '').split('\n');
      if (JSON.stringify(ours) === JSON.stringify(theirs)) break;
    }
    expect(ours).toEqual(theirs);
  });
});
