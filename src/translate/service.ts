// One Service and its EndpointSlices to virtual servers, bound addresses and ipset entries, as
// kube-proxy's IPVS mode builds them per Service port in syncProxyRules (pkg/proxy/ipvs/proxier.go):
// a virtual server on each ClusterIP, external IP, VIP-mode load balancer IP and, for a NodePort,
// each node address of the family; the ClusterIP one with the internal traffic policy's endpoints,
// the others with the external policy's.
import { cidrContains, type AddressFamily } from '../ip.js';
import type { DesiredVirtualServer, TranslationProblem } from '../model/desired.js';
import { realServerKey, virtualServerKey } from '../model/desired.js';
import type { EndpointSlice, Service } from '../model/kubernetes.js';
import type { NodeFacts, ProxySettings } from '../model/settings.js';
import type { IpsetProtocol } from '../netlink/ipset/types.js';
import type { IpvsDestination, IpvsService } from '../netlink/ipvs/types.js';
import { IP_VS_SVC_F_PERSISTENT, IP_VS_SVC_F_SCHED2 } from '../netlink/ipvs/wire.js';
import { parseAddress, type ParsedAddress } from './addresses.js';
import { schedulerOf, weightOf, weightsOf, type Weights } from './annotations.js';
import { categorizeEndpoints, endpointIndexKey, endpointsFor, indexEndpoints, type EndpointIndex, type EndpointInfo } from './endpoints.js';
import {
  addBoundAddressEntry,
  addClusterIpEntry,
  addExternalIpEntry,
  addHealthCheckNodePortEntry,
  addLoadBalancerEntries,
  addLoopBackEntries,
  addNodePortEntries,
  IpsetEntries,
  type PortContext,
} from './ipset-entries.js';
import type { NodeTopology } from './topology.js';
import { readService, type FamilyAddresses, type ServicePortView, type ServiceView } from './service-spec.js';
import { emptyTranslation, identityOf, type ObjectIdentity, type ServiceTranslation } from './translation.js';

type RealServers = ReadonlyMap<string, IpvsDestination>;

interface NodeAddresses {
  readonly byFamily: ReadonlyMap<AddressFamily, readonly ParsedAddress[]>;
  readonly all: ReadonlySet<string>;
}

// Parsed once per list of node addresses, not once per Service.
const nodeAddressCache = new WeakMap<readonly string[], NodeAddresses>();

function nodeAddressesOf(node: NodeFacts): NodeAddresses {
  const list = Array.isArray(node.addresses) ? node.addresses : [];
  let cached = nodeAddressCache.get(list);
  if (!cached) {
    const byFamily = new Map<AddressFamily, ParsedAddress[]>();
    const all = new Set<string>();
    for (const text of list) {
      const parsed = parseAddress(text);
      if (!parsed || all.has(parsed.address)) continue;
      all.add(parsed.address);
      byFamily.set(parsed.family, [...(byFamily.get(parsed.family) ?? []), parsed]);
    }
    nodeAddressCache.set(list, (cached = { byFamily, all }));
  }
  return cached;
}

/** Everything one Service's ports share while they are translated. */
interface ServiceContext {
  readonly identity: ObjectIdentity;
  readonly view: ServiceView;
  readonly scheduler: string;
  readonly weights: Weights;
  readonly index: EndpointIndex;
  readonly nodeAddresses: NodeAddresses;
  readonly topology: NodeTopology;
  readonly excludeCidrs: readonly string[];
  readonly report: (reason: string) => void;
  readonly virtualServers: Map<string, DesiredVirtualServer>;
  /** Which port and role produced each virtual server, to name it when another wants the same key. */
  readonly producedBy: Map<string, string>;
  readonly boundAddresses: Set<string>;
  readonly entries: IpsetEntries;
}

/**
 * --ipvs-exclude-cidrs: kipvs produces nothing for these addresses; someone else owns them. The
 * same test as the reconciler's, so that what one leaves out the other leaves alone.
 */
