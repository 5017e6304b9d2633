// Sets in the layout of `ipset list` (ipset 7.17), line for line, as a pure function of what the
// kernel reports: operators diff the two. The layout is the tool's list_create() and list_adt()
// (lib/session.c): a "Header:" line that prints the create options in the order of the type's
// create arguments (family, hashsize, maxelem, then the comment flag, then bucketsize and initval),
// members in the order the kernel dumps them (the tool sorts only with -sorted), and a blank line
// between sets but none after the last.
import { formatEntry, type IpsetSet, type IpsetSetHeader } from '../netlink/ipset/types.js';

/** The options after "Header:", e.g. `family inet hashsize 1024 maxelem 65536 comment bucketsize 12 initval 0x0badcafe`. */
export function formatIpsetHeader(header: IpsetSetHeader): string {
  const options: string[] = [];
  if (header.type === 'bitmap:port') {
    options.push(`range ${header.range.from}-${header.range.to}`);
    if (header.comment) options.push('comment');
    return options.join(' ');
  }
  options.push(`family ${header.family}`, `hashsize ${header.hashSize}`, `maxelem ${header.maxElements}`);
  if (header.comment) options.push('comment');
  // Reported from the revisions with bucketsize support on (hash:ip 5, hash:net 7, ...) only.
  if (header.bucketSize !== undefined) options.push(`bucketsize ${header.bucketSize}`);
  // ipset_print_hexnumber(): "0x%08x".
  if (header.initval !== undefined) options.push(`initval 0x${header.initval.toString(16).padStart(8, '0')}`);
  return options.join(' ');
}

/** One set: its header lines, "Members:", one member a line. */
export function formatIpsetSet(set: IpsetSet): string[] {
  const { header } = set;
  return [
    `Name: ${header.name}`,
    `Type: ${header.type}`,
    `Revision: ${header.revision}`,
    `Header: ${formatIpsetHeader(header)}`,
    `Size in memory: ${header.memorySize}`,
    `References: ${header.references}`,
    `Number of entries: ${header.entryCount}`,
    'Members:',
    ...set.entries.map(formatEntry),
  ];
}

/** Every set, as `ipset list` prints them: in the order given (the kernel's), a blank line between two. */
export function formatIpsetListing(sets: readonly IpsetSet[]): string[] {
  return sets.flatMap((set, index) => (index === 0 ? formatIpsetSet(set) : ['', ...formatIpsetSet(set)]));
}
