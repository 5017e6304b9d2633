// A full sync with a cache compares the kernel with the cache and diffs only what drifted, what
// changed and what drains; held here to the full sync it replaces, which diffed the whole desired
// state against the whole kernel. Over random clusters, random changes and an administrator's
// random edits behind the agent's back (virtual and real servers deleted, weights changed,
// foreign real servers and addresses added, addresses, ipset entries and whole sets removed,
// connections appearing), both plan the same operations; and a sync of an endpoint change never
// waits for the kernel read of a full sync.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { pino } from 'pino';
import { Proxier, WHOLE_READ_EVERY } from '../../../src/agent/proxier.js';
import { MemoryOwnershipStore } from '../../../src/agent/ownership.js';
import { ClusterStore } from '../../../src/sources/cluster-store.js';
import { DEFAULT_SETTINGS, type NodeFacts } from '../../../src/model/settings.js';
import type { EndpointSlice, Service } from '../../../src/model/kubernetes.js';
import { translate } from '../../../src/translate/translate.js';
import { diff } from '../../../src/reconcile/diff.js';
import type { FreshObservedState, KernelOperation } from '../../../src/reconcile/state.js';
import type { IpvsServiceKey } from '../../../src/netlink/ipvs/types.js';
import { virtualServerKey } from '../../../src/model/desired.js';
import { describeKernelOperation } from '../../../src/kernel/netlink-kernel.js';
import { FakeKernel } from '../../support/fake-kernel.js';
import { realServer } from '../../support/ipvs-objects.js';

const NODE: NodeFacts = { name: 'node-a', addresses: ['192.0.2.1'], families: ['inet'] };
const NOW = 1_000_000;
const ENDPOINTS = ['10.244.0.1', '10.244.0.2', '10.244.1.3', '10.244.1.4', '10.244.2.5'];

interface ServiceShape {
  readonly index: number;
  readonly nodePort: boolean;
  readonly udp: boolean;
  readonly endpoints: readonly string[];
}

const serviceOf = ({ index, nodePort, udp }: ServiceShape): Service => ({
  metadata: { name: `s${index}`, namespace: 'default' },
  spec: {
    type: nodePort ? 'NodePort' : 'ClusterIP',
    clusterIP: `10.96.0.${index + 1}`,
    ports: [{ name: 'p', port: 80, targetPort: 8080, protocol: udp ? 'UDP' : 'TCP', ...(nodePort ? { nodePort: 30000 + index } : {}) }],
  },
});
const sliceOf = ({ index, udp, endpoints }: ServiceShape): EndpointSlice => ({
  metadata: { name: `s${index}-1`, namespace: 'default', labels: { 'kubernetes.io/service-name': `s${index}` } },
  addressType: 'IPv4',
  ports: [{ name: 'p', port: 8080, protocol: udp ? 'UDP' : 'TCP' }],
  endpoints: endpoints.map((address) => ({ addresses: [address], conditions: { ready: true } })),
});

const shape = (index: number): fc.Arbitrary<ServiceShape> =>
  fc.record({ index: fc.constant(index), nodePort: fc.boolean(), udp: fc.boolean(), endpoints: fc.subarray(ENDPOINTS) });
const cluster = fc.uniqueArray(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 5 }).chain((indexes) => fc.tuple(...indexes.map(shape)));

/** An administrator's edit of the kernel behind the agent's back; `pick` chooses among what exists. */
type Edit = { readonly kind: string; readonly pick: number; readonly value: number };
const edit: fc.Arbitrary<Edit> = fc.record({
  kind: fc.constantFrom(
    'delete virtual server',
    'delete real server',
    'change weight',
    'add foreign real server',
    'add foreign virtual server',
    'unbind address',
    'bind foreign address',
    'delete ipset entry',
    'add foreign ipset entry',
    'destroy ipset',
    'connections',
  ),
  pick: fc.nat(),
  value: fc.integer({ min: 0, max: 9 }),
});

const nth = <T>(items: Iterable<T>, pick: number): T | undefined => {
  const list = [...items];
  return list[pick % Math.max(1, list.length)];
};