const isExcluded = (context: ServiceContext, address: ParsedAddress): boolean =>
  context.excludeCidrs.length > 0 && context.excludeCidrs.some((cidr) => cidrContains(cidr, address.address));

function realServersOf(context: ServiceContext, endpoints: readonly EndpointInfo[]): RealServers {
  const realServers = new Map<string, IpvsDestination>();
  for (const endpoint of endpoints) {
    const destination: IpvsDestination = {
      address: endpoint.address,
      port: endpoint.port,
      family: endpoint.family,
      forwarding: 'masq',
      weight: weightOf(context.weights, endpoint.address, endpoint.targetName),
      upperThreshold: 0,
      lowerThreshold: 0,
    };
    realServers.set(realServerKey(destination), destination);
  }
  return realServers;
}

interface Frontend {
  readonly port: ServicePortView;
  /** clusterIP, externalIP, load balancer IP or NodePort: how a duplicate is named. */
  readonly role: string;
  readonly address: string;
  readonly family: AddressFamily;
  readonly listenPort: number;
  readonly realServers: RealServers;
  readonly bind: boolean;
}

function addVirtualServer(context: ServiceContext, frontend: Frontend): void {
  const { view, scheduler } = context;
  const service: IpvsService = {
    key: { family: frontend.family, protocol: frontend.port.protocol, address: frontend.address, port: frontend.listenPort },
    scheduler,
    // mh hashes the source port as well as the address, as kube-proxy sets it (FlagSourceHash).
    flags: (view.affinityTimeout !== undefined ? IP_VS_SVC_F_PERSISTENT : 0) | (scheduler === 'mh' ? IP_VS_SVC_F_SCHED2 : 0),
    timeout: view.affinityTimeout ?? 0,
    // kube-proxy always sets a host netmask (util/ipvs_linux.go toIPVSService).
    netmask: frontend.family === 'inet' ? 32 : 128,
  };
  const key = virtualServerKey(service.key);
  const producer = `${frontend.port.label} (${frontend.role})`;
  const previous = context.producedBy.get(key);
  if (previous !== undefined) {
    context.report(`${producer}: virtual server ${key} duplicates the one of ${previous}; skipped`);
    return;
  }
  context.producedBy.set(key, producer);
  const owner = { namespace: context.identity.namespace, name: context.identity.name, port: frontend.port.ref };
  context.virtualServers.set(key, { service, realServers: frontend.realServers, owner });
  if (frontend.bind && !context.boundAddresses.has(frontend.address)) {
    context.boundAddresses.add(frontend.address);
    addBoundAddressEntry(context.entries, frontend.family, frontend.address);
  }
}

