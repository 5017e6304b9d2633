// The read through /proc/net/ip_vs held to the full netlink read it replaces: a kernel table K is
// printed as the kernel prints it, the agent expects M (K with an administrator's changes undone,
// or its own state behind them), and the assisted read (the confirmed virtual servers from M with
// /proc's counts, every other one from K as GET_DEST would return it) must equal K wherever /proc
// can tell, and everywhere once each virtual server's turn has come.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { confirmedRealServers, FULL_READ_ROUNDS, heldService, ProcConfirmations, turnOf, type ObserveHint } from '../../../src/kernel/proc-assisted-read.js';
import { ProcIpvsTableParser, type ProcVirtualServer } from '../../../src/netlink/ipvs/proc-table.js';
import { isFwmarkKey, type IpvsDestination, type IpvsService, type IpvsServiceKey } from '../../../src/netlink/ipvs/types.js';
import { realServerKey, virtualServerKey } from '../../../src/model/desired.js';
import type { ObservedState } from '../../../src/reconcile/state.js';
import { renderProcTable } from '../support/proc-table.js';
import { realServer } from '../../support/ipvs-objects.js';

type Table = Map<string, { service: IpvsService; realServers: ReadonlyMap<string, IpvsDestination> }>;

const KEYS: IpvsServiceKey[] = [
  { family: 'inet', protocol: 'TCP', address: '10.96.0.1', port: 80 },
  { family: 'inet', protocol: 'UDP', address: '10.96.0.10', port: 53 },
  { family: 'inet6', protocol: 'TCP', address: 'fd00:96::1', port: 443 },
  { family: 'inet', protocol: 'SCTP', address: '192.168.0.10', port: 30000 },
  { family: 'inet', fwmark: 7 },
  { family: 'inet6', fwmark: 7 },
  { family: 'inet', fwmark: 9 },
];
const ADDRESSES = ['10.244.1.2', '10.244.1.3', '10.244.2.4', 'fd00:244::2', 'fd00:244::3'];

const destination: fc.Arbitrary<IpvsDestination> = fc
  .record({
    address: fc.constantFrom(...ADDRESSES),
    port: fc.constantFrom(8080, 53),
    forwarding: fc.constantFrom('masq' as const, 'local' as const, 'tunnel' as const, 'route' as const, 'bypass' as const),
    weight: fc.integer({ min: 0, max: 3 }),
    upperThreshold: fc.constantFrom(0, 100),
    lowerThreshold: fc.constant(0),
    activeConns: fc.integer({ min: 0, max: 2 }),
    inactiveConns: fc.integer({ min: 0, max: 2 }),
    persistConns: fc.constant(0),
  })
  .map((d) => ({
    ...d,
    family: d.address.includes(':') ? ('inet6' as const) : ('inet' as const),
    ...(d.forwarding === 'tunnel' ? { tunnelType: 'ipip' as const, tunnelPort: 0, tunnelFlags: 0 } : {}),
  }));

const virtualServer = (key: IpvsServiceKey): fc.Arbitrary<{ service: IpvsService; realServers: Map<string, IpvsDestination> }> =>
  fc.uniqueArray(destination, { maxLength: 4, selector: realServerKey }).map((list) => ({
    service: { key, scheduler: 'rr', flags: 0, timeout: 0, netmask: key.family === 'inet' ? 32 : 128 },
    // A real server of the other family only through a tunnel, as the kernel insists.
    realServers: new Map(list.filter((d) => d.family === key.family || d.forwarding === 'tunnel').map((d) => [realServerKey(d), d])),
  }));

const table: fc.Arbitrary<Table> = fc
  .subarray(KEYS)
  .chain((keys) => fc.tuple(...keys.map(virtualServer)).map((servers) => new Map(servers.map((vs) => [virtualServerKey(vs.service.key), vs]))));

