// The node's own facts: its name and the addresses NodePorts listen on.
import { hostname } from 'node:os';
import { cidrContains, familyOf, type AddressFamily } from '../ip.js';
import { LinkClient } from '../netlink/rtnl/client.js';
import type { NodeFacts } from '../model/settings.js';

export interface NodeFactsOptions {
  readonly netns?: string;
  readonly hostnameOverride?: string;
  /** --nodeport-addresses: CIDRs; empty means every address of the node. */
  readonly nodePortAddresses: readonly string[];
  readonly dummyInterface: string;
}

const NOT_NODE_ADDRESSES = ['127.0.0.0/8', '::1/128', '169.254.0.0/16', 'fe80::/10'];

/**
 * Every address on the node's links except loopback and link-local ones and those of the dummy interface (which holds
 * service addresses, not node addresses), filtered by --nodeport-addresses.
 */
export async function discoverNodeFacts(options: NodeFactsOptions): Promise<NodeFacts> {
  const links = LinkClient.open(options.netns ? { netns: options.netns } : {});
  try {
    const addresses: string[] = [];
    for (const link of await links.listLinks()) {
      if (link.name === options.dummyInterface) continue;
      for (const address of await links.listAddresses(link.name)) {
        // By address, not by link, as kube-proxy's isValidForSet: a /32 on lo (BGP, MetalLB
        // setups) is a node address, 127.0.0.1 and link-local addresses are not.
        if (NOT_NODE_ADDRESSES.some((cidr) => cidrContains(cidr, address.address))) continue;
        if (options.nodePortAddresses.length > 0 && !options.nodePortAddresses.some((cidr) => cidrContains(cidr, address.address))) continue;
        addresses.push(address.address);
      }
    }
    const families = new Set<AddressFamily>();
    for (const address of addresses) families.add(familyOf(address)!);
    if (families.size === 0) families.add('inet');
    // Node names are lowercase; kube-proxy's GetHostname trims and lowercases both sources too.
    const name = (options.hostnameOverride ?? hostname()).trim().toLowerCase();
    return { name, addresses, families: [...families] };
  } finally {
    links.close();
  }
}
