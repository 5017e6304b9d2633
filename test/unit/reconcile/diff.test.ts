import { describe, expect, it } from 'vitest';
import { diff, type DiffContext } from '../../../src/reconcile/diff.js';
import { FakeKernel } from '../../support/fake-kernel.js';
import { batches, describeKernelOperation } from '../../../src/kernel/netlink-kernel.js';
import { realServerKey, virtualServerKey, type DesiredState, type DesiredVirtualServer } from '../../../src/model/desired.js';
import type { IpvsDestination, IpvsService, IpvsServiceKey } from '../../../src/netlink/ipvs/types.js';
import type { DrainingRealServer, KernelOperation, Plan } from '../../../src/reconcile/state.js';
import { defined } from '../../support/defined.js';

const key = (address: string, port = 80, protocol: 'TCP' | 'UDP' = 'TCP'): IpvsServiceKey => ({ family: 'inet', protocol, address, port });
const service = (k: IpvsServiceKey, scheduler = 'rr'): IpvsService => ({ key: k, scheduler, flags: 0, timeout: 0, netmask: 32 });
const real = (address: string, weight = 1): IpvsDestination => ({
  address,
  port: 8080,
  family: 'inet',
  forwarding: 'masq',
  weight,
  upperThreshold: 0,
  lowerThreshold: 0,
});

function virtualServer(k: IpvsServiceKey, reals: IpvsDestination[], scheduler = 'rr'): [string, DesiredVirtualServer] {
  return [
    virtualServerKey(k),
    {
      service: service(k, scheduler),
      realServers: new Map(reals.map((r) => [realServerKey(r), r])),
      owner: { namespace: 'default', name: 'web', port: 'http' },
    },
  ];
}

function desired(virtualServers: Array<[string, DesiredVirtualServer]>, extra: Partial<DesiredState> = {}): DesiredState {
  const bound = new Set(virtualServers.map(([, vs]) => (vs.service.key as { address: string }).address));
  return {
    virtualServers: new Map(virtualServers),
    boundAddresses: bound,
    ipsets: new Map([['KUBE-CLUSTER-IP', { name: 'KUBE-CLUSTER-IP', spec: { type: 'hash:ip,port', family: 'inet' }, entries: new Map() }]]),
    problems: [],
    ...extra,
  };
}

const context = (overrides: Partial<DiffContext> = {}): DiffContext => ({
  dummyInterface: 'kube-ipvs0',
  excludeCidrs: [],
  gracefulTerminationMs: 60_000,
  now: 1_000_000,
  draining: new Map(),
  previouslyOwned: new Set(),
  ...overrides,
});

async function converge(kernel: FakeKernel, state: DesiredState, ctx = context()): Promise<Plan> {
  const plan = diff(state, await kernel.observe(), ctx);
  const result = await kernel.apply(plan);
  expect(result.failures.map((f) => f.error.message)).toEqual([]);
  return plan;
}

const describeOps = (plan: Plan): string[] => plan.operations.map((o) => (o.kind === 'ipvs' ? o.operation.op : o.kind));

