// `kipvs inspect`: the kernel's IPVS table (and ipsets) as ipvsadm shows it, or as JSON.
import { Command, Option } from 'commander';
import { IpvsClient, type IpvsServiceWithDestinations } from '../netlink/ipvs/client.js';
import type { IpvsInfo } from '../netlink/ipvs/types.js';
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
}

export async function readIpvsTable(netns?: string): Promise<InspectResult> {
  const client = await IpvsClient.open(netns ? { netns } : {});
  try {
    return { info: await client.info(), services: await client.snapshot() };
  } finally {
    client.close();
  }
}

export function renderInspect(result: InspectResult, options: InspectOptions): string {
  if (options.json) return `${JSON.stringify(result, null, 2)}\n`;
  const format: ListFormat = options.stats ? 'stats' : options.rate ? 'rate' : 'connections';
  return `${formatIpvsadmListing(result.info, result.services, format).join('\n')}\n`;
}

export function inspectCommand(): Command {
  return new Command('inspect')
    .description('show the virtual servers and real servers, in the layout of ipvsadm -Ln')
    .addOption(new Option('--stats', 'counters: connections, packets and bytes').conflicts('rate'))
    .addOption(new Option('--rate', 'rates: connections, packets and bytes per second').conflicts('stats'))
    .option('--json', 'print JSON instead')
    .option('--netns <name|path>', 'a network namespace: a name under /run/netns or a path')
    .action(async (options: InspectOptions) => {
      const result = await readIpvsTable(options.netns);
      process.stdout.write(renderInspect(result, options));
    });
}
