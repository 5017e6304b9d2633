// The contract between the agent's mirror of the kernel (src/kernel/mirror.ts) and the kernel
// itself: the same plans, applied to a KernelMirror and to NetlinkKernel in a fresh network
// namespace, leave states that read back equal, and the kernel refuses exactly the operations the
// mirror refuses, with the same errno. Fixed sequences name the refusals the mirror claims; random
// sequences over a small pool of objects (so that they collide) look for the ones nobody thought of.
import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { KernelMirror } from '../../src/kernel/mirror.js';
import { NetlinkKernel, type OperationFailure } from '../../src/kernel/netlink-kernel.js';
import { NetlinkRequestError } from '../../src/netlink/errors.js';
import type { IpsetEntry, IpsetSetSpec } from '../../src/netlink/ipset/types.js';
import type { IpvsDestination, IpvsService, IpvsServiceKey } from '../../src/netlink/ipvs/types.js';
import type { KernelOperation } from '../../src/reconcile/state.js';
import { comparableState } from './helpers/comparable-state.js';
import { createTestNetns } from './helpers/netns.js';
import { realServer, virtualServer } from '../support/ipvs-objects.js';

const DUMMY = 'kube-ipvs0';
const CLUSTER_IP = 'KUBE-CLUSTER-IP';
const NODE_PORT = 'KUBE-NODE-PORT-TCP';
const SPECS = {
  [CLUSTER_IP]: { type: 'hash:ip,port', family: 'inet', comment: true },
  [NODE_PORT]: { type: 'bitmap:port', range: { from: 0, to: 65535 }, comment: true },
} as const satisfies Record<string, IpsetSetSpec>;

const web: IpvsServiceKey = { family: 'inet', protocol: 'TCP', address: '10.96.0.1', port: 80 };
const dns: IpvsServiceKey = { family: 'inet', protocol: 'UDP', address: '10.96.0.10', port: 53 };
const web6: IpvsServiceKey = { family: 'inet6', protocol: 'TCP', address: 'fd00:96::1', port: 80 };
const mark: IpvsServiceKey = { family: 'inet', fwmark: 7 };
const ipvs = (operation: Extract<KernelOperation, { kind: 'ipvs' }>['operation']): KernelOperation => ({ kind: 'ipvs', operation });
const createSet = (name: keyof typeof SPECS, spec: IpsetSetSpec = SPECS[name]): KernelOperation => ({ kind: 'createIpset', name, spec });
const addEntry = (set: string, entry: IpsetEntry): KernelOperation => ({ kind: 'addIpsetEntry', set, entry });

const refusals = (operations: readonly KernelOperation[], failures: readonly OperationFailure[]): Array<{ index: number; errno: number | string }> =>
  failures
    .map((failure) => ({
      index: operations.indexOf(failure.operation),
      errno: failure.error instanceof NetlinkRequestError ? failure.error.errno : failure.error.message,
    }))
    .sort((a, b) => a.index - b.index);

interface Outcome {
  readonly refused: Array<Array<{ index: number; errno: number | string }>>;
  readonly states: unknown[];
}

/** Applies each plan to both, in a namespace of its own, and what each side refused and held after each plan. */
async function applyToBoth(plans: readonly (readonly KernelOperation[])[]): Promise<{ kernel: Outcome; mirror: Outcome }> {
  const ns = createTestNetns('kipvs-mirror');
  let kernel: NetlinkKernel | undefined;
  try {
    kernel = await NetlinkKernel.open({ netns: ns.path, dummyInterface: DUMMY, ipsetNames: Object.keys(SPECS) });
    const mirror = KernelMirror.adopt(await kernel.observe(), DUMMY);
    const outcome = { kernel: { refused: [], states: [] } as Outcome, mirror: { refused: [], states: [] } as Outcome };
    for (const operations of plans) {
      const plan = { operations, draining: new Map() };
      outcome.kernel.refused.push(refusals(operations, (await kernel.apply(plan)).failures));
      outcome.mirror.refused.push(refusals(operations, mirror.apply(plan)));
      outcome.kernel.states.push(comparableState(await kernel.observe()));
      outcome.mirror.states.push(comparableState(mirror.view()));
    }
    return outcome;
  } finally {
    kernel?.close();
    ns.destroy();
  }
}

async function expectAgreement(plans: readonly (readonly KernelOperation[])[]): Promise<Outcome> {
  const { kernel, mirror } = await applyToBoth(plans);
  expect(mirror.refused).toEqual(kernel.refused);
  expect(mirror.states).toEqual(kernel.states);
  return kernel;
}

const { EEXIST, EINVAL, ENODEV, ENOENT, ERANGE, ESRCH } = constants.errno;

