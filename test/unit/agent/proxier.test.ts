import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Proxier } from '../../../src/agent/proxier.js';
import { MemoryOwnershipStore } from '../../../src/agent/ownership.js';
import { ClusterStore } from '../../../src/sources/cluster-store.js';
import { FakeKernel } from '../../support/fake-kernel.js';
import { DEFAULT_SETTINGS, type NodeFacts } from '../../../src/model/settings.js';
import type { ClusterSnapshot } from '../../../src/model/kubernetes.js';
import type { FreshObservedState, Plan } from '../../../src/reconcile/state.js';
import type { ApplyResult } from '../../../src/kernel/netlink-kernel.js';
import { DumpInterruptedError } from '../../../src/netlink/errors.js';
import { defined } from '../../support/defined.js';

class CountingKernel extends FakeKernel {
  observed = 0;
  refuseNext = false;
  /** Thrown by the next observe(), as a read of the kernel that fails. */
  failNextObserve: Error | undefined;
  override async observe(): Promise<FreshObservedState> {
    this.observed++;
    const failure = this.failNextObserve;
    this.failNextObserve = undefined;
    if (failure) throw failure;
    return super.observe();
  }
  override async apply(plan: Plan): Promise<ApplyResult> {
    if (!this.refuseNext) return super.apply(plan);
    this.refuseNext = false;
    const [first, ...rest] = plan.operations;
    const result = await super.apply({ operations: rest, draining: plan.draining });
    return { applied: result.applied, failures: [...result.failures, { operation: defined(first, 'an operation to refuse'), error: new Error('refused') }] };
  }
}

function cluster(endpoints: string[]): ClusterSnapshot {
  return {
    services: [{ metadata: { name: 'web', namespace: 'default' }, spec: { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, targetPort: 8080 }] } }],
    endpointSlices: [
      {
        metadata: { name: 'web-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } },
        addressType: 'IPv4',
        ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
        endpoints: endpoints.map((address) => ({ addresses: [address], conditions: { ready: true } })),
      },
    ],
  };
}

/** A proxier fed whole snapshots, as the file source feeds the store. */
class SnapshotProxier extends Proxier {
  private readonly store: ClusterStore;
  constructor(kernel: FakeKernel, store = new ClusterStore(), log = pino({ level: 'silent' })) {
    super({
      kernel,
      node: { name: 'node-a', addresses: ['192.0.2.1'], families: ['inet'] },
      settings: DEFAULT_SETTINGS,
      log,
      ownership: new MemoryOwnershipStore(),
      cluster: store,
    });
    this.store = store;
  }
  setSnapshot(snapshot: ClusterSnapshot): void {
    this.store.replaceAll(snapshot.services, snapshot.endpointSlices);
  }
}

const proxier = (kernel: FakeKernel): SnapshotProxier => new SnapshotProxier(kernel);