/** What the agent may expect instead: the kernel with each virtual server changed, dropped, or added. */
const expectation = (kernel: Table): fc.Arbitrary<Table> =>
  fc
    .tuple(...KEYS.map((key) => fc.tuple(fc.constantFrom('same', 'same', 'other', 'gone'), virtualServer(key), fc.nat(), fc.integer({ min: 0, max: 3 }))))
    .map((choices) => {
      const expected: Table = new Map();
      choices.forEach(([choice, other, pick, weight], i) => {
        const key = KEYS[i] as IpvsServiceKey;
        const name = virtualServerKey(key);
        const held = kernel.get(name);
        if (choice === 'gone') return;
        if (choice === 'other') {
          expected.set(name, other);
          return;
        }
        if (!held) return;
        // The same, but for one real server's weight, or one real server's counts (which never matter).
        const realServers = new Map([...held.realServers].map(([k, d]) => [k, { ...d, activeConns: 0 }]));
        const [firstKey, first] = [...realServers][pick % Math.max(1, realServers.size)] ?? [];
        if (firstKey && first && pick % 3 === 0) realServers.set(firstKey, { ...first, weight });
        expected.set(name, { service: held.service, realServers });
      });
      return expected;
    });

/** The kernel's table as /proc/net/ip_vs prints it: a bypass real server as Masq, a mark without its family. */
function printed(kernel: Table): string {
  const services: ProcVirtualServer[] = [...kernel.values()].map(({ service, realServers }) => ({
    key: isFwmarkKey(service.key) ? { fwmark: service.key.fwmark } : service.key,
    scheduler: service.scheduler,
    onePacket: false,
    destinations: [...realServers.values()].map((d) => ({
      address: d.address,
      port: d.port,
      family: d.family,
      forwarding: d.forwarding === 'bypass' ? 'masq' : d.forwarding,
      weight: d.weight,
      activeConns: d.activeConns ?? 0,
      inactiveConns: d.inactiveConns ?? 0,
    })),
  }));
  return renderProcTable(services);
}

/** The assisted read of the whole table: confirmed from the expectation, or as GET_DEST reads it. */
function assistedRead(kernel: Table, expected: Table, round: number): Table {
  const hint: ObserveHint = { expected: asObserved(expected), round };
  // Compared as the agent compares: line by line while the table is read.
  const shown = new ProcConfirmations(hint.expected);
  const parser = new ProcIpvsTableParser(shown.add);
  parser.push(printed(kernel));
  parser.finish();
  const result: Table = new Map();
  for (const [key, { service, realServers }] of kernel) {
    result.set(key, { service, realServers: confirmedRealServers(service, shown, hint) ?? realServers });
  }
  return result;
}

const asObserved = (virtualServers: Table): ObservedState => ({ dummyInterfaceExists: true, virtualServers, boundAddresses: new Set(), ipsets: new Map() });

/** A table in a form that compares: sorted real servers, with only the fields /proc shows, or all of them. */
function comparable(state: Table, fields: 'shown' | 'all'): unknown {
  return [...state]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, { realServers }]) => [
      key,
      [...realServers.values()]
        .map((d) =>
          fields === 'all'
            ? { ...d, persistConns: 0 }
            : {
                address: d.address,
                port: d.port,
                family: d.family,
                forwarding: d.forwarding === 'bypass' ? 'masq' : d.forwarding,
                weight: d.weight,
                activeConns: d.activeConns,
                inactiveConns: d.inactiveConns,
              },
        )
        .sort((a, b) => realServerKey(a).localeCompare(realServerKey(b))),
    ]);
}

/** The expectation differs from the kernel only where /proc shows it (not in thresholds, tunnel settings, bypass). */
function differsOnlyWhereShown(kernel: Table, expected: Table): boolean {
  for (const [key, held] of kernel) {
    const wanted = expected.get(key);
    if (!wanted) continue;
    for (const [realKey, d] of held.realServers) {
      const e = wanted.realServers.get(realKey);
      if (!e) continue;
      const shownSame =
        e.family === d.family &&
        e.weight === d.weight &&
        (e.forwarding === 'bypass' ? 'masq' : e.forwarding) === (d.forwarding === 'bypass' ? 'masq' : d.forwarding);
      const hiddenSame =
        e.forwarding === d.forwarding && e.upperThreshold === d.upperThreshold && e.lowerThreshold === d.lowerThreshold && e.tunnelType === d.tunnelType;
      if (shownSame && !hiddenSame) return false;
    }
  }
  return true;
}

