// `kipvs inspect`: the kernel's IPVS table (and ipsets) as ipvsadm (and ipset) show them, or as JSON;
// with --names or --service, each virtual server's Service port and each real server's pod after it.
import { once } from 'node:events';
import { Command, Option } from 'commander';
import { IpsetClient } from '../netlink/ipset/client.js';
import type { IpsetSet, UndecodedIpset } from '../netlink/ipset/types.js';
import { IpvsClient, type IpvsServiceWithDestinations } from '../netlink/ipvs/client.js';
import type { IpvsInfo } from '../netlink/ipvs/types.js';
import { formatIpsetListing } from './ipset-format.js';
import { compareServiceKeys, formatIpvsadmListing, listingHeader, virtualServerLines, type ListFormat } from './ipvsadm-format.js';
import { KipvsError } from '../errors.js';
import type { ServiceNames } from '../agent/service-names.js';
import { findServiceNames, ipsetEntriesOf, listingNames, nameOfVirtualServer, parseServiceId, virtualServersOfService } from './inspect-names.js';

export interface InspectOptions {
  readonly stats?: boolean;
  readonly rate?: boolean;
  readonly json?: boolean;
  readonly ipsets?: boolean;
  readonly netns?: string;
  /** Show Service and pod names (from the agent's record, or the API server with --kubeconfig). */
  readonly names?: boolean;
  /** `namespace/name`: only this Service's virtual servers, real servers and ipset entries. */
  readonly service?: string;
  readonly kubeconfig?: string;
}

export interface InspectResult {
  readonly info: IpvsInfo;
  readonly services: readonly IpvsServiceWithDestinations[];
  /**
   * Present when asked for (--ipsets): every set of the namespace, in the kernel's order; one kipvs
   * cannot decode (hash:mac, list:set, ...) by name, type and the reason.
   */
  readonly ipsets?: ReadonlyArray<IpsetSet | UndecodedIpset>;
  /** Present with --names or --service. */
  readonly names?: ServiceNames;
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
  const { names } = result;
  const services = names && options.service !== undefined ? virtualServersOfService(result.services, names, options.service) : result.services;
  if (options.json)
    return `${JSON.stringify(names ? { ...jsonWithNames(result, names, services), ...(options.service === undefined ? {} : { service: options.service }) } : result, null, 2)}\n`;
  const lines = formatIpvsadmListing(result.info, services, listFormat(options), names && listingNames(names));
  if (names && options.service !== undefined) {
    // One Service: its entries, as `ipset save` lines (the sets' headers would count every entry).
    lines.push('', 'ipset entries:', ...ipsetEntriesOf(result.ipsets ?? [], services), ...namesFooter(names));
  } else {
    lines.push(...listingFooter(result.ipsets, names));
  }
  return `${lines.join('\n')}\n`;
}

const listFormat = (options: InspectOptions): ListFormat => (options.stats ? 'stats' : options.rate ? 'rate' : 'connections');

const namesFooter = (names: ServiceNames | undefined): string[] =>
  names ? ['', `Names from ${names.source}${names.truncated ? ' (truncated: some virtual servers are not named)' : ''}.`] : [];

/** What follows the IPVS table: the ipsets when asked for, then where the names came from. */
function listingFooter(ipsets: InspectResult['ipsets'], names: ServiceNames | undefined): string[] {
  // `ipset list` prints nothing when there are no sets, and so do we after the IPVS table.
  return [...(ipsets && ipsets.length > 0 ? ['', ...formatIpsetListing(ipsets)] : []), ...namesFooter(names)];
}

/**
 * The table as ipvsadm prints it, written as it is read: virtual servers sorted first (one dump),
 * then each with its real servers, so that 110,000 objects never exist at once (a fresh process's
 * growing heap and its collections were most of a large table's time). Output renderInspect()
 * would give, byte for byte.
 */