function applyEdit(kernel: FakeKernel, { kind, pick, value }: Edit): void {
  const vs = nth(kernel.virtualServers.values(), pick);
  const real = vs ? nth(vs.realServers.entries(), value) : undefined;
  const set = nth(kernel.ipsets.entries(), pick);
  switch (kind) {
    case 'delete virtual server':
      if (vs) kernel.virtualServers.delete(nth(kernel.virtualServers.keys(), pick) ?? '');
      break;
    case 'delete real server':
      if (vs && real) vs.realServers.delete(real[0]);
      break;
    case 'change weight':
      if (vs && real) vs.realServers.set(real[0], { ...real[1], weight: value + 2 });
      break;
    case 'add foreign real server':
      vs?.realServers.set(`10.250.0.${value}:8080`, realServer(`10.250.0.${value}`));
      break;
    case 'add foreign virtual server':
      kernel.virtualServers.set(`TCP 10.99.0.${value}:80`, {
        service: { key: { family: 'inet', protocol: 'TCP', address: `10.99.0.${value}`, port: 80 }, scheduler: 'rr', flags: 0, timeout: 0, netmask: 32 },
        realServers: new Map(),
      });
      break;
    case 'unbind address':
      kernel.boundAddresses.delete(nth(kernel.boundAddresses, pick) ?? '');
      break;
    case 'bind foreign address':
      kernel.boundAddresses.add(`10.96.9.${value}`);
      break;
    case 'delete ipset entry':
      if (set) set[1].entries.delete(nth(set[1].entries.keys(), value) ?? '');
      break;
    case 'add foreign ipset entry':
      if (set?.[0] === 'KUBE-CLUSTER-IP') set[1].entries.set(`10.96.9.${value},tcp:80`, { ip: `10.96.9.${value}`, protocol: 'tcp', port: 80 });
      break;
    case 'destroy ipset':
      if (set) kernel.ipsets.delete(set[0]);
      break;
    case 'connections':
      if (vs && real) vs.realServers.set(real[0], { ...real[1], activeConns: value % 2 });
      break;
  }
}

function agentOn(kernel: FakeKernel) {
  const store = new ClusterStore();
  const ownership = new MemoryOwnershipStore();
  const proxier = new Proxier({ kernel, node: NODE, settings: DEFAULT_SETTINGS, log: pino({ level: 'silent' }), ownership, cluster: store, clock: () => NOW });
  return { store, ownership, proxier };
}

const load = (store: ClusterStore, shapes: readonly ServiceShape[]): void => {
  store.replaceAll(shapes.map(serviceOf), shapes.map(sliceOf));
};
const sortedDescriptions = (operations: readonly KernelOperation[]): string[] =>
  operations.map((o) => `${describeKernelOperation(o, 'kube-ipvs0')} ${JSON.stringify(o)}`).sort();

/** A kernel whose reads wait at a gate the test opens: syncs of changes run meanwhile. */
class SlowKernel extends FakeKernel {
  gate: Promise<void> | undefined;
  /** Whole reads, and the keys of each read of some virtual servers. */
  readonly reads: { whole: number; some: string[][] } = { whole: 0, some: [] };
  override async observe(): Promise<FreshObservedState> {
    this.reads.whole++;
    const state = await super.observe();
    await this.gate;
    return state;
  }
  override observeVirtualServers(keys: readonly IpvsServiceKey[]): ReturnType<FakeKernel['observeVirtualServers']> {
    this.reads.some.push(keys.map(virtualServerKey));
    return super.observeVirtualServers(keys);
  }
}