describe('diff', () => {
  it('programs an empty kernel in creation order and then has nothing left to do', async () => {
    const kernel = new FakeKernel();
    const state = desired([virtualServer(key('10.96.0.1'), [real('10.244.0.1'), real('10.244.0.2')])]);
    const plan = await converge(kernel, state);
    expect(describeOps(plan)).toEqual(['ensureDummyInterface', 'createIpset', 'bindAddress', 'addService', 'addDestination', 'addDestination']);
    expect(diff(state, await kernel.observe(), context()).operations).toEqual([]);
  });

  it('adopts what is already programmed: a restart changes nothing', async () => {
    const kernel = new FakeKernel();
    const state = desired([virtualServer(key('10.96.0.1'), [real('10.244.0.1')])]);
    await converge(kernel, state);
    const before = kernel.log.length;
    expect(diff(state, await kernel.observe(), context({ previouslyOwned: new Set() })).operations).toEqual([]);
    expect(kernel.log.length).toBe(before);
  });

  it('turns one endpoint change into one real-server operation, whatever the number of services', async () => {
    const kernel = new FakeKernel();
    const many = Array.from({ length: 2000 }, (_, i) => virtualServer(key(`10.96.${i >> 8}.${i & 255}`), [real(`10.244.${i >> 8}.${i & 255}`)]));
    await converge(kernel, desired(many));
    const changed = [...many];
    changed[1234] = virtualServer(key('10.96.4.210'), [real('10.244.4.210'), real('10.245.0.1')]);
    const plan = diff(desired(changed), await kernel.observe(), context());
    expect(plan.operations).toEqual([{ kind: 'ipvs', operation: { op: 'addDestination', service: key('10.96.4.210'), destination: real('10.245.0.1') } }]);
  });

  it('edits a changed scheduler and a changed weight in place', async () => {
    const kernel = new FakeKernel();
    await converge(kernel, desired([virtualServer(key('10.96.0.1'), [real('10.244.0.1')])]));
    const plan = await converge(kernel, desired([virtualServer(key('10.96.0.1'), [real('10.244.0.1', 5)], 'wrr')]));
    expect(describeOps(plan)).toEqual(['editService', 'editDestination']);
    const vs = kernel.virtualServer('TCP 10.96.0.1:80');
    expect(vs.service.scheduler).toBe('wrr');
    expect(vs.realServers.get('10.244.0.1:8080')?.weight).toBe(5);
  });

  it('drains a removed TCP real server at weight 0, then deletes it once it has no connections', async () => {
    const kernel = new FakeKernel();
    const k = key('10.96.0.1');
    await converge(kernel, desired([virtualServer(k, [real('10.244.0.1'), real('10.244.0.2')])]));
    (kernel.virtualServer('TCP 10.96.0.1:80').realServers.get('10.244.0.2:8080') as { activeConns: number }).activeConns = 3;
    const without = desired([virtualServer(k, [real('10.244.0.1')])]);
    const first = await converge(kernel, without);
    expect(describeOps(first)).toEqual(['editDestination']);
    expect(kernel.virtualServer('TCP 10.96.0.1:80').realServers.get('10.244.0.2:8080')?.weight).toBe(0);
    expect([...first.draining.keys()]).toEqual(['TCP 10.96.0.1:80 -> 10.244.0.2:8080']);

    // Still connected: it stays, at weight 0, with nothing to do.
    const second = diff(without, await kernel.observe(), context({ now: 1_010_000, draining: first.draining, freshCounters: true }));
    expect(second.operations).toEqual([]);
    expect(second.draining.size).toBe(1);

    // Connections gone, but the counts come from a cache (maybe from before the drain): it waits.
    (kernel.virtualServer('TCP 10.96.0.1:80').realServers.get('10.244.0.2:8080') as { activeConns: number }).activeConns = 0;
    expect(diff(without, await kernel.observe(), context({ now: 1_015_000, draining: second.draining })).operations).toEqual([]);

    // Connections gone, as just read from the kernel: deleted.
    const third = await converge(kernel, without, context({ now: 1_020_000, draining: second.draining, freshCounters: true }));
    expect(describeOps(third)).toEqual(['deleteDestination']);
    expect(third.draining.size).toBe(0);
  });

  it('deletes an idle removed real server at once when the counts were just read, and drains it first when they come from a cache', async () => {
    const kernel = new FakeKernel();
    const k = key('10.96.0.1');
    await converge(kernel, desired([virtualServer(k, [real('10.244.0.1'), real('10.244.0.2')])]));
    const without = desired([virtualServer(k, [real('10.244.0.1')])]);
    // From a cache, zero connections may be an old figure: weight 0 first, so no new ones arrive.
    expect(describeOps(diff(without, await kernel.observe(), context()))).toEqual(['editDestination']);
    // Read for this diff (as kube-proxy reads before each sync): nothing to drain.
    const fresh = diff(without, await kernel.observe(), context({ freshCounters: true }));
    expect(describeOps(fresh)).toEqual(['deleteDestination']);
    expect(fresh.draining.size).toBe(0);
  });

  it('deletes a draining real server after the timeout even with connections left', async () => {
    const kernel = new FakeKernel();
    const k = key('10.96.0.1');
    await converge(kernel, desired([virtualServer(k, [real('10.244.0.1'), real('10.244.0.2')])]));
    (kernel.virtualServer('TCP 10.96.0.1:80').realServers.get('10.244.0.2:8080') as { activeConns: number }).activeConns = 1;
    const without = desired([virtualServer(k, [real('10.244.0.1')])]);
    const first = await converge(kernel, without);
    const draining: ReadonlyMap<string, DrainingRealServer> = first.draining;
    const late = await converge(kernel, without, context({ now: 1_000_000 + 60_000, draining }));
    expect(describeOps(late)).toEqual(['deleteDestination']);
  });

  it('deletes a removed UDP real server at once, then the conntrack entries of its flows', async () => {
    const kernel = new FakeKernel();
    const k = key('10.96.0.10', 53, 'UDP');
    await converge(kernel, desired([virtualServer(k, [real('10.244.0.1'), real('10.244.0.2')])]));
    const plan = await converge(kernel, desired([virtualServer(k, [real('10.244.0.1')])]));
    expect(describeOps(plan)).toEqual(['deleteDestination', 'deleteUdpFlows']);
    expect(plan.operations[1]).toEqual({ kind: 'deleteUdpFlows', virtualServer: k, endpoint: { address: '10.244.0.2', port: 8080 } });
    expect(describeKernelOperation(defined(plan.operations[1], 'a second operation'), 'kube-ipvs0')).toBe(
      'delete UDP flows to 10.244.0.2:8080 of UDP 10.96.0.10:53',
    );
    expect(kernel.log.at(-1)).toEqual(plan.operations[1]);
    expect([...kernel.virtualServer('UDP 10.96.0.10:53').realServers.keys()]).toEqual(['10.244.0.1:8080']);
  });

  it('deletes flows only for UDP: a TCP real server deleted at once has no flow deletion', async () => {
    const kernel = new FakeKernel();
    const k = key('10.96.0.1');
    await converge(kernel, desired([virtualServer(k, [real('10.244.0.1'), real('10.244.0.2')])]));
    const plan = await converge(kernel, desired([virtualServer(k, [real('10.244.0.1')])]), context({ gracefulTerminationMs: 0 }));
    expect(describeOps(plan)).toEqual(['deleteDestination']);
  });

  it('puts each UDP flow deletion right after its real server deletion, for every removed UDP real server', async () => {
    const kernel = new FakeKernel();
    const dns = key('10.96.0.10', 53, 'UDP');
    const syslog = key('10.96.0.20', 514, 'UDP');
    await converge(
      kernel,
      desired([virtualServer(dns, [real('10.244.0.1'), real('10.244.0.2')]), virtualServer(syslog, [real('10.244.1.1'), real('10.244.1.2')])]),
    );
    const plan = await converge(kernel, desired([virtualServer(dns, [real('10.244.0.1')]), virtualServer(syslog, [real('10.244.1.2')])]));
    expect(plan.operations.map((o) => describeKernelOperation(o, 'kube-ipvs0'))).toEqual([
      'delete real server 10.244.0.2:8080 from UDP 10.96.0.10:53',
      'delete UDP flows to 10.244.0.2:8080 of UDP 10.96.0.10:53',
      'delete real server 10.244.1.1:8080 from UDP 10.96.0.20:514',
      'delete UDP flows to 10.244.1.1:8080 of UDP 10.96.0.20:514',
    ]);
  });

  it('leaves virtual servers it does not own alone, and removes those it owns', async () => {
    const kernel = new FakeKernel();
    await converge(kernel, desired([virtualServer(key('10.96.0.1'), [real('10.244.0.1')]), virtualServer(key('10.96.0.2'), [real('10.244.0.2')])]));
    // keepalived's virtual server on a node address, and one in an excluded range.
    kernel.virtualServers.set('TCP 192.0.2.10:443', { service: service(key('192.0.2.10', 443)), realServers: new Map() });
    kernel.boundAddresses.add('10.100.0.5');
    kernel.virtualServers.set('TCP 10.100.0.5:80', { service: service(key('10.100.0.5')), realServers: new Map() });
    const plan = await converge(kernel, desired([virtualServer(key('10.96.0.1'), [real('10.244.0.1')])]), context({ excludeCidrs: ['10.100.0.0/16'] }));
    expect(describeOps(plan)).toEqual(['deleteService', 'unbindAddress', 'unbindAddress']);
    expect([...kernel.virtualServers.keys()].sort()).toEqual(['TCP 10.100.0.5:80', 'TCP 10.96.0.1:80', 'TCP 192.0.2.10:443']);
  });

  it('removes a virtual server it programmed before even when its address is gone from the dummy', async () => {
    const kernel = new FakeKernel();
    kernel.virtualServers.set('TCP 192.0.2.20:30080', { service: service(key('192.0.2.20', 30080)), realServers: new Map() });
    const plan = diff(desired([]), await kernel.observe(), context({ previouslyOwned: new Set(['TCP 192.0.2.20:30080']) }));
    expect(describeOps(plan)).toContain('deleteService');
  });

  it("removes kube-proxy's NodePort virtual servers of a deleted Service: on a node address, at a port its sets record", async () => {
    const kernel = new FakeKernel();
    for (const [address, port] of [
      ['192.0.2.20', 30080],
      ['192.0.2.20', 30081],
      ['198.51.100.9', 30080],
    ] as const) {
      kernel.virtualServers.set(`TCP ${address}:${port}`, { service: service(key(address, port)), realServers: new Map() });
    }
    kernel.virtualServers.set('UDP 192.0.2.20:30080', { service: service(key('192.0.2.20', 30080, 'UDP')), realServers: new Map() });
    kernel.ipsets.set('KUBE-NODE-PORT-TCP', { spec: { type: 'bitmap:port', range: { from: 0, to: 65535 } }, entries: new Map([['30080', { port: 30080 }]]) });
    const plan = diff(desired([]), await kernel.observe(), context({ nodeAddresses: new Set(['192.0.2.20']) }));
    // Not 30081 (not recorded), not 198.51.100.9 (not a node address), not UDP (only TCP recorded).
    expect(plan.operations.flatMap((o) => (o.kind === 'ipvs' && o.operation.op === 'deleteService' ? [virtualServerKey(o.operation.key)] : []))).toEqual([
      'TCP 192.0.2.20:30080',
    ]);
  });

  it('removes the NodePort virtual servers kube-proxy ≤ 1.21 made on 127.0.0.1 and ::1, at a port its sets record, even for a live Service', async () => {
    const kernel = new FakeKernel();
    const loopbackKeys: IpvsServiceKey[] = [
      key('127.0.0.1', 30080),
      key('127.0.0.1', 30081),
      { family: 'inet6', protocol: 'TCP', address: '::1', port: 30080 },
    ];
    for (const k of loopbackKeys)
      kernel.virtualServers.set(virtualServerKey(k), { service: { ...service(k), netmask: k.family === 'inet6' ? 128 : 32 }, realServers: new Map() });
    kernel.ipsets.set('KUBE-NODE-PORT-TCP', { spec: { type: 'bitmap:port', range: { from: 0, to: 65535 } }, entries: new Map([['30080', { port: 30080 }]]) });
    // The Service still exists: its NodePort on the node address is wanted, the loopback ones never are.
    const plan = diff(
      desired([virtualServer(key('192.0.2.20', 30080), [real('10.244.0.1')])]),
      await kernel.observe(),
      context({ nodeAddresses: new Set(['192.0.2.20']) }),
    );
    const deleted = plan.operations.flatMap((o) => (o.kind === 'ipvs' && o.operation.op === 'deleteService' ? [virtualServerKey(o.operation.key)] : []));
    // Not 127.0.0.1:30081: no kube-proxy set records that port, so it is someone else's.
    expect(deleted.sort()).toEqual(['TCP 127.0.0.1:30080', 'TCP [::1]:30080']);
  });

  it('the fake kernel refuses what the kernel refuses', async () => {
    const kernel = new FakeKernel();
    const result = await kernel.apply({
      operations: [
        { kind: 'ipvs', operation: { op: 'addDestination', service: key('10.96.9.9'), destination: real('10.244.9.9') } },
        { kind: 'ipvs', operation: { op: 'addService', service: service(key('10.96.9.9'), 'nosuch') } },
        { kind: 'bindAddress', address: '10.96.9.9' },
      ],
      draining: new Map(),
    });
    expect(result.failures.map((f) => f.error.message)).toEqual([
      'add real server 10.244.9.9:8080 to TCP 10.96.9.9:80: ESRCH',
      'add virtual server TCP 10.96.9.9:80: ENOENT',
      'bind 10.96.9.9 to kube-ipvs0: ENODEV',
    ]);
  });
});