describe('the IPVS read through /proc/net/ip_vs', () => {
  it('reads what the full netlink read reads wherever /proc shows it: deleted, added and foreign real servers, weights, counts', () => {
    fc.assert(
      fc.property(
        table.chain((kernel) => fc.tuple(fc.constant(kernel), expectation(kernel), fc.nat())),
        ([kernel, expected, round]) => {
          expect(comparable(assistedRead(kernel, expected, round), 'shown')).toEqual(comparable(kernel, 'shown'));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('reads exactly what the full netlink read reads when the expectation differs only where /proc shows it', () => {
    fc.assert(
      fc.property(
        table.chain((kernel) => fc.tuple(fc.constant(kernel), expectation(kernel), fc.nat())),
        ([kernel, expected, round]) => {
          fc.pre(differsOnlyWhereShown(kernel, expected));
          expect(comparable(assistedRead(kernel, expected, round), 'all')).toEqual(comparable(kernel, 'all'));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('reads every virtual server in full on its turn, so a change /proc cannot show (a threshold) is found within FULL_READ_ROUNDS reads', () => {
    fc.assert(
      fc.property(
        table.chain((kernel) => fc.tuple(fc.constant(kernel), expectation(kernel))),
        ([kernel, expected]) => {
          for (const [key, held] of kernel) {
            const round = turnOf(key) + FULL_READ_ROUNDS * 3;
            const read = assistedRead(kernel, expected, round).get(key);
            expect(comparable(new Map([[key, read ?? held]]), 'all')).toEqual(comparable(new Map([[key, held]]), 'all'));
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it("takes a threshold changed behind the agent's back from the expectation until the virtual server's turn", () => {
    const key = KEYS[0] as IpvsServiceKey;
    const name = virtualServerKey(key);
    const real = realServer('10.244.1.2', { activeConns: 0, inactiveConns: 0, persistConns: 0 });
    const service: IpvsService = { key, scheduler: 'rr', flags: 0, timeout: 0, netmask: 32 };
    const kernel: Table = new Map([[name, { service, realServers: new Map([[realServerKey(real), { ...real, upperThreshold: 50 }]]) }]]);
    const expected: Table = new Map([[name, { service, realServers: new Map([[realServerKey(real), real]]) }]]);
    const thresholds = (round: number): number | undefined =>
      assistedRead(kernel, expected, round).get(name)?.realServers.get(realServerKey(real))?.upperThreshold;
    expect(thresholds(turnOf(name) + 1)).toBe(0);
    expect(thresholds(turnOf(name))).toBe(50);
  });

  it('keeps the expected object for a virtual server read over netlink only when it equals the one read in every field', () => {
    const settings = fc.record({
      scheduler: fc.constantFrom('rr', 'wrr'),
      flags: fc.constantFrom(0, 1),
      timeout: fc.constantFrom(0, 10800),
      netmask: fc.constantFrom(32, 24),
      persistenceEngine: fc.option(fc.constant('sip'), { nil: undefined }),
      counted: fc.boolean(),
    });
    const service = (
      key: IpvsServiceKey,
      {
        counted,
        persistenceEngine,
        ...rest
      }: { counted: boolean; persistenceEngine: string | undefined } & Omit<IpvsService, 'key' | 'persistenceEngine' | 'stats'>,
    ): IpvsService => ({
      key,
      ...rest,
      ...(persistenceEngine !== undefined ? { persistenceEngine } : {}),
      ...(counted ? { stats: { conns: 1, inPackets: 0, outPackets: 0, inBytes: 0, outBytes: 0, cps: 0, inPps: 0, outPps: 0, inBps: 0, outBps: 0 } } : {}),
    });
    fc.assert(
      fc.property(fc.constantFrom(...KEYS), settings, fc.option(settings, { nil: undefined }), (key, readSettings, heldSettings) => {
        const read = service(key, readSettings);
        const held = heldSettings ? service(key, heldSettings) : undefined;
        const expected = asObserved(new Map(held ? [[virtualServerKey(key), { service: held, realServers: new Map<string, IpvsDestination>() }]] : []));
        const kept = heldService(expected, read);
        // Whichever is kept, it is the service as read, field for field.
        expect(kept).toEqual(read);
        expect(kept === held).toBe(held !== undefined && JSON.stringify(held) === JSON.stringify(read) && !readSettings.counted);
      }),
    );
  });
});