async function printListing(options: InspectOptions, names: ServiceNames | undefined): Promise<void> {
  const format = listFormat(options);
  const withStats = format !== 'connections';
  const listing = names && listingNames(names);
  const out = new ChunkedWriter(process.stdout);
  const client = await IpvsClient.open(options.netns ? { netns: options.netns } : {});
  try {
    await out.lines(listingHeader(await client.info(), format));
    const services = (await client.listServices({ withStats })).sort((a, b) => compareServiceKeys(a.key, b.key));
    for await (const entry of client.withDestinations(services, { withStats })) await out.lines(virtualServerLines(entry, format, listing));
  } finally {
    client.close();
  }
  await out.lines(listingFooter(options.ipsets ? await readIpsets(options.netns) : undefined, names));
  await out.end();
}

/** Lines gathered into writes of about 64 KiB, each waiting for the stream to drain when it asks to. */
class ChunkedWriter {
  private pending: string[] = [];
  private size = 0;

  constructor(private readonly stream: NodeJS.WritableStream) {}

  async lines(lines: readonly string[]): Promise<void> {
    for (const line of lines) {
      this.pending.push(line);
      this.size += line.length + 1;
    }
    if (this.size >= 65536) await this.flush();
  }

  async end(): Promise<void> {
    await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const text = `${this.pending.join('\n')}\n`;
    this.pending = [];
    this.size = 0;
    if (!this.stream.write(text)) await once(this.stream, 'drain');
  }
}

function jsonWithNames(result: InspectResult, names: ServiceNames, services: InspectResult['services']): object {
  return {
    info: result.info,
    namesFrom: names.source,
    services: services.map((entry) => ({
      ...entry,
      servicePort: nameOfVirtualServer(names, entry.service.key) ?? null,
      destinations: entry.destinations.map((destination) => ({ ...destination, pod: names.pods.get(destination.address) ?? null })),
    })),
    ...(result.ipsets ? { ipsets: result.ipsets } : {}),
  };
}

async function readNames(options: InspectOptions): Promise<ServiceNames | undefined> {
  if (!options.names && options.service === undefined) return undefined;
  if (options.service !== undefined) parseServiceId(options.service);
  const names = await findServiceNames({ kubeconfig: options.kubeconfig, netns: options.netns });
  if (names) return names;
  if (options.service !== undefined)
    throw new KipvsError('KIPVS_USAGE', 'no Service names: the agent has left no record in /run/kipvs for this namespace; give --kubeconfig FILE');
  return {
    virtualServers: new Map(),
    nodePorts: new Map(),
    pods: new Map(),
    source: 'nowhere: the agent has left no record in /run/kipvs for this namespace (give --kubeconfig FILE)',
    truncated: false,
  };
}

export function inspectCommand(): Command {
  return new Command('inspect')
    .description('show the virtual servers and real servers, in the layout of ipvsadm -Ln; with --ipsets the ipsets too')
    .addOption(new Option('--stats', 'counters: connections, packets and bytes').conflicts('rate'))
    .addOption(new Option('--rate', 'rates: connections, packets and bytes per second').conflicts('stats'))
    .option('--ipsets', 'after the table, every ipset and its members in the layout of ipset list')
    .option('--names', 'after each virtual server its Service port (namespace/name:port), after each real server its pod')
    .option('--service <namespace/name>', "only this Service's virtual servers, real servers (with pods) and ipset entries")
    .option('--kubeconfig <path>', "take the names from this API server instead of the agent's record in /run/kipvs")
    .option('--json', 'print JSON instead')
    .option('--netns <name|path>', 'a network namespace: a name under /run/netns or a path')
    .action(async (options: InspectOptions) => {
      const names = await readNames(options);
      if (!options.json && options.service === undefined) {
        await printListing(options, names);
        return;
      }
      const table = await readIpvsTable(options.netns, Boolean(options.stats || options.rate || options.json));
      const ipsets = options.ipsets || options.service !== undefined ? await readIpsets(options.netns) : undefined;
      process.stdout.write(renderInspect({ ...table, ...(ipsets ? { ipsets } : {}), ...(names ? { names } : {}) }, options));
    });
}
