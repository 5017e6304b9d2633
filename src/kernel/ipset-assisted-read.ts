// A set's listing compared with the members the caller expects as it is decoded (Kernel.observe
// with a hint), as ProcConfirmations does for /proc/net/ip_vs. A member the expectation holds is
// taken as the expectation's own entry and the decoded one dropped at once: a full read used to
// keep every decoded member (27,000 at 10,000 Services) and its key until its whole set was read,
// long enough for the young-generation collections of the paced read to promote them all.
import { ipsetEntryKey } from '../model/desired.js';
import type { IpsetEntry } from '../netlink/ipset/types.js';
import { forEachPaced, pacer, SLICE_MS } from '../util/event-loop.js';

export class ExpectedSetMembers {
  /** The members in the kernel's order: the expectation's entry where it holds the key, else the one read. */
  private readonly members: IpsetEntry[] = [];
  private allHeld = true;
  /** The expectation's size when the read began (syncs change it meanwhile). */
  private readonly heldAtStart: number;

  constructor(private readonly held: ReadonlyMap<string, IpsetEntry>) {
    this.heldAtStart = held.size;
  }

  /** The listing's sink (IpsetClient.readSet's `onMember`). */
  readonly add = (entry: IpsetEntry): void => {
    const mine = this.held.get(ipsetEntryKey(entry));
    if (!mine) this.allHeld = false;
    this.members.push(mine ?? entry);
  };

  /**
   * The set's members by ipsetEntryKey(): the expectation's own map when every member read is
   * expected, as many as expected at the start and at the end of the read (no one change of a
   * sync meanwhile hides one of an administrator's; what two interleaved could hide, the next full
   * read finds); otherwise the members read, the expected ones as the expectation's entries.
   */
  async entries(): Promise<ReadonlyMap<string, IpsetEntry>> {
    const count = this.members.length;
    if (this.allHeld && count === this.heldAtStart && count === this.held.size) return this.held;
    return keyedPaced(this.members);
  }
}

/** Entries by ipsetEntryKey(), keyed in slices (27,000 at 10,000 Services). */
export async function keyedPaced(members: readonly IpsetEntry[]): Promise<Map<string, IpsetEntry>> {
  const entries = new Map<string, IpsetEntry>();
  await forEachPaced(members, pacer(SLICE_MS), (entry) => {
    entries.set(ipsetEntryKey(entry), entry);
  });
  return entries;
}