describe('Proxier', () => {
  it('reads the whole kernel only on full syncs; an endpoint change is one operation against its cache', async () => {
    const kernel = new CountingKernel();
    const agent = proxier(kernel);
    agent.setSnapshot(cluster(['10.244.0.1']));
    await agent.sync();
    expect(kernel.observed).toBe(1);

    agent.setSnapshot(cluster(['10.244.0.1', '10.244.0.2']));
    const change = await agent.sync({ full: false });
    expect(kernel.observed).toBe(1);
    expect(change.plan.operations.map((o) => (o.kind === 'ipvs' ? o.operation.op : o.kind))).toEqual(['addDestination']);
    expect([...kernel.virtualServer('TCP 10.96.0.10:80').realServers.keys()]).toEqual(['10.244.0.1:8080', '10.244.0.2:8080']);

    const repaired = await agent.sync({ full: true });
    expect(kernel.observed).toBe(2);
    expect(repaired.plan.operations).toEqual([]);
  });

  it('reads the kernel afresh after a sync in which the kernel refused something', async () => {
    const kernel = new CountingKernel();
    const agent = proxier(kernel);
    agent.setSnapshot(cluster(['10.244.0.1']));
    kernel.refuseNext = true;
    const first = await agent.sync();
    expect(first.failures.map((f) => f.error.message)).toContain('refused');
    await agent.sync({ full: false });
    expect(kernel.observed).toBe(2);
    expect((await agent.plan()).plan.operations).toEqual([]);
  });

  it('replaces a kube-proxy set of a type it cannot decode (hash:mac) at the first sync, through its cache of the kernel', async () => {
    const kernel = new CountingKernel();
    kernel.undecodedIpsets.set('KUBE-CLUSTER-IP', 'hash:mac');
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const agent = new SnapshotProxier(kernel, new ClusterStore(), log);
    agent.setSnapshot(cluster(['10.244.0.1']));
    const first = await agent.sync();
    expect(first.failures).toEqual([]);
    expect(lines.filter((line) => line.level === 40)).toEqual([
      expect.objectContaining({ msg: 'replaced an ipset kipvs could not use', operation: 'replace ipset KUBE-CLUSTER-IP (hash:mac) with a hash:ip,port set' }),
    ]);
    expect(lines.filter((line) => line.level === 50)).toEqual([]);
    expect(first.plan.operations).toContainEqual(expect.objectContaining({ kind: 'createIpset', name: 'KUBE-CLUSTER-IP', replacing: 'hash:mac' }));
    expect(kernel.undecodedIpsets.size).toBe(0);
    expect([...(kernel.ipsets.get('KUBE-CLUSTER-IP')?.entries.keys() ?? [])]).toEqual(['10.96.0.10,tcp:80']);
    expect((await agent.sync({ full: true })).plan.operations).toEqual([]);
  });

  it('notices drift only at a full sync', async () => {
    const kernel = new CountingKernel();
    const agent = proxier(kernel);
    agent.setSnapshot(cluster(['10.244.0.1']));
    await agent.sync();
    kernel.virtualServers.delete('TCP 10.96.0.10:80'); // an admin's ipvsadm -D
    expect((await agent.sync({ full: false })).plan.operations).toEqual([]);
    const full = await agent.sync({ full: true });
    expect(full.plan.operations.map((o) => (o.kind === 'ipvs' ? o.operation.op : o.kind))).toEqual(['addService', 'addDestination']);
  });

  it('keeps a draining real server with connections through later changes of its Service (a rolling update between full reads)', async () => {
    const kernel = new CountingKernel();
    const agent = proxier(kernel);
    agent.setSnapshot(cluster(['10.244.0.1', '10.244.0.2', '10.244.0.3']));
    await agent.sync();
    // Connections arrive after the full read: the cache still says 0.
    (kernel.virtualServer('TCP 10.96.0.10:80').realServers.get('10.244.0.1:8080') as { activeConns: number }).activeConns = 5;
    agent.setSnapshot(cluster(['10.244.0.2', '10.244.0.3']));
    const drain = await agent.sync({ full: false });
    expect(drain.plan.operations.map((o) => (o.kind === 'ipvs' ? o.operation.op : o.kind))).toEqual(['editDestination']);
    agent.setSnapshot(cluster(['10.244.0.3']));
    const next = await agent.sync({ full: false });
    expect(next.plan.operations.map((o) => (o.kind === 'ipvs' ? o.operation.op : o.kind))).toEqual(['editDestination']);
    expect(kernel.virtualServer('TCP 10.96.0.10:80').realServers.has('10.244.0.1:8080')).toBe(true);
    // A full read sees its connections: it stays; the idle one is deleted.
    const full = await agent.sync({ full: true });
    expect(
      full.plan.operations.map((o) =>
        o.kind === 'ipvs' ? `${o.operation.op} ${'destination' in o.operation ? o.operation.destination.address : ''}` : o.kind,
      ),
    ).toEqual(['deleteDestination 10.244.0.2']);
  });

  it('plans nothing from a kernel read that failed (a dump interrupted on every attempt), and reads afresh at the next sync', async () => {
    const kernel = new CountingKernel();
    const agent = proxier(kernel);
    agent.setSnapshot(cluster(['10.244.0.1']));
    await agent.sync();
    const applied = kernel.log.length;
    agent.setSnapshot(cluster(['10.244.0.1', '10.244.0.2']));
    kernel.failNextObserve = new DumpInterruptedError('list addresses of kube-ipvs0', 3);
    await expect(agent.sync()).rejects.toMatchObject({ code: 'KIPVS_NETLINK_DUMP_INTERRUPTED' });
    expect(kernel.log.length).toBe(applied);
    const next = await agent.sync({ full: false });
    expect(next.full).toBe(true);
    expect(kernel.observed).toBe(3);
    expect(next.plan.operations.map((o) => (o.kind === 'ipvs' ? o.operation.op : o.kind))).toEqual(['addDestination']);
  });

  it('loses no change when a sync throws before applying: the next sync reads the kernel and compares everything', async () => {
    const kernel = new CountingKernel();
    const store = new ClusterStore();
    let failSave = false;
    const ownership = new MemoryOwnershipStore();
    const flaky = {
      load: () => ownership.load(),
      save: (state: Parameters<MemoryOwnershipStore['save']>[0]) => {
        if (failSave) throw new Error('EROFS');
        ownership.save(state);
      },
    };
    const agent = new Proxier({
      kernel,
      node: { name: 'node-a', addresses: ['192.0.2.1'], families: ['inet'] },
      settings: DEFAULT_SETTINGS,
      log: pino({ level: 'silent' }),
      ownership: flaky,
      cluster: store,
    });
    const snapshot = cluster(['10.244.0.1']);
    store.replaceAll(snapshot.services, snapshot.endpointSlices);
    await agent.sync();
    const other = { metadata: { name: 'db', namespace: 'default' }, spec: { clusterIP: '10.96.0.20', ports: [{ port: 5432 }] } };
    store.upsertService(other);
    failSave = true;
    await expect(agent.sync({ full: false })).rejects.toThrow('EROFS');
    failSave = false;
    await agent.sync({ full: false });
    expect(kernel.virtualServers.has('TCP 10.96.0.20:5432')).toBe(true);
  });

  it('follows the node: a new zone re-selects hinted endpoints and a new address gets its NodePort, in the next partial sync', async () => {
    const kernel = new CountingKernel();
    const store = new ClusterStore();
    let node: NodeFacts = { name: 'node-a', addresses: ['192.0.2.1'], families: ['inet'], zone: 'zone-a' };
    const agent = new Proxier({
      kernel,
      node,
      currentNode: () => node,
      settings: DEFAULT_SETTINGS,
      log: pino({ level: 'silent' }),
      ownership: new MemoryOwnershipStore(),
      cluster: store,
    });
    const hinted = (address: string, zone: string) => ({ addresses: [address], conditions: { ready: true }, hints: { forZones: [{ name: zone }] } });
    store.replaceAll(
      [
        {
          metadata: { name: 'web', namespace: 'default' },
          spec: { type: 'NodePort', clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, nodePort: 30080 }] },
        },
      ],
      [
        {
          metadata: { name: 'web-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } },
          addressType: 'IPv4',
          ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
          endpoints: [hinted('10.244.0.1', 'zone-a'), hinted('10.244.0.2', 'zone-b')],
        },
      ],
    );
    // Those taking new connections: a removed TCP real server drains at weight 0.
    const realServers = (key: string) => [...(kernel.virtualServers.get(key)?.realServers ?? [])].flatMap(([rs, d]) => (d.weight > 0 ? [rs] : []));
    await agent.sync();
    expect(realServers('TCP 10.96.0.10:80')).toEqual(['10.244.0.1:8080']);
    node = { ...node, zone: 'zone-b', addresses: ['192.0.2.1', '198.51.100.7'] };
    await agent.sync({ full: false });
    expect(realServers('TCP 10.96.0.10:80')).toEqual(['10.244.0.2:8080']);
    expect(realServers('TCP 198.51.100.7:30080')).toEqual(['10.244.0.2:8080']);
    node = { ...node, addresses: ['192.0.2.1'] };
    await agent.sync({ full: false });
    expect(kernel.virtualServers.has('TCP 198.51.100.7:30080')).toBe(false);
    expect(kernel.virtualServers.has('TCP 192.0.2.1:30080')).toBe(true);
  });
});
