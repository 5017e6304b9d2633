// `kipvs inspect`: the kernel's IPVS table (and ipsets) as ipvsadm (and ipset) show them, or as JSON.
import { Command, Option } from 'commander';
import { IpsetClient } from '../netlink/ipset/client.js';
import type { IpsetSet, UndecodedIpset } from '../netlink/ipset/types.js';
import { IpvsClient, type IpvsServiceWithDestinations } from '../netlink/ipvs/client.js';
import type { IpvsInfo } from '../netlink/ipvs/types.js';
import { formatIpsetListing } from './ipset-format.js';
import { formatIpvsadmListing, type ListFormat } from './ipvsadm-format.js';

export interface InspectOptions {
  readonly stats?: boolean;
  readonly rate?: boolean;
  readonly json?: boolean;
  readonly ipsets?: boolean;
  readonly netns?: string;
}

export interface InspectResult {
  readonly info: IpvsInfo;
  readonly services: readonly IpvsServiceWithDestinations[];
  /**
   * Present when asked for (--ipsets): every set of the namespace, in the kernel's order; one kipvs
   * cannot decode (hash:mac, list:set, ...) by name, type and the reason.
   */
  readonly ipsets?: ReadonlyArray<IpsetSet | UndecodedIpset>;
}

/** The table, with its counters only when they will be shown (they are most of a large dump's cost). */
export async function readIpvsTable(netns?: string, withStats = true): Promise<InspectResult> {
  const client = await IpvsClient.open(netns ? { netns } : {});
  try {
    return { info: await client.info(), services: await client.snapshot({ withStats }) };
  } finally {
    client.close();
  }
}

/**
 * Every set with its members, in the order `ipset list` shows them: the kernel's, which is the
 * order of the set names it dumps (by index, so a new set can take a destroyed one's place).
 */
export async function readIpsets(netns?: string): Promise<Array<IpsetSet | UndecodedIpset>> {
  const client = await IpsetClient.open(netns ? { netns } : {});
  try {
    const sets: Array<IpsetSet | UndecodedIpset> = [];
    for (const name of await client.listSetNames()) {
      const listing = await client.readSet(name);
      if (!listing) continue; // destroyed since the names were listed
      sets.push('decoded' in listing ? listing.decoded : listing.undecoded);
    }
    return sets;
  } finally {
    client.close();
  }
}

export function renderInspect(result: InspectResult, options: InspectOptions): string {
  if (options.json) return `${JSON.stringify(result, null, 2)}\n`;
  const format: ListFormat = options.stats ? 'stats' : options.rate ? 'rate' : 'connections';
  const lines = formatIpvsadmListing(result.info, result.services, format);
  // `ipset list` prints nothing when there are no sets, and so do we after the IPVS table.
  if (result.ipsets && result.ipsets.length > 0) lines.push('', ...formatIpsetListing(result.ipsets));
  return `${lines.join('\n')}\n`;
}

export function inspectCommand(): Command {
  return new Command('inspect')
    .description('show the virtual servers and real servers, in the layout of ipvsadm -Ln; with --ipsets the ipsets too')
    .addOption(new Option('--stats', 'counters: connections, packets and bytes').conflicts('rate'))
    .addOption(new Option('--rate', 'rates: connections, packets and bytes per second').conflicts('stats'))
    .option('--ipsets', 'after the table, every ipset and its members in the layout of ipset list')
    .option('--json', 'print JSON instead')
    .option('--netns <name|path>', 'a network namespace: a name under /run/netns or a path')
    .action(async (options: InspectOptions) => {
      const table = await readIpvsTable(options.netns, Boolean(options.stats || options.rate || options.json));
      const result = options.ipsets ? { ...table, ipsets: await readIpsets(options.netns) } : table;
      process.stdout.write(renderInspect(result, options));
    });
}