function translatePort(context: ServiceContext, addresses: FamilyAddresses, port: ServicePortView): void {
  const { view, nodeAddresses } = context;
  const family = addresses.family;
  const endpoints = context.index.get(endpointIndexKey(family, port.protocol, port.name)) ?? [];
  // BaseServicePortInfo.ExternallyAccessible, UsesClusterEndpoints and UsesLocalEndpoints.
  const externallyAccessible = port.nodePort !== 0 || addresses.externalIPs.length > 0 || addresses.loadBalancerIPs.length > 0;
  const categories = categorizeEndpoints(
    endpoints,
    !view.internalPolicyLocal || externallyAccessible,
    view.internalPolicyLocal || (view.externalPolicyLocal && externallyAccessible),
    context.topology,
  );
  const internalEndpoints = endpointsFor(categories, view.internalPolicyLocal);
  const externalEndpoints = endpointsFor(categories, view.externalPolicyLocal);
  const internal = realServersOf(context, internalEndpoints);
  const external = externalEndpoints === internalEndpoints ? internal : realServersOf(context, externalEndpoints);
  const ports: PortContext = {
    entries: context.entries,
    family,
    protocol: port.protocol.toLowerCase() as IpsetProtocol,
    port: port.port,
    externalPolicyLocal: view.externalPolicyLocal,
  };
  const frontend = { port, family, listenPort: port.port };

  addLoopBackEntries(ports, endpoints);
  if (!isExcluded(context, { address: addresses.clusterIP, family })) {
    addClusterIpEntry(ports, addresses.clusterIP);
    addVirtualServer(context, { ...frontend, role: 'clusterIP', address: addresses.clusterIP, realServers: internal, bind: true });
  }
  // An external or load balancer IP that is one of the node's own is served but not bound.
  for (const address of addresses.externalIPs) {
    if (isExcluded(context, { address, family })) continue;
    addExternalIpEntry(ports, address);
    addVirtualServer(context, { ...frontend, role: 'externalIP', address, realServers: external, bind: !nodeAddresses.all.has(address) });
  }
  const familyNodeAddresses = nodeAddresses.byFamily.get(family) ?? [];
  for (const address of addresses.loadBalancerIPs) {
    if (isExcluded(context, { address, family })) continue;
    addLoadBalancerEntries(ports, address, addresses.sourceRanges, familyNodeAddresses);
    addVirtualServer(context, { ...frontend, role: 'load balancer IP', address, realServers: external, bind: !nodeAddresses.all.has(address) });
  }
  // kube-proxy skips the NodePort entirely when the node has no address to serve it on.
  if (port.nodePort !== 0 && familyNodeAddresses.length > 0) {
    const served = familyNodeAddresses.filter((address) => !isExcluded(context, address));
    addNodePortEntries(
      ports,
      port.nodePort,
      served.map((address) => address.address),
    );
    for (const { address } of served) {
      addVirtualServer(context, { ...frontend, role: 'NodePort', address, listenPort: port.nodePort, realServers: external, bind: false });
    }
  }
  if (view.healthCheckNodePort !== 0) addHealthCheckNodePortEntry(context.entries, family, view.healthCheckNodePort);
}

/**
 * Translates one Service with the EndpointSlices labelled for it. Never throws: whatever is wrong
 * with the objects is in `problems`, and everything that is right is translated.
 */
export function translateService(service: Service, endpointSlices: readonly EndpointSlice[], node: NodeFacts, settings: ProxySettings): ServiceTranslation {
  const identity = identityOf(service);
  const problems: TranslationProblem[] = [];
  const report = (reason: string): void => void problems.push({ object: identity.id, reason });
  if (identity.name === '') {
    report('metadata.name is missing; Service ignored');
    return emptyTranslation(identity.id, problems);
  }
  const view = readService(service, node, report);
  if (!view || view.families.length === 0 || view.ports.length === 0) return emptyTranslation(identity.id, problems);
  const annotations = (service.metadata as { annotations?: unknown }).annotations;
  const context: ServiceContext = {
    identity,
    view,
    scheduler: schedulerOf(annotations, settings.scheduler, report),
    weights: weightsOf(annotations, report),
    index: indexEndpoints(Array.isArray(endpointSlices) ? endpointSlices : [], identity.namespace, identity.name, node.name, (object, reason) =>
      problems.push({ object, reason }),
    ),
    nodeAddresses: nodeAddressesOf(node),
    topology: { name: node.name, zone: typeof node.zone === 'string' ? node.zone : '' },
    excludeCidrs: Array.isArray(settings.excludeCidrs) ? settings.excludeCidrs.filter((cidr): cidr is string => typeof cidr === 'string') : [],
    report,
    virtualServers: new Map(),
    producedBy: new Map(),
    boundAddresses: new Set(),
    entries: new IpsetEntries(),
  };
  for (const addresses of view.families) {
    for (const port of view.ports) translatePort(context, addresses, port);
  }
  return {
    service: identity.id,
    virtualServers: context.virtualServers,
    boundAddresses: context.boundAddresses,
    ipsetEntries: context.entries.bySet,
    problems,
  };
}