describe('the kernel adapter batches a plan', () => {
  const dns = { family: 'inet', protocol: 'UDP', address: '10.96.0.10', port: 53 } as const;
  const flows = (address: string): KernelOperation => ({ kind: 'deleteUdpFlows', virtualServer: dns, endpoint: { address, port: 8080 } });
  const deleteReal = (address: string): KernelOperation => ({ kind: 'ipvs', operation: { op: 'deleteDestination', service: dns, destination: real(address) } });

  it('by runs of one family, in plan order', () => {
    const operations: KernelOperation[] = [
      { kind: 'bindAddress', address: '10.96.0.10' },
      { kind: 'bindAddress', address: '10.96.0.11' },
      { kind: 'ipvs', operation: { op: 'addService', service: service(dns) } },
      { kind: 'addIpsetEntry', set: 'S', entry: { ip: '10.96.0.10' } },
      { kind: 'unbindAddress', address: '10.96.0.12' },
    ];
    expect(batches(operations).map((batch) => batch.indexes)).toEqual([[0, 1], [2], [3], [4]]);
  });

  it('into typed batches: the addresses, IPVS operations and entries of each run, in plan order', () => {
    const addService = { op: 'addService', service: service(dns) } as const;
    const added = { kind: 'addIpsetEntry', set: 'S', entry: { ip: '10.96.0.10' } } as const;
    const deleted = { kind: 'deleteIpsetEntry', set: 'S', entry: { ip: '10.96.0.9' } } as const;
    const operations: KernelOperation[] = [
      { kind: 'bindAddress', address: '10.96.0.10' },
      { kind: 'unbindAddress', address: '10.96.0.9' },
      { kind: 'ipvs', operation: addService },
      added,
      deleted,
      flows('10.244.0.1'),
    ];
    expect(batches(operations)).toEqual([
      { kind: 'bindAddress', indexes: [0], addresses: ['10.96.0.10'] },
      { kind: 'unbindAddress', indexes: [1], addresses: ['10.96.0.9'] },
      { kind: 'ipvs', indexes: [2], operations: [addService] },
      { kind: 'ipsetEntries', indexes: [3, 4], operations: [added, deleted] },
      { kind: 'deleteUdpFlows', indexes: [5], operations: [operations[5]] },
    ]);
  });

  it('with the UDP flow deletions of a run of IPVS operations after them, all in one batch', () => {
    const operations = [
      deleteReal('10.244.0.1'),
      flows('10.244.0.1'),
      deleteReal('10.244.0.2'),
      flows('10.244.0.2'),
      { kind: 'ipvs', operation: { op: 'deleteService', key: key('10.96.0.1') } } as KernelOperation,
      { kind: 'unbindAddress', address: '10.96.0.1' } as KernelOperation,
    ];
    expect(batches(operations).map((batch) => batch.indexes)).toEqual([[0, 2, 4], [1, 3], [5]]);
  });

  it('so that every flow deletion still runs after the deletion of its real server', async () => {
    const kernel = new FakeKernel();
    await converge(kernel, desired([virtualServer(dns, [real('10.244.0.1'), real('10.244.0.2'), real('10.244.0.3')])]));
    const plan = diff(desired([virtualServer(dns, [real('10.244.0.3')])]), await kernel.observe(), context());
    const order = batches(plan.operations).flatMap((batch) => batch.indexes);
    plan.operations.forEach((operation, index) => {
      if (operation.kind !== 'deleteUdpFlows') return;
      const deletion = plan.operations.findIndex(
        (o) => o.kind === 'ipvs' && o.operation.op === 'deleteDestination' && o.operation.destination.address === operation.endpoint.address,
      );
      expect(order.indexOf(deletion)).toBeLessThan(order.indexOf(index));
    });
    expect(plan.operations.filter((o) => o.kind === 'deleteUdpFlows')).toHaveLength(2);
  });

  describe('a kube-proxy set of a type kipvs cannot use', () => {
    const entry = { ip: '10.96.0.1', protocol: 'tcp' as const, port: 80 };
    const withEntry = (): DesiredState => {
      const state = desired([virtualServer(key('10.96.0.1'), [real('10.244.0.1')])]);
      const set = defined(state.ipsets.get('KUBE-CLUSTER-IP'), 'set KUBE-CLUSTER-IP');
      return { ...state, ipsets: new Map([['KUBE-CLUSTER-IP', { ...set, entries: new Map([['10.96.0.1,tcp:80', entry]]) }]]) };
    };

    it('replaces one it cannot read (hash:mac) and refills it, and still programs the virtual servers', async () => {
      const kernel = new FakeKernel();
      const observed = { ...(await kernel.observe()), undecodedIpsets: new Map([['KUBE-CLUSTER-IP', 'hash:mac']]) };
      const plan = diff(withEntry(), observed, context());
      expect(plan.operations).toContainEqual({
        kind: 'createIpset',
        name: 'KUBE-CLUSTER-IP',
        spec: { type: 'hash:ip,port', family: 'inet' },
        replacing: 'hash:mac',
      });
      expect(describeOps(plan)).toEqual(['ensureDummyInterface', 'createIpset', 'bindAddress', 'addService', 'addDestination', 'addIpsetEntry']);
      expect(describeKernelOperation(defined(plan.operations[1], 'a second operation'), 'kube-ipvs0')).toBe(
        'replace ipset KUBE-CLUSTER-IP (hash:mac) with a hash:ip,port set',
      );
    });

    it('replaces one of another type or family, also in a partial sync, comparing every entry of it', async () => {
      const kernel = new FakeKernel();
      await converge(kernel, withEntry());
      const observed = await kernel.observe();
      observed.ipsets.set('KUBE-CLUSTER-IP', { spec: { type: 'hash:ip,port', family: 'inet6' }, entries: new Map() });
      const partial = { all: false as const, virtualServers: new Set<string>(), addresses: new Set<string>(), ipsetEntries: new Map<string, Set<string>>() };
      const plan = diff(withEntry(), observed, context(), partial);
      expect(plan.operations).toEqual([
        { kind: 'createIpset', name: 'KUBE-CLUSTER-IP', spec: { type: 'hash:ip,port', family: 'inet' }, replacing: 'hash:ip,port family inet6' },
        { kind: 'addIpsetEntry', set: 'KUBE-CLUSTER-IP', entry },
      ]);
      observed.ipsets.set('KUBE-CLUSTER-IP', { spec: { type: 'hash:ip', family: 'inet' }, entries: new Map() });
      expect(describeOps(diff(withEntry(), observed, context()))).toEqual(['createIpset', 'addIpsetEntry']);
    });

    it('keeps one that differs only in sizes or a comment flag kipvs does not need', async () => {
      const kernel = new FakeKernel();
      await converge(kernel, withEntry());
      const observed = await kernel.observe();
      const set = defined(observed.ipsets.get('KUBE-CLUSTER-IP'), 'set KUBE-CLUSTER-IP');
      observed.ipsets.set('KUBE-CLUSTER-IP', { ...set, spec: { type: 'hash:ip,port', family: 'inet', hashSize: 64, maxElements: 100, comment: true } });
      expect(diff(withEntry(), observed, context()).operations).toEqual([]);
    });
  });
});
