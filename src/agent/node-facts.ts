// The node's own facts: its name, the addresses NodePorts listen on, and what its Node object
// says (zone label, podCIDRs, node IPs). Addresses are read again at each full sync and the
// Node object follows the source, so both stay current while the agent runs.
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { canonicalAddress, cidrContains, familyOf, type AddressFamily } from '../ip.js';
import { LinkClient } from '../netlink/rtnl/client.js';
import type { NodeFacts } from '../model/settings.js';

export interface NodeFactsOptions {
  readonly netns?: string;
  readonly hostnameOverride?: string;
  /** --nodeport-addresses: CIDRs, or ['primary'] (the node's primary IPs); empty means every address of the node. */
  readonly nodePortAddresses: readonly string[];
  /** --bind-address: a specific IP overrides the Node object's primary IP of its family. */
  readonly bindAddress?: string;
  readonly dummyInterface: string;
}

const NOT_NODE_ADDRESSES = ['127.0.0.0/8', '::1/128', '169.254.0.0/16', 'fe80::/10'];

/** kube-proxy's zone label (v1.LabelTopologyZone), read for topology hints. */
export const ZONE_LABEL = 'topology.kubernetes.io/zone';

interface LinkAddresses {
  readonly addresses: string[];
  /** The dummy interface's index (its addresses are service IPs); undefined when it does not exist. */
  readonly dummyIndex: number | undefined;
}

/**
 * Every address on the node's links except loopback and link-local ones and those of the dummy
 * interface (which holds service addresses, not node addresses), filtered by --nodeport-addresses.
 */
async function readLinkAddresses(options: NodeFactsOptions): Promise<LinkAddresses> {
  const links = LinkClient.open(options.netns ? { netns: options.netns } : {});
  try {
    const addresses: string[] = [];
    let dummyIndex: number | undefined;
    for (const link of await links.listLinks()) {
      if (link.name === options.dummyInterface) {
        dummyIndex = link.index;
        continue;
      }
      for (const address of await links.listAddresses(link.name)) {
        // By address, not by link, as kube-proxy's isValidForSet: a /32 on lo (BGP, MetalLB
        // setups) is a node address, 127.0.0.1 and link-local addresses are not.
        if (NOT_NODE_ADDRESSES.some((cidr) => cidrContains(cidr, address.address))) continue;
        if (!isPrimaryOnly(options) && options.nodePortAddresses.length > 0 && !options.nodePortAddresses.some((cidr) => cidrContains(cidr, address.address)))
          continue;
        addresses.push(address.address);
      }
    }
    return { addresses, dummyIndex };
  } finally {
    links.close();
  }
}

const isPrimaryOnly = (options: Pick<NodeFactsOptions, 'nodePortAddresses'>): boolean =>
  options.nodePortAddresses.length === 1 && options.nodePortAddresses[0] === 'primary';

/**
 * The addresses NodePorts listen on, of the node's `addresses`: all of them, or with
 * --nodeport-addresses primary those that are the node's primary IPs, as kube-proxy's
 * NodePortAddresses does with the node IPs it detected: the Node object's (InternalIP first), the
 * one of --bind-address's family replaced by it when it is a specific IP. Until the Node object
 * is known there are none.
 */
export function nodePortAddressesOf(
  addresses: readonly string[],
  nodeIPs: readonly string[],
  options: Pick<NodeFactsOptions, 'nodePortAddresses' | 'bindAddress'>,
): readonly string[] {
  if (!isPrimaryOnly(options)) return addresses;
  const bind = options.bindAddress === undefined ? undefined : canonicalAddress(options.bindAddress);
  const specific = bind !== undefined && bind !== '0.0.0.0' && bind !== '::' ? bind : undefined;
  const primary = new Set(nodeIPs.map((ip) => canonicalAddress(ip) ?? ip).filter((ip) => specific === undefined || familyOf(ip) !== familyOf(specific)));
  if (specific !== undefined) primary.add(specific);
  return addresses.filter((address) => primary.has(canonicalAddress(address) ?? address));
}

export async function discoverNodeFacts(options: NodeFactsOptions): Promise<NodeFacts> {
  return (await discoverNode(options)).facts;
}

/** The node's facts at start, and every address of its links (what `primary` later picks from). */
export async function discoverNode(options: NodeFactsOptions): Promise<{ facts: NodeFacts; linkAddresses: readonly string[] }> {
  const { addresses: all } = await readLinkAddresses(options);
  const addresses = [...nodePortAddressesOf(all, [], options)];
  const families = new Set<AddressFamily>();
  for (const address of all) {
    const family = familyOf(address);
    if (family) families.add(family);
  }
  if (families.size === 0) families.add('inet');
  // Node names are lowercase; kube-proxy's GetHostname trims and lowercases both sources too.
  const name = (options.hostnameOverride ?? hostname()).trim().toLowerCase();
  return { facts: { name, addresses, families: [...families] }, linkAddresses: all };
}

