// Drift: where the kernel, just read, differs from the agent's mirror of it. A full sync compares
// the two instead of diffing the whole desired state again, and then diffs only what drifted
// (an administrator's ipvsadm -D, a deleted address or ipset entry): the mirror already equals
// the desired state everywhere else, which every sync since the last full read kept so.
//
// The read takes a while (half a second at 10,000 Services), and syncs of endpoint changes go on
// meanwhile: what they touch (TouchedKeys) may have changed after the read saw it, so the
// comparison trusts the mirror there, and the next full sync looks again.
import { forEachPaced, pacer, SLICE_MS } from '../util/event-loop.js';
import { addKeyOf } from '../util/keys-by-name.js';
import { sameSet } from '../kernel/mirror.js';
import { sameServiceSettings } from '../netlink/ipvs/types.js';
import { sameRealServer } from '../model/desired.js';
import type { ObservedState, ObservedStateKeys, ObservedVirtualServer, Plan } from './state.js';
import { ipsetEntryKey, virtualServerKey } from '../model/desired.js';

/** What plans applied since a full read began touched: keys the read may have seen before the change. */
export class TouchedKeys {
  dummyInterface = false;
  readonly virtualServers = new Set<string>();
  readonly addresses = new Set<string>();
  /** Sets created or replaced: every entry of theirs. */
  readonly ipsets = new Set<string>();
  readonly ipsetEntries = new Map<string, Set<string>>();

  record(plan: Plan): void {
    for (const operation of plan.operations) {
      switch (operation.kind) {
        case 'ensureDummyInterface':
          this.dummyInterface = true;
          break;
        case 'createIpset':
          this.ipsets.add(operation.name);
          break;
        case 'bindAddress':
        case 'unbindAddress':
          this.addresses.add(operation.address);
          break;
        case 'addIpsetEntry':
        case 'deleteIpsetEntry':
          addKeyOf(this.ipsetEntries, operation.set, ipsetEntryKey(operation.entry));
          break;
        case 'ipvs': {
          const op = operation.operation;
          this.virtualServers.add(
            virtualServerKey(op.op === 'deleteService' ? op.key : op.op === 'addService' || op.op === 'editService' ? op.service.key : op.service),
          );
          break;
        }
        case 'deleteUdpFlows':
          break;
      }
    }
  }

  entryTouched(set: string, entryKey: string): boolean {
    return this.ipsets.has(set) || (this.ipsetEntries.get(set)?.has(entryKey) ?? false);
  }
}

/**
 * Where the kernel differs from the mirror, in the keys of a diff's scope. Sets that appeared,
 * vanished, or changed type (or became undecodable) are taken whole.
 */
export type Drift = ObservedStateKeys<Set<string>>;

/**
 * The differences between the kernel as read (`kernel`) and the mirror, in what the diff acts on
 * (a service's scheduler, flags, timeout, netmask and engine; a real server's presence, weight,
 * forwarding and thresholds; addresses; sets and their entries), leaving out what `touched`
 * holds. Compares in slices, letting the event loop run in between.
 */
export async function findDrift(kernel: ObservedState, mirror: ObservedState, touched: TouchedKeys): Promise<Drift> {
  const ipsetEntries = new Map<string, Set<string>>();
  const drift: Drift = {
    dummyInterface: kernel.dummyInterfaceExists !== mirror.dummyInterfaceExists && !touched.dummyInterface,
    virtualServers: new Set(),
    addresses: new Set(),
    ipsets: new Set(),
    ipsetEntries,
  };
  const pace = pacer(SLICE_MS);
  await forEachPaced(keysOfEither(kernel.virtualServers, mirror.virtualServers), pace, (key) => {
    if (!touched.virtualServers.has(key) && !sameVirtualServer(kernel.virtualServers.get(key), mirror.virtualServers.get(key))) drift.virtualServers.add(key);
  });
  await forEachPaced(keysOfEither(kernel.boundAddresses, mirror.boundAddresses), pace, (address) => {
    if (!touched.addresses.has(address) && kernel.boundAddresses.has(address) !== mirror.boundAddresses.has(address)) drift.addresses.add(address);
  });
  const setNames = new Set([
    ...kernel.ipsets.keys(),
    ...mirror.ipsets.keys(),
    ...(kernel.undecodedIpsets?.keys() ?? []),
    ...(mirror.undecodedIpsets?.keys() ?? []),
  ]);
  for (const name of setNames) {
    if (touched.ipsets.has(name)) continue;
    const read = kernel.ipsets.get(name);
    const held = mirror.ipsets.get(name);
    if (kernel.undecodedIpsets?.get(name) !== mirror.undecodedIpsets?.get(name) || !read || !held || !sameSet(read.spec, held.spec)) {
      drift.ipsets.add(name);
      continue;
    }
    // The same map: the read found the members the mirror holds (NetlinkKernel.observeIpsets).
    if (read.entries === held.entries) continue;
    await forEachPaced(keysOfEither(read.entries, held.entries), pace, (entryKey) => {
      if (!touched.entryTouched(name, entryKey) && read.entries.has(entryKey) !== held.entries.has(entryKey)) addKeyOf(ipsetEntries, name, entryKey);
    });
  }
  return drift;
}

/** The drift without what was touched since it was found (the mirror is trusted there). */
export function withoutTouched(drift: Drift, touched: TouchedKeys): Drift {
  const entries = new Map<string, Set<string>>();
  for (const [set, keys] of drift.ipsetEntries) {
    const kept = [...keys].filter((key) => !touched.entryTouched(set, key));
    if (kept.length > 0) entries.set(set, new Set(kept));
  }
  return {
    dummyInterface: drift.dummyInterface && !touched.dummyInterface,
    virtualServers: new Set([...drift.virtualServers].filter((key) => !touched.virtualServers.has(key))),
    addresses: new Set([...drift.addresses].filter((address) => !touched.addresses.has(address))),
    ipsets: new Set([...drift.ipsets].filter((name) => !touched.ipsets.has(name))),
    ipsetEntries: entries,
  };
}

function sameVirtualServer(read: ObservedVirtualServer | undefined, held: ObservedVirtualServer | undefined): boolean {
  if (!read || !held) return read === held;
  if (!sameServiceSettings(read.service, held.service) || read.realServers.size !== held.realServers.size) return false;
  // The mirror's own map: /proc confirmed its real servers (proc-assisted-read.ts), as it does for
  // nearly all at each full read; walking 120,000 of them made as many entry pairs.
  if (read.realServers === held.realServers) return true;
  for (const [key, destination] of read.realServers) {
    const other = held.realServers.get(key);
    if (other !== destination && (!other || !sameRealServer(destination, other))) return false;
  }
  return true;
}

/** A map's or a set's keys. */
interface Keyed<K> {
  keys(): Iterable<K>;
  has(key: K): boolean;
}

function* keysOfEither<K>(a: Keyed<K>, b: Keyed<K>): Iterable<K> {
  yield* a.keys();
  for (const key of b.keys()) if (!a.has(key)) yield key;
}
