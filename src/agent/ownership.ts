// What kipvs must remember across restarts: which virtual servers it programmed (so that one of a
// Service deleted while the agent was down is still recognised as ours and removed) and since
// when real servers have been draining (so a restart neither forgets nor restarts their timeout).
// Kept under /run: it lives exactly as long as the kernel state it describes.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { drainKey, type DrainingRealServer } from '../reconcile/state.js';
import { netnsPath } from '../netlink/netns.js';

export interface AgentState {
  /** Never changed in place: a new set when a virtual server comes or goes. */
  readonly owned: ReadonlySet<string>;
  readonly draining: ReadonlyMap<string, DrainingRealServer>;
}

const EMPTY: AgentState = { owned: new Set(), draining: new Map() };

export interface OwnershipStore {
  load(): AgentState;
  save(state: AgentState): void;
}

export class FileOwnershipStore implements OwnershipStore {
  private cached: AgentState | undefined;
  private lastSaved = '';
  private ownedSerialised: { readonly set: ReadonlySet<string>; readonly json: string } | undefined;

  constructor(private readonly path: string) {}

  /** One file per network namespace kipvs programs. */
  static forNamespace(netns: string | undefined, directory = '/run/kipvs'): FileOwnershipStore {
    // By the namespace's path, so `--netns foo` and `--netns /run/netns/foo` share one file.
    const suffix = netns ? `-${createHash('sha256').update(netnsPath(netns)).digest('hex').slice(0, 12)}` : '';
    return new FileOwnershipStore(join(directory, `owned-virtual-servers${suffix}.json`));
  }

  load(): AgentState {
    if (this.cached) return this.cached;
    try {
      const parsed = JSON.parse(readFileSync(this.path, 'utf8')) as { owned?: unknown; draining?: unknown };
      const owned = Array.isArray(parsed.owned) ? parsed.owned.filter((key): key is string => typeof key === 'string') : [];
      const draining = Array.isArray(parsed.draining) ? (parsed.draining as DrainingRealServer[]) : [];
      this.cached = {
        owned: new Set(owned),
        draining: new Map(draining.filter((d) => typeof d?.virtualServer === 'string').map((d) => [drainKey(d.virtualServer, d.realServer), d])),
      };
    } catch {
      this.cached = EMPTY;
    }
    return this.cached;
  }

  save(state: AgentState): void {
    // The owned set is the same object until a virtual server comes or goes: its 10,000 sorted
    // keys are serialised again only then, not for every real server that starts draining.
    if (state.owned !== this.ownedSerialised?.set) this.ownedSerialised = { set: state.owned, json: JSON.stringify([...state.owned].sort()) };
    this.cached = state;
    const text = `{"owned":${this.ownedSerialised.json},"draining":${JSON.stringify([...state.draining.values()])}}`;
    if (text === this.lastSaved) return;
    mkdirSync(dirname(this.path), { recursive: true });
    writeFileSync(`${this.path}.tmp`, text);
    renameSync(`${this.path}.tmp`, this.path);
    this.lastSaved = text;
  }
}

export class MemoryOwnershipStore implements OwnershipStore {
  private state: AgentState = EMPTY;
  load(): AgentState {
    return this.state;
  }
  save(state: AgentState): void {
    this.state = state;
  }
}
