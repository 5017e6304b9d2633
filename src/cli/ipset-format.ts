// Sets in the layout of `ipset list` (ipset 7.17), line for line, as a pure function of what the
// kernel reports: operators diff the two. The layout is the tool's list_create() and list_adt()
// (lib/session.c): a "Header:" line that prints the create options in the order of the type's
// create arguments (family, hashsize, maxelem, then the comment flag, then bucketsize and initval),
// members in the order the kernel dumps them (the tool sorts only with -sorted), and a blank line
// between sets but none after the last.
import { formatEntry, type IpsetSet, type IpsetSetHeader, type UndecodedIpset } from '../netlink/ipset/types.js';

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

/**
 * A set kipvs cannot decode (hash:mac, list:set, ...): the lines `ipset list` prints of any set's
 * header, the same; its options and members replaced by a note that says why.
 */
export function formatUndecodedIpset(set: UndecodedIpset): string[] {
  return [
    `Name: ${set.name}`,
    `Type: ${set.type}`,
    `Revision: ${set.revision ?? '?'}`,
    `Header: (not decoded by kipvs: ${set.reason})`,
    `Size in memory: ${set.memorySize}`,
    `References: ${set.references}`,
    `Number of entries: ${set.entryCount}`,
    'Members:',
    ...(set.entryCount > 0 ? [`(${set.entryCount} not decoded by kipvs)`] : []),
  ];
}

const formatAny = (set: IpsetSet | UndecodedIpset): string[] => ('header' in set ? formatIpsetSet(set) : formatUndecodedIpset(set));

/** Every set, as `ipset list` prints them: in the order given (the kernel's), a blank line between two. */
export function formatIpsetListing(sets: ReadonlyArray<IpsetSet | UndecodedIpset>): string[] {
  return sets.flatMap((set, index) => (index === 0 ? formatAny(set) : ['', ...formatAny(set)]));
}
