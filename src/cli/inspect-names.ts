// Service names for `kipvs inspect`: where they come from (the agent's record in /run/kipvs, or
// the API server with --kubeconfig), how a virtual server or real server is looked up, and the
// part of the kernel's state that belongs to one Service (--service).
import { canonicalAddress } from '../ip.js';
import { virtualServerKey } from '../model/desired.js';
import { KipvsError } from '../errors.js';
import { formatEntry, type IpsetEntry, type IpsetSet, type UndecodedIpset } from '../netlink/ipset/types.js';
import type { IpvsServiceWithDestinations } from '../netlink/ipvs/client.js';
import { isFwmarkKey, type IpvsServiceKey } from '../netlink/ipvs/types.js';
import { readServiceNamesRecord, serviceNamesPath, type ServiceNames } from '../agent/service-names.js';
import type { ListingNames } from './ipvsadm-format.js';

/** The Service port of a virtual server: its own key, else (names from the API server) its NodePort. */
export function nameOfVirtualServer(names: ServiceNames, key: IpvsServiceKey): string | undefined {
  const exact = names.virtualServers.get(virtualServerKey(key));
  if (exact !== undefined || isFwmarkKey(key)) return exact;
  return names.nodePorts.get(`${key.protocol} ${key.port}`);
}

export function listingNames(names: ServiceNames): ListingNames {
  return {
    virtualServer: (key) => nameOfVirtualServer(names, key),
    realServer: (address) => names.pods.get(canonicalAddress(address) ?? address),
  };
}

/** `namespace/name`, checked: the --service argument. */
export function parseServiceId(text: string): { namespace: string; name: string } {
  const match = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-a-z0-9]*[a-z0-9])?)$/.exec(text);
  if (!match?.[1] || !match[3]) throw new KipvsError('KIPVS_USAGE', `--service ${text}: expected NAMESPACE/NAME`);
  return { namespace: match[1], name: match[3] };
}

/** The virtual servers (with their real servers) of one Service, any port. */
export function virtualServersOfService(table: readonly IpvsServiceWithDestinations[], names: ServiceNames, serviceId: string): IpvsServiceWithDestinations[] {
  return table.filter(({ service }) => nameOfVirtualServer(names, service.key)?.startsWith(`${serviceId}:`) === true);
}

/**
 * The ipset entries that concern these virtual servers, as `ipset save` lines: an address of
 * theirs (KUBE-IPVS-IPS), address and port of one (KUBE-CLUSTER-IP, KUBE-EXTERNAL-IP, ...), a
 * real server's address and port (KUBE-LOOP-BACK), or one of their ports (KUBE-NODE-PORT-*).
 */
export function ipsetEntriesOf(sets: ReadonlyArray<IpsetSet | UndecodedIpset>, virtualServers: readonly IpvsServiceWithDestinations[]): string[] {
  const frontends = new Set<string>();
  const addresses = new Set<string>();
  const ports = new Set<number>();
  const backends = new Set<string>();
  for (const { service, destinations } of virtualServers) {
    if (isFwmarkKey(service.key)) continue;
    const protocol = service.key.protocol.toLowerCase();
    addresses.add(service.key.address);
    ports.add(service.key.port);
    frontends.add(`${service.key.address} ${protocol} ${service.key.port}`);
    for (const destination of destinations) backends.add(`${canonicalAddress(destination.address) ?? destination.address} ${protocol} ${destination.port}`);
  }
  const concerns = (entry: IpsetEntry): boolean => {
    if (!('ip' in entry)) return !('net' in entry) && ports.has(entry.port);
    const ip = canonicalAddress(entry.ip) ?? entry.ip;
    if (!('port' in entry)) return addresses.has(ip);
    const key = `${ip} ${entry.protocol.toLowerCase()} ${entry.port}`;
    return frontends.has(key) || backends.has(key);
  };
  // A set kipvs cannot decode has no entries to show here; `--ipsets` lists it by name and type.
  return sets.flatMap((set) => ('entries' in set ? set.entries.filter(concerns).map((entry) => `add ${set.header.name} ${formatEntry(entry)}`) : []));
}

/** Names from --kubeconfig when given, else the agent's record of this namespace, else none. */
export async function findServiceNames(options: {
  readonly kubeconfig?: string;
  readonly netns?: string;
  readonly stateDirectory?: string;
}): Promise<ServiceNames | undefined> {
  if (options.kubeconfig !== undefined) {
    // Loaded only with --kubeconfig: the API source's modules are not needed otherwise.
    const { serviceNamesFromApiServer } = await import('./inspect-api-names.js');
    return serviceNamesFromApiServer(options.kubeconfig);
  }
  return readServiceNamesRecord(serviceNamesPath(options.netns, options.stateDirectory));
}