/** What the agent reads from its Node object (sources' NodeInfo has these fields). */
export interface NodeObjectFacts {
  readonly labels: Readonly<Record<string, string>>;
  readonly podCIDRs: readonly string[];
  readonly nodeIPs: readonly string[];
}

const sameList = (a: readonly string[] | undefined, b: readonly string[] | undefined): boolean =>
  (a ?? []).length === (b ?? []).length && (a ?? []).every((item, i) => item === (b ?? [])[i]);

/**
 * The node's facts as they change. Each change makes a new NodeFacts object (the translator
 * translates every Service again when the object changes, as kube-proxy's OnNodeUpdate resyncs
 * everything) and tells the listeners; a value equal to the current one changes nothing. The
 * families stay those found at start: the iptables rules and ipsets are made per family then.
 */
export class LiveNodeFacts {
  private facts: NodeFacts;
  private readonly listeners: (() => void)[] = [];
  /** Every address of the node, before --nodeport-addresses primary picks the primary IPs. */
  private linkAddresses: readonly string[];

  constructor(
    initial: NodeFacts,
    private readonly options: Pick<NodeFactsOptions, 'nodePortAddresses' | 'bindAddress'> = { nodePortAddresses: [] },
    linkAddresses: readonly string[] = initial.addresses,
  ) {
    this.facts = initial;
    this.linkAddresses = linkAddresses;
  }

  get current(): NodeFacts {
    return this.facts;
  }

  /** Every address of the node's links (after CIDR filtering), before `primary` picks among them. */
  get addresses(): readonly string[] {
    return this.linkAddresses;
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /**
   * This node's Node object. Deleted (undefined): its labels are forgotten, as kube-proxy's
   * OnNodeDelete clears nodeLabels; the podCIDRs and node IPs read before are kept.
   */
  setNodeObject(node: NodeObjectFacts | undefined): void {
    if (!node) {
      this.update({ zone: undefined });
      return;
    }
    const zone = node.labels[ZONE_LABEL];
    this.update({
      zone: zone === '' ? undefined : zone,
      podCIDRs: node.podCIDRs,
      nodeIPs: node.nodeIPs,
      addresses: nodePortAddressesOf(this.linkAddresses, node.nodeIPs, this.options),
    });
  }

  /** The node's addresses (after --nodeport-addresses CIDR filtering; `primary` is applied here). */
  setAddresses(addresses: readonly string[]): void {
    this.linkAddresses = addresses;
    this.update({ addresses: nodePortAddressesOf(addresses, this.facts.nodeIPs ?? [], this.options) });
  }

  private update(change: Pick<Partial<NodeFacts>, 'zone' | 'podCIDRs' | 'nodeIPs' | 'addresses'>): void {
    const before = this.facts;
    const next: NodeFacts = { ...before, ...change };
    if (next.zone === undefined) delete (next as { zone?: string }).zone;
    const same =
      next.zone === before.zone &&
      sameList(next.addresses, before.addresses) &&
      sameList(next.podCIDRs, before.podCIDRs) &&
      sameList(next.nodeIPs, before.nodeIPs);
    if (same) return;
    this.facts = next;
    for (const listener of this.listeners) listener();
  }
}

/**
 * Reads the node's addresses again when asked (each full sync: the daemon's source check) and hands
 * them to `live`: an address added (DHCP, a VIP on `lo`) gets its NodePort virtual servers in the
 * sync after, a removed one loses them. kube-proxy reads them at every sync. Not the kernel's
 * address events: binding a thousand ClusterIPs at once overflows a multicast socket (ENOBUFS), and
 * the netlink package aborts the process on that error (reproduced at 1,000 Services in UML).
 */
export function nodeAddressReader(live: LiveNodeFacts, options: NodeFactsOptions, log: Logger): { check(): void } {
  let reading: Promise<void> | undefined;
  const read = async (): Promise<void> => {
    try {
      const found = await readLinkAddresses(options);
      if (!sameList(found.addresses, live.addresses)) log.info({ addresses: found.addresses }, 'node addresses changed');
      live.setAddresses(found.addresses);
    } catch (error) {
      log.error({ err: (error as Error).message }, 'cannot read the node addresses; keeping the last ones');
    } finally {
      reading = undefined;
    }
  };
  return {
    check: () => {
      reading ??= read();
    },
  };
}