describe('a full sync against the cache', () => {
  it('plans what a full diff of the whole kernel plans, whatever drifted and changed', async () => {
    await fc.assert(
      fc.asyncProperty(cluster, cluster, fc.boolean(), fc.array(edit, { maxLength: 6 }), async (before, after, syncedBetween, edits) => {
        const kernel = new FakeKernel();
        const { store, ownership, proxier } = agentOn(kernel);
        load(store, before);
        expect((await proxier.sync()).failures).toEqual([]);
        load(store, after);
        // The change synced at once, or left for the full sync to take in.
        if (syncedBetween) await proxier.sync({ full: false });
        for (const change of edits) applyEdit(kernel, change);
        const state = ownership.load();
        const expected = diff(
          translate({ services: after.map(serviceOf), endpointSlices: after.map(sliceOf) }, NODE, DEFAULT_SETTINGS),
          await kernel.observe(),
          {
            dummyInterface: DEFAULT_SETTINGS.dummyInterface,
            excludeCidrs: DEFAULT_SETTINGS.excludeCidrs,
            gracefulTerminationMs: DEFAULT_SETTINGS.gracefulTerminationSeconds * 1000,
            now: NOW,
            draining: state.draining,
            previouslyOwned: state.owned,
            nodeAddresses: new Set(NODE.addresses),
            freshCounters: true,
          },
        );
        const result = await proxier.sync({ full: true });
        expect(result.full).toBe(true);
        expect(sortedDescriptions(result.plan.operations)).toEqual(sortedDescriptions(expected.operations));
        expect([...result.plan.draining].sort()).toEqual([...expected.draining].sort());
        expect(result.failures).toEqual([]);
        // And the kernel holds what is desired: the next full sync finds nothing to do.
        expect((await proxier.sync({ full: true })).plan.operations).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it('lets a sync of an endpoint change run while the kernel is read, and the full sync then leaves its work alone', async () => {
    const kernel = new SlowKernel();
    const { store, proxier } = agentOn(kernel);
    const web = (endpoints: string[]): ServiceShape => ({ index: 0, nodePort: true, udp: false, endpoints });
    load(store, [web(['10.244.0.1'])]);
    await proxier.sync();
    let release = (): void => {};
    kernel.gate = new Promise((resolve) => (release = resolve));
    const full = proxier.sync({ full: true });
    // The read is under way (and saw one endpoint); the change adds another and syncs at once.
    load(store, [web(['10.244.0.1', '10.244.0.2'])]);
    const change = await proxier.sync({ full: false });
    expect(change.plan.operations.map((o) => (o.kind === 'ipvs' ? o.operation.op : o.kind))).toEqual(['addDestination', 'addDestination']);
    release();
    expect((await full).plan.operations).toEqual([]);
    expect([...kernel.virtualServer('TCP 10.96.0.1:80').realServers.keys()]).toEqual(['10.244.0.1:8080', '10.244.0.2:8080']);
    expect((await proxier.sync({ full: true })).plan.operations).toEqual([]);
  });

  it('repairs drift in a virtual server that a sync touches during every read, on every WHOLE_READ_EVERY-th full sync, which reads it again in line', async () => {
    const kernel = new SlowKernel();
    const { store, proxier } = agentOn(kernel);
    const web = (endpoints: string[]): ServiceShape => ({ index: 0, nodePort: false, udp: false, endpoints });
    load(store, [web(['10.244.0.1', '10.244.0.2'])]);
    await proxier.sync();
    // An administrator deletes a real server; the Service's endpoints then change during every read.
    kernel.virtualServer('TCP 10.96.0.1:80').realServers.delete('10.244.0.1:8080');
    const repaired = (): boolean => kernel.virtualServer('TCP 10.96.0.1:80').realServers.has('10.244.0.1:8080');
    let fullSyncs = 1;
    for (; fullSyncs <= WHOLE_READ_EVERY && !repaired(); fullSyncs++) {
      let release = (): void => {};
      kernel.gate = new Promise((resolve) => (release = resolve));
      const full = proxier.sync({ full: true });
      load(store, [web(['10.244.0.1', '10.244.0.2', ...(fullSyncs % 2 === 1 ? ['10.244.1.3'] : [])])]);
      await proxier.sync({ full: false });
      release();
      expect((await full).failures).toEqual([]);
    }
    expect(repaired()).toBe(true);
    expect(fullSyncs).toBeLessThanOrEqual(WHOLE_READ_EVERY);
  });

  it('reads the whole kernel only beside the other syncs, also on the round that diffs everything; in line only what they touched', async () => {
    const kernel = new SlowKernel();
    const { store, proxier } = agentOn(kernel);
    const services = (extra: string[]): ServiceShape[] => [
      { index: 0, nodePort: false, udp: false, endpoints: ['10.244.0.1', ...extra] },
      { index: 1, nodePort: true, udp: true, endpoints: ['10.244.0.2'] },
    ];
    load(store, services([]));
    await proxier.sync();
    const wholeBefore = kernel.reads.whole;
    for (let fullSyncs = 1; fullSyncs <= WHOLE_READ_EVERY; fullSyncs++) {
      let release = (): void => {};
      kernel.gate = new Promise((resolve) => (release = resolve));
      const full = proxier.sync({ full: true });
      // The read waits at the gate: a change syncs meanwhile, every time, the last one included.
      load(store, services(fullSyncs % 2 === 1 ? ['10.244.1.3'] : []));
      expect((await proxier.sync({ full: false })).plan.operations).toHaveLength(1);
      release();
      const result = await full;
      expect(result.failures).toEqual([]);
      expect(result.plan.operations).toEqual([]);
    }
    // One read per full sync, none in line; the round that diffed everything read again only the
    // virtual server the change touched during its read.
    expect(kernel.reads.whole - wholeBefore).toBe(WHOLE_READ_EVERY);
    expect(kernel.reads.some).toEqual([['TCP 10.96.0.1:80']]);
  });
});
