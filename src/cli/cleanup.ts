// `kipvs cleanup`: removes what kipvs owns and nothing else — its virtual servers (by the rules of
// reconcile/ownership.ts, also kube-proxy's), the dummy interface, kube-proxy's ipsets. Each step
// runs even when one before it failed (a set of a type kipvs cannot read, a refused deletion): a
// node being cleaned must lose as much of kipvs as it can; the failures are listed and make the
// command fail.
import { rmSync } from 'node:fs';
import { IpvsClient } from '../netlink/ipvs/client.js';
import { IpsetClient } from '../netlink/ipset/client.js';
import { LinkClient } from '../netlink/rtnl/client.js';
import { KipvsError } from '../errors.js';
import { DEFAULT_SETTINGS } from '../model/settings.js';
import { ipsetEntryKey } from '../model/desired.js';
import { mayDelete, recordedNodePorts } from '../reconcile/ownership.js';
import type { ObservedIpset } from '../reconcile/state.js';
import { discoverNodeFacts } from '../agent/node-facts.js';
import { FileOwnershipStore } from '../agent/ownership.js';
import { serviceNamesPath } from '../agent/service-names.js';
import { allIpsetNames } from './agent-options.js';
import { cleanupIptables, detectIptablesBackend, type IptablesBackend } from '../kernel/iptables.js';
import { KIPVS_IPTABLES_OWNERSHIP } from '../translate/iptables-rules.js';
import type { AddressFamily } from '../ip.js';

export interface CleanupOptions {
  readonly netns?: string;
}

export interface CleanupReport {
  readonly done: string[];
  /** One line per step that failed, with the error. */
  readonly failed: string[];
}

interface Clients {
  readonly links: LinkClient;
  readonly ipvs: IpvsClient;
  readonly ipsets: IpsetClient;
}

/** kube-proxy's sets that kipvs can read; one it cannot (hash:mac, ...) records no NodePort. */
async function readKubeSets(ipsets: IpsetClient): Promise<Map<string, ObservedIpset>> {
  const sets = new Map<string, ObservedIpset>();
  for (const name of allIpsetNames()) {
    const listing = await ipsets.readSet(name);
    if (listing && 'decoded' in listing) {
      const set = listing.decoded;
      sets.set(name, { spec: set.header, entries: new Map(set.entries.map((entry) => [ipsetEntryKey(entry), entry])) });
    }
  }
  return sets;
}

async function deleteVirtualServers({ links, ipvs, ipsets }: Clients, netns: string | undefined, previouslyOwned: ReadonlySet<string>): Promise<string> {
  const dummy = DEFAULT_SETTINGS.dummyInterface;
  const bound = new Set((await links.getLink(dummy)) ? (await links.listAddresses(dummy)).map((a) => a.address) : []);
  const node = await discoverNodeFacts({ netns, nodePortAddresses: [], dummyInterface: dummy });
  const sets = await readKubeSets(ipsets);
  const facts = { previouslyOwned, boundAddresses: bound, nodeAddresses: new Set(node.addresses), recordedNodePorts: () => recordedNodePorts(sets) };
  const deletions = (await ipvs.listServices()).filter((service) => mayDelete(service, facts));
  const outcomes = await ipvs.apply(deletions.map((service) => ({ op: 'deleteService' as const, key: service.key })));
  const refused = outcomes.flatMap((outcome) => (outcome.ok ? [] : [outcome.error.message]));
  if (refused.length > 0)
    throw new KipvsError(
      'KIPVS_CLEANUP_INCOMPLETE',
      `deleted ${deletions.length - refused.length} of ${deletions.length} virtual servers: ${refused.join('; ')}`,
    );
  return `deleted ${deletions.length} virtual servers`;
}

/** Every kube-proxy-named set, whatever its type; one that cannot go (in use) does not keep the others. */
async function destroySets(ipsets: IpsetClient): Promise<string> {
  const existing = new Set(await ipsets.listSetNames());
  const ours = allIpsetNames().filter((name) => existing.has(name));
  const refused: string[] = [];
  for (const name of ours) {
    await ipsets.destroy(name).catch((error: unknown) => refused.push((error as Error).message));
  }
  if (refused.length > 0)
    throw new KipvsError('KIPVS_CLEANUP_INCOMPLETE', `destroyed ${ours.length - refused.length} of ${ours.length} ipsets: ${refused.join('; ')}`);
  return `destroyed ${ours.length} ipsets`;
}

export async function cleanup(options: CleanupOptions): Promise<CleanupReport> {
  const connection = options.netns ? { netns: options.netns } : {};
  const report: CleanupReport = { done: [], failed: [] };
  const step = async (what: string, run: () => Promise<string | undefined>): Promise<void> => {
    try {
      const line = await run();
      if (line !== undefined) report.done.push(line);
    } catch (error) {
      report.failed.push(`${what}: ${(error as Error).message}`);
    }
  };
  const dummy = DEFAULT_SETTINGS.dummyInterface;
  const links = LinkClient.open(connection);
  const ipvs = await IpvsClient.open(connection);
  const ipsets = await IpsetClient.open(connection);
  const clients = { links, ipvs, ipsets };
  const ownership = FileOwnershipStore.forNamespace(options.netns);
  try {
    // The rules first: they use the ipsets, which cannot be destroyed while referenced.
    await step('iptables', async () => `removed ${await cleanupRules(options.netns)} iptables chains`);
    await step('virtual servers', () => deleteVirtualServers(clients, options.netns, ownership.load().owned));
    await step(dummy, async () => {
      if (!(await links.getLink(dummy))) return undefined;
      await links.deleteLink(dummy, { ignoreMissing: true });
      return `deleted ${dummy}`;
    });
    await step('ipsets', () => destroySets(ipsets));
    if (report.failed.length === 0) {
      ownership.save({ owned: new Set(), draining: new Map() });
      rmSync(serviceNamesPath(options.netns), { force: true }); // names of virtual servers that are gone
    }
    return report;
  } finally {
    links.close();
    ipvs.close();
    ipsets.close();
  }
}

/** `kipvs cleanup` and the agent's --cleanup: what was removed, one line each; fails listing what could not be. */
export async function cleanupAndReport(options: CleanupOptions): Promise<void> {
  const report = await cleanup(options);
  for (const line of report.done) process.stdout.write(`${line}\n`);
  if (report.failed.length > 0) throw new KipvsError('KIPVS_CLEANUP_INCOMPLETE', `cleanup incomplete:\n  ${report.failed.join('\n  ')}`);
}

/** Removes kipvs's iptables chains and jumps in both families (before its ipsets, which they use). */
async function cleanupRules(netns: string | undefined): Promise<number> {
  let removed = 0;
  const backend: IptablesBackend = await detectIptablesBackend(netns ? { netns } : {});
  for (const family of ['inet', 'inet6'] as AddressFamily[]) {
    const result = await cleanupIptables(family, KIPVS_IPTABLES_OWNERSHIP, { netns, backend: backend.mode });
    removed += result.removedChains.length;
  }
  return removed;
}
