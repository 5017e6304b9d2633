// `kipvs cleanup`: removes what kipvs owns and nothing else — its virtual servers (by the rules of
// reconcile/ownership.ts, also kube-proxy's), the dummy interface, kube-proxy's ipsets.
import { rmSync } from 'node:fs';
import { Command } from 'commander';
import { IpvsClient } from '../netlink/ipvs/client.js';
import { IpsetClient } from '../netlink/ipset/client.js';
import { LinkClient } from '../netlink/rtnl/client.js';
import { DEFAULT_SETTINGS } from '../model/settings.js';
import { ipsetEntryKey } from '../model/desired.js';
import { mayDelete, recordedNodePorts } from '../reconcile/ownership.js';
import type { ObservedIpset } from '../reconcile/state.js';
import { discoverNodeFacts } from '../agent/node-facts.js';
import { FileOwnershipStore } from '../agent/ownership.js';
import { serviceNamesPath } from '../agent/service-names.js';
import { allIpsetNames, cleanupRules } from './agent.js';

export interface CleanupOptions {
  readonly netns?: string;
}

export async function cleanup(options: CleanupOptions): Promise<string[]> {
  const connection = options.netns ? { netns: options.netns } : {};
  const done: string[] = [];
  const dummy = DEFAULT_SETTINGS.dummyInterface;
  const links = LinkClient.open(connection);
  const ipvs = await IpvsClient.open(connection);
  const ipsets = await IpsetClient.open(connection);
  const ownership = FileOwnershipStore.forNamespace(options.netns);
  try {
    done.push(`removed ${await cleanupRules(options.netns)} iptables chains`);
    const bound = new Set((await links.getLink(dummy)) ? (await links.listAddresses(dummy)).map((a) => a.address) : []);
    const node = await discoverNodeFacts({ netns: options.netns, nodePortAddresses: [], dummyInterface: dummy });
    const sets = new Map<string, ObservedIpset>();
    for (const name of allIpsetNames()) {
      const set = await ipsets.listSet(name);
      if (set) sets.set(name, { spec: set.header, entries: new Map(set.entries.map((entry) => [ipsetEntryKey(entry), entry])) });
    }
    const facts = { previouslyOwned: ownership.load().owned, boundAddresses: bound, nodeAddresses: new Set(node.addresses), recordedNodePorts: () => recordedNodePorts(sets) };
    const deletions = (await ipvs.listServices()).filter((service) => mayDelete(service, facts));
    await ipvs.applyAll(deletions.map((service) => ({ op: 'deleteService' as const, key: service.key })));
    done.push(`deleted ${deletions.length} virtual servers`);
    if (await links.getLink(dummy)) {
      await links.deleteLink(dummy, { ignoreMissing: true });
      done.push(`deleted ${dummy}`);
    }
    const existing = new Set(await ipsets.listSetNames());
    const ours = allIpsetNames().filter((name) => existing.has(name));
    for (const name of ours) await ipsets.destroy(name);
    done.push(`destroyed ${ours.length} ipsets`);
    ownership.save({ owned: new Set(), draining: new Map() });
    rmSync(serviceNamesPath(options.netns), { force: true }); // names of virtual servers that are gone
    return done;
  } finally {
    links.close();
    ipvs.close();
    ipsets.close();
  }
}

export function cleanupCommand(): Command {
  return new Command('cleanup')
    .description('remove every kernel object kipvs owns (virtual servers, dummy interface, ipsets) and nothing else')
    .option('--netns <name|path>', 'clean this network namespace')
    .action(async (options: CleanupOptions) => {
      for (const line of await cleanup(options)) console.log(line);
    });
}