describe('the kernel mirror and NetlinkKernel', () => {
  it('agree on virtual servers and real servers: added, edited, deleted, and the refusals', async () => {
    const { refused } = await expectAgreement([
      [
        ipvs({ op: 'addDestination', service: web, destination: realServer('10.244.0.1') }), // no such virtual server
        ipvs({ op: 'addService', service: virtualServer(web) }),
        ipvs({ op: 'addService', service: virtualServer(web, { scheduler: 'wrr' }) }), // duplicate
        ipvs({ op: 'addService', service: virtualServer(dns, { scheduler: 'nosuch' }) }), // unknown scheduler
        ipvs({ op: 'addDestination', service: web, destination: realServer('10.244.0.1') }),
        ipvs({ op: 'addDestination', service: web, destination: realServer('10.244.0.1', { weight: 5 }) }), // duplicate
      ],
      [
        ipvs({ op: 'editService', service: virtualServer(web, { scheduler: 'sh', flags: 0x1, timeout: 300 }) }),
        ipvs({ op: 'editService', service: virtualServer(web, { scheduler: 'nosuch' }) }),
        ipvs({ op: 'editService', service: virtualServer(dns) }), // no such virtual server
        ipvs({ op: 'editDestination', service: web, destination: realServer('10.244.0.1', { weight: 0 }) }),
        ipvs({ op: 'editDestination', service: web, destination: realServer('10.244.0.2') }), // no such real server
        ipvs({ op: 'deleteDestination', service: web, destination: { address: '10.244.0.2', port: 8080 } }),
        ipvs({ op: 'deleteService', key: dns }),
      ],
      [
        ipvs({ op: 'addDestination', service: web, destination: realServer('10.244.0.3', { upperThreshold: 0, lowerThreshold: 10 }) }),
        ipvs({ op: 'addDestination', service: web, destination: realServer('fd00:244::1') }), // other family, not tunnelled
        ipvs({
          op: 'addDestination',
          service: web,
          destination: realServer('10.244.0.4', { forwarding: 'tunnel', tunnelType: 'gue', tunnelPort: 0, tunnelFlags: 0 }),
        }),
        ipvs({ op: 'addDestination', service: web, destination: realServer('10.244.0.5', { forwarding: 'tunnel' }) }),
        ipvs({ op: 'addDestination', service: web, destination: realServer('10.244.0.6', { forwarding: 'route', upperThreshold: 100, lowerThreshold: 10 }) }),
        ipvs({ op: 'addService', service: virtualServer(mark, { flags: 0x1, timeout: 60, netmask: 24 }) }),
        ipvs({ op: 'addDestination', service: mark, destination: realServer('10.244.0.1', { port: 0 }) }),
        ipvs({ op: 'deleteService', key: web }),
      ],
    ]);
    // The refusals the mirror claims to know, seen to be the kernel's:
    expect(refused).toEqual([
      [
        { index: 0, errno: ESRCH },
        { index: 2, errno: EEXIST },
        { index: 3, errno: ENOENT },
        { index: 5, errno: EEXIST },
      ],
      [
        { index: 1, errno: ENOENT },
        { index: 2, errno: ESRCH },
        { index: 4, errno: ENOENT },
        { index: 5, errno: ENOENT },
        { index: 6, errno: ESRCH },
      ],
      [
        { index: 0, errno: ERANGE },
        { index: 1, errno: EINVAL },
        { index: 2, errno: EINVAL },
      ],
    ]);
  });

  it('agree on ipsets, addresses and the dummy interface, and the refusals', async () => {
    const { refused } = await expectAgreement([
      [
        addEntry(CLUSTER_IP, { ip: '10.96.0.1', protocol: 'tcp', port: 80 }), // no such set
        createSet(CLUSTER_IP),
        createSet(CLUSTER_IP), // the same set again: accepted
        createSet(CLUSTER_IP, { type: 'hash:ip', family: 'inet', comment: true }), // another set of that name
        addEntry(CLUSTER_IP, { ip: '10.96.0.1', protocol: 'tcp', port: 80, comment: 'default/web:http' }),
        addEntry(CLUSTER_IP, { ip: '10.96.0.1', protocol: 'tcp', port: 80, comment: 'default/web:web' }), // again, a new comment
        { kind: 'deleteIpsetEntry', set: CLUSTER_IP, entry: { ip: '10.96.0.2', protocol: 'udp', port: 53 } }, // not there: accepted
        { kind: 'deleteIpsetEntry', set: NODE_PORT, entry: { port: 30080 } }, // no such set
        { kind: 'bindAddress', address: '10.96.0.1' }, // no dummy interface
      ],
      [
        { kind: 'ensureDummyInterface', name: DUMMY },
        { kind: 'bindAddress', address: '10.96.0.1' },
        { kind: 'bindAddress', address: 'fd00:96::1' },
        { kind: 'bindAddress', address: '10.96.0.1' }, // bound already: accepted
        { kind: 'unbindAddress', address: '10.96.0.2' }, // not bound: accepted
        createSet(NODE_PORT),
        addEntry(NODE_PORT, { port: 30080 }),
        { kind: 'deleteUdpFlows', virtualServer: dns, endpoint: { address: '10.244.0.1', port: 53 } },
      ],
      [
        { kind: 'unbindAddress', address: '10.96.0.1' },
        { kind: 'ensureDummyInterface', name: DUMMY },
      ],
    ]);
    expect(refused).toEqual([
      [
        { index: 0, errno: ENOENT },
        { index: 3, errno: EEXIST },
        { index: 7, errno: ENOENT },
        { index: 8, errno: ENODEV },
      ],
      [],
      [],
    ]);
  });

  it('agree on random plans over a few colliding objects', async () => {
    const serviceKey = fc.constantFrom(web, dns, web6, mark);
    const address = (key: IpvsServiceKey): fc.Arbitrary<string> =>
      key.family === 'inet'
        ? fc.constantFrom('10.244.0.1', '10.244.0.2', '10.244.0.3', 'fd00:244::1')
        : fc.constantFrom('fd00:244::1', 'fd00:244::2', '10.244.0.1');
    const destination = (key: IpvsServiceKey): fc.Arbitrary<IpvsDestination> =>
      fc
        .record({
          address: address(key),
          port: fc.constantFrom(8080, 9090),
          forwarding: fc.constantFrom('masq', 'masq', 'route', 'tunnel'),
          weight: fc.integer({ min: 0, max: 3 }),
          thresholds: fc.constantFrom({ upper: 0, lower: 0 }, { upper: 0, lower: 0 }, { upper: 100, lower: 10 }, { upper: 0, lower: 10 }),
          tunnel: fc.constantFrom(
            undefined,
            { tunnelType: 'ipip', tunnelPort: 0, tunnelFlags: 0 },
            { tunnelType: 'gue', tunnelPort: 0, tunnelFlags: 0 },
            { tunnelType: 'gue', tunnelPort: 6080, tunnelFlags: 0 },
          ),
        })
        .map(({ address: a, port, forwarding, weight, thresholds, tunnel }) =>
          realServer(a, {
            port,
            forwarding: forwarding as IpvsDestination['forwarding'],
            weight,
            upperThreshold: thresholds.upper,
            lowerThreshold: thresholds.lower,
            ...(forwarding === 'tunnel' ? (tunnel as Partial<IpvsDestination>) : {}),
          }),
        );
    const serviceOf = (key: IpvsServiceKey): fc.Arbitrary<IpvsService> =>
      fc
        .record({ scheduler: fc.constantFrom('rr', 'wrr', 'lc', 'sh', 'mh', 'nosuch'), persistent: fc.boolean() })
        .map(({ scheduler, persistent }) => virtualServer(key, { scheduler, ...(persistent ? { flags: 0x1, timeout: 300 } : {}) }));
    const ipvsOperation: fc.Arbitrary<KernelOperation> = serviceKey.chain((key) =>
      fc.oneof(
        serviceOf(key).map((s) => ipvs({ op: 'addService', service: s })),
        serviceOf(key).map((s) => ipvs({ op: 'editService', service: s })),
        fc.constant(ipvs({ op: 'deleteService', key })),
        destination(key).map((d) => ipvs({ op: 'addDestination', service: key, destination: d })),
        destination(key).map((d) => ipvs({ op: 'editDestination', service: key, destination: d })),
        destination(key).map((d) => ipvs({ op: 'deleteDestination', service: key, destination: { address: d.address, port: d.port } })),
      ),
    );
    const clusterIpEntry = fc
      .record({ ip: fc.constantFrom('10.96.0.1', '10.96.0.2'), protocol: fc.constantFrom('tcp', 'udp'), port: fc.constant(80) })
      .map((e) => e as IpsetEntry);
    const nodePortEntry = fc.constantFrom(30080, 30081).map((port): IpsetEntry => ({ port }));
    const otherOperation: fc.Arbitrary<KernelOperation> = fc.oneof(
      fc.constant<KernelOperation>({ kind: 'ensureDummyInterface', name: DUMMY }),
      fc.constantFrom(CLUSTER_IP, NODE_PORT).map((name) => createSet(name)),
      // Another set of the name (refused when the name exists): one whose entries are of the same type.
      fc.constant(createSet(CLUSTER_IP, { type: 'hash:ip,port', family: 'inet', comment: true, maxElements: 1024 })),
      fc.record({ kind: fc.constantFrom('bindAddress' as const, 'unbindAddress' as const), address: fc.constantFrom('10.96.0.1', '10.96.0.2', 'fd00:96::1') }),
      fc.record({ kind: fc.constantFrom('addIpsetEntry' as const, 'deleteIpsetEntry' as const), set: fc.constant(CLUSTER_IP), entry: clusterIpEntry }),
      fc.record({ kind: fc.constantFrom('addIpsetEntry' as const, 'deleteIpsetEntry' as const), set: fc.constant(NODE_PORT), entry: nodePortEntry }),
    );
    const plan = fc.array(fc.oneof({ weight: 3, arbitrary: ipvsOperation }, { weight: 2, arbitrary: otherOperation }), { minLength: 1, maxLength: 10 });
    await fc.assert(
      fc.asyncProperty(fc.array(plan, { minLength: 1, maxLength: 4 }), async (plans) => {
        await expectAgreement(plans);
      }),
      { numRuns: 10, endOnFailure: true },
    );
  }, 600_000);
});
