// What kipvs must remember across restarts: which virtual servers it programmed (so that one of a
// Service deleted while the agent was down is still recognised as ours and removed) and since
// when real servers have been draining (so a restart neither forgets nor restarts their timeout).
// Kept under /run: it lives exactly as long as the kernel state it describes.
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { replaceFileInParts } from '../util/write-all.js';
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

/** Told of a state file that cannot be read or written; the agent goes on without it. */
export type StateProblemReporter = (problem: string) => void;

/** Which namespace a state file describes: its path and the inode of the namespace it named. */
interface NamespaceIdentity {
  readonly path: string;
  readonly inode: number;
}

const FILE_PREFIX = 'owned-virtual-servers';

/** The namespace at `path` now, or undefined when there is none (deleted). */
function namespaceAt(path: string): NamespaceIdentity | undefined {
  try {
    return { path, inode: statSync(path).ino };
  } catch {
    return undefined;
  }
}

export class FileOwnershipStore implements OwnershipStore {
  private cached: AgentState | undefined;
  /** What the file holds: the owned set's serialisation (by identity) and the draining list's. */
  private lastSaved: { readonly owned: { readonly json: Buffer }; readonly draining: string } | undefined;
  /** The owned set's JSON, as the bytes written (300 KB at 10,000 Services, not copied at every write). */
  private ownedSerialised: { readonly set: ReadonlySet<string>; readonly json: Buffer } | undefined;
  private lastProblem = '';

  constructor(
    private readonly path: string,
    private readonly report: StateProblemReporter = () => {},
    /** The namespace programmed; recorded in the file so that a stale file can be told apart. */
    private readonly namespace?: NamespaceIdentity,
  ) {}

  /** One file per network namespace kipvs programs. */
  static forNamespace(netns: string | undefined, directory = '/run/kipvs', report?: StateProblemReporter): FileOwnershipStore {
    // By the namespace's path, so `--netns foo` and `--netns /run/netns/foo` share one file.
    const suffix = netns ? `-${createHash('sha256').update(netnsPath(netns)).digest('hex').slice(0, 12)}` : '';
    const namespace = netns ? namespaceAt(netnsPath(netns)) : undefined;
    return new FileOwnershipStore(join(directory, `${FILE_PREFIX}${suffix}.json`), report, namespace);
  }

  /**
   * A file that is missing is an empty state; one that is corrupt, truncated, or of another
   * namespace that had this one's name is said so and ignored: kipvs then deletes only what the
   * kernel itself proves is its own (reconcile/ownership.ts), never on the file's word.
   */
  load(): AgentState {
    if (this.cached) return this.cached;
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') this.problem(`state file ${this.path} cannot be read (${code ?? String(error)}); starting without it`);
      return (this.cached = EMPTY);
    }
    try {
      this.cached = this.parse(text);
    } catch (error) {
      this.problem(`state file ${this.path} is corrupt or truncated (${(error as Error).message}); starting without it`);
      this.cached = EMPTY;
    }
    return this.cached;
  }

  private parse(text: string): AgentState {
    const parsed = JSON.parse(text) as { owned?: unknown; draining?: unknown; netns?: Partial<NamespaceIdentity> } | null;
    if (typeof parsed !== 'object' || parsed === null || !Array.isArray(parsed.owned)) throw new Error('no list of owned virtual servers');
    if (this.namespace && parsed.netns?.inode !== undefined && parsed.netns.inode !== this.namespace.inode) {
      this.problem(`state file ${this.path} describes an earlier namespace at ${this.namespace.path}; starting without it`);
      return EMPTY;
    }
    const owned = parsed.owned.filter((key): key is string => typeof key === 'string');
    const draining = Array.isArray(parsed.draining) ? (parsed.draining as Array<Partial<DrainingRealServer> | null>) : [];
    const valid = draining.filter(
      (d): d is DrainingRealServer => typeof d?.virtualServer === 'string' && typeof d.realServer === 'string' && typeof d.since === 'number',
    );
    return { owned: new Set(owned), draining: new Map(valid.map((d) => [drainKey(d.virtualServer, d.realServer), d])) };
  }

  private problem(text: string): void {
    if (text === this.lastProblem) return;
    this.lastProblem = text;
    this.report(text);
  }

  save(state: AgentState): void {
    // The owned set is the same object until a virtual server comes or goes: its 10,000 sorted
    // keys are serialised again only then, not for every real server that starts draining; and
    // the file's text is written in its parts, never joined into one string (300 KB, flattened
    // twice to compare) at every endpoint change.
    if (state.owned !== this.ownedSerialised?.set) this.ownedSerialised = { set: state.owned, json: Buffer.from(JSON.stringify([...state.owned].sort())) };
    this.cached = state;
    const owned = this.ownedSerialised;
    const draining = JSON.stringify([...state.draining.values()]);
    if (owned === this.lastSaved?.owned && draining === this.lastSaved.draining) return;
    const netns = this.namespace ? `,"netns":${JSON.stringify(this.namespace)}` : '';
    try {
      mkdirSync(dirname(this.path), { recursive: true });
      replaceFileInParts(this.path, (part) => {
        for (const text of ['{"owned":', owned.json, ',"draining":', draining, netns, '}']) part(text);
      });
    } catch (error) {
      // A read-only or full /run must not stop the proxy: the state is kept in memory, and a
      // restart then knows only what the kernel proves (as with a corrupt file).
      this.problem(`state file ${this.path} cannot be written (${(error as NodeJS.ErrnoException).code ?? String(error)}); kept in memory only`);
      return;
    }
    this.lastSaved = { owned, draining };
  }
}

/**
 * Deletes the state files of network namespaces that are gone (or were replaced by another of the
 * same name): a file says which namespace it describes; one that says nothing (written before
 * kipvs recorded it) or names one that is still there is kept. Returns the files deleted.
 */
export function removeStaleStateFiles(directory = '/run/kipvs'): string[] {
  let names: string[];
  try {
    names = readdirSync(directory);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(`${FILE_PREFIX}-`) || !name.endsWith('.json')) continue;
    const path = join(directory, name);
    let recorded: Partial<NamespaceIdentity> | undefined;
    try {
      recorded = (JSON.parse(readFileSync(path, 'utf8')) as { netns?: Partial<NamespaceIdentity> }).netns;
    } catch {
      continue; // unreadable: not ours to judge
    }
    if (typeof recorded?.path !== 'string' || typeof recorded.inode !== 'number') continue;
    if (namespaceAt(recorded.path)?.inode === recorded.inode) continue;
    rmSync(path, { force: true });
    removed.push(path);
  }
  return removed;
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
