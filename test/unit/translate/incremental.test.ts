import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { IncrementalTranslator, type ServiceObjects } from '../../../src/translate/incremental.js';
import { translate } from '../../../src/translate/translate.js';
import { diff } from '../../../src/reconcile/diff.js';
import { FakeKernel } from '../../support/fake-kernel.js';
import { ClusterStore } from '../../../src/sources/cluster-store.js';
import { DEFAULT_SETTINGS } from '../../../src/model/settings.js';
import { EVERYTHING, type DesiredState, type DiffScope } from '../../../src/model/desired.js';
import type { EndpointSlice, Service } from '../../../src/model/kubernetes.js';

const node = { name: 'node-a', addresses: ['192.0.2.1'], families: ['inet' as const] };

/** Services that collide on purpose: a few ClusterIPs and node ports shared, external IPs shared. */
const service = (i: number, variant: number): Service => ({
  metadata: { name: `svc-${i}`, namespace: i % 2 === 0 ? 'default' : 'other' },
  spec: {
    type: variant % 3 === 0 ? 'ClusterIP' : 'NodePort',
    clusterIP: `10.96.0.${(i % 5) + 1}`,
    externalIPs: variant % 2 === 0 ? ['203.0.113.7'] : [],
    ports: [{ name: 'http', port: 80 + (variant % 2), targetPort: 8080, nodePort: 30000 + (i % 4) }],
  },
});
const slice = (i: number, endpoints: readonly number[]): EndpointSlice => ({
  metadata: { name: `svc-${i}-a`, namespace: i % 2 === 0 ? 'default' : 'other', labels: { 'kubernetes.io/service-name': `svc-${i}` } },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: endpoints.map((e) => ({ addresses: [`10.244.0.${e}`], conditions: { ready: true }, nodeName: e % 2 === 0 ? 'node-a' : 'node-b' })),
});

type Change =
  | { kind: 'service'; i: number; variant: number }
  | { kind: 'deleteService'; i: number }
  | { kind: 'slice'; i: number; endpoints: number[] }
  | { kind: 'deleteSlice'; i: number };

const change: fc.Arbitrary<Change> = fc.oneof(
  fc.record({ kind: fc.constant('service' as const), i: fc.integer({ min: 0, max: 9 }), variant: fc.integer({ min: 0, max: 5 }) }),
  fc.record({ kind: fc.constant('deleteService' as const), i: fc.integer({ min: 0, max: 9 }) }),
  fc.record({
    kind: fc.constant('slice' as const),
    i: fc.integer({ min: 0, max: 9 }),
    endpoints: fc.uniqueArray(fc.integer({ min: 1, max: 6 }), { maxLength: 4 }),
  }),
  fc.record({ kind: fc.constant('deleteSlice' as const), i: fc.integer({ min: 0, max: 9 }) }),
);

function applyChange(store: ClusterStore, c: Change): void {
  if (c.kind === 'service') store.upsertService(service(c.i, c.variant));
  else if (c.kind === 'deleteService') store.deleteService(service(c.i, 0));
  else if (c.kind === 'slice') store.upsertEndpointSlice(slice(c.i, c.endpoints));
  else store.deleteEndpointSlice(slice(c.i, []));
}

/** Plain data, so that toEqual compares the content of two desired states. */
const plain = (state: DesiredState) => ({
  virtualServers: new Map(state.virtualServers),
  boundAddresses: new Set(state.boundAddresses),
  ipsets: new Map([...state.ipsets].map(([name, set]) => [name, { name: set.name, spec: set.spec, entries: new Map(set.entries) }])),
  problems: [...state.problems],
});

const context = { dummyInterface: 'kube-ipvs0', excludeCidrs: [], gracefulTerminationMs: 0, now: 0, draining: new Map(), previouslyOwned: new Set<string>() };

describe('IncrementalTranslator', () => {
  it('keeps the desired state equal to a full translation, whatever the sequence of changes (conflicts, shared addresses and entries)', () => {
    fc.assert(
      fc.property(fc.array(change, { minLength: 1, maxLength: 40 }), (changes) => {
        const store = new ClusterStore();
        const translator = new IncrementalTranslator();
        translator.update(store, store.takeChanged(), node, DEFAULT_SETTINGS);
        for (const c of changes) {
          applyChange(store, c);
          translator.update(store, store.takeChanged(), node, DEFAULT_SETTINGS);
          expect(plain(translator.desired)).toEqual(plain(translate(store.snapshot(), node, DEFAULT_SETTINGS)));
        }
      }),
      { numRuns: 150 },
    );
  });

  it('gives a scope within which the diff finds every operation a full diff finds', () => {
    fc.assert(
      fc.property(fc.array(change, { minLength: 1, maxLength: 30 }), (changes) => {
        const store = new ClusterStore();
        const translator = new IncrementalTranslator();
        const kernel = new FakeKernel();
        translator.update(store, store.takeChanged(), node, DEFAULT_SETTINGS);
        void kernel.apply(diff(translator.desired, kernel.view(), context));
        for (const c of changes) {
          applyChange(store, c);
          const scope = translator.update(store, store.takeChanged(), node, DEFAULT_SETTINGS);
          const scoped = diff(translator.desired, kernel.view(), context, scope);
          const full = diff(translator.desired, kernel.view(), context);
          expect(new Set(scoped.operations.map((o) => JSON.stringify(o)))).toEqual(new Set(full.operations.map((o) => JSON.stringify(o))));
          void kernel.apply(scoped);
          expect(diff(translator.desired, kernel.view(), context).operations).toEqual([]);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('translates again only the changed Services, and everything when the node or the settings change', () => {
    const store = new ClusterStore();
    for (let i = 0; i < 10; i++) {
      store.upsertService(service(i, 1));
      store.upsertEndpointSlice(slice(i, [(i % 6) + 1]));
    }
    // Each translation reads its Service once: count the reads.
    let translated = 0;
    const objects: ServiceObjects = {
      service: (id) => {
        translated++;
        return store.service(id);
      },
      slicesOf: (id) => store.slicesOf(id),
      serviceIds: () => store.serviceIds(),
    };
    const update = (settings: typeof DEFAULT_SETTINGS): { scope: DiffScope; translated: number } => {
      translated = 0;
      const scope = translator.update(objects, store.takeChanged(), node, settings);
      return { scope, translated };
    };
    const translator = new IncrementalTranslator();
    expect(update(DEFAULT_SETTINGS)).toEqual({ scope: EVERYTHING, translated: 10 });
    store.upsertEndpointSlice(slice(3, [1, 2]));
    const changed = update(DEFAULT_SETTINGS);
    expect(changed.translated).toBe(1);
    expect(changed.scope.all).toBe(false);
    expect(update({ ...DEFAULT_SETTINGS, scheduler: 'lc' })).toEqual({ scope: EVERYTHING, translated: 10 });
    expect([...translator.desired.virtualServers.values()].every((vs) => vs.service.scheduler === 'lc')).toBe(true);
  });
});
