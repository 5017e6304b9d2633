// An observed kernel state in a form that compares with toEqual: every map sorted by key, traffic
// counters dropped and the connection counts the mirror does not know taken as 0, ipset specs with
// the kernel's defaults filled in. Two reads of one kernel, or the mirror and the kernel after the
// same plans, compare equal exactly when they hold the same objects.
import type { ObservedState } from '../../../src/reconcile/state.js';

export function comparableState(state: ObservedState): unknown {
  const sorted = <T>(entries: Iterable<[string, T]>): Array<[string, T]> => [...entries].sort(([a], [b]) => a.localeCompare(b));
  return {
    dummyInterfaceExists: state.dummyInterfaceExists,
    boundAddresses: [...state.boundAddresses].sort(),
    virtualServers: sorted(state.virtualServers).map(
      ([
        key,
        {
          service: { stats: _stats, ...settable },
          realServers,
        },
      ]) => [
        key,
        settable,
        sorted(realServers).map(([realKey, { stats: _s, ...d }]) => [
          realKey,
          { ...d, activeConns: d.activeConns ?? 0, inactiveConns: d.inactiveConns ?? 0, persistConns: d.persistConns ?? 0 },
        ]),
      ],
    ),
    ipsets: sorted(state.ipsets).map(([name, { spec, entries }]) => [
      name,
      spec.type === 'bitmap:port'
        ? { type: spec.type, range: spec.range, comment: spec.comment ?? false }
        : { type: spec.type, family: spec.family, comment: spec.comment ?? false, maxElements: spec.maxElements ?? 65536 },
      sorted(entries),
    ]),
  };
}
