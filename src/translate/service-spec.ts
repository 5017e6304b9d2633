// Reads a Service the way kube-proxy's ServiceChangeTracker does (pkg/proxy/serviceport.go,
// servicechangetracker.go): one view per family the Service has a clusterIP of, each with that
// family's external IPs, VIP-mode load balancer IPs and source ranges, and its ports with their
// protocol and nodePort. kube-proxy runs one proxier per family; we keep the families side by side.
// Every value is checked: a bad one is reported and left out, the rest of the Service stays.
import type { AddressFamily } from '../ip.js';
import type { Service } from '../model/kubernetes.js';
import type { NodeFacts } from '../model/settings.js';
import type { IpvsProtocol } from '../netlink/ipvs/types.js';
import { familyName, isPort, parseAddress, parseCidr, show, type ParsedCidr } from './addresses.js';

export type Report = (reason: string) => void;

export interface FamilyAddresses {
  readonly family: AddressFamily;
  readonly clusterIP: string;
  readonly externalIPs: readonly string[];
  readonly loadBalancerIPs: readonly string[];
  /** Empty means every source may connect: none given, or a /0 among them (kube-proxy's IsZeroCIDR). */
  readonly sourceRanges: readonly ParsedCidr[];
}

export interface ServicePortView {
  /** How problems name the port: `port "http"`, `port 53`, `ports[2]`. */
  readonly label: string;
  /** ServicePortRef.port: the port's name, or its number when unnamed. */
  readonly ref: string;
  /** Matched against EndpointSlice port names; '' for an unnamed port. */
  readonly name: string;
  readonly protocol: IpvsProtocol;
  readonly port: number;
  /** 0: no NodePort. */
  readonly nodePort: number;
}

export interface ServiceView {
  readonly families: readonly FamilyAddresses[];
  readonly ports: readonly ServicePortView[];
  readonly externalPolicyLocal: boolean;
  readonly internalPolicyLocal: boolean;
  /** Seconds of ClientIP session affinity; undefined without affinity. */
  readonly affinityTimeout: number | undefined;
  /** 0: none (only a LoadBalancer with externalTrafficPolicy Local has one). */
  readonly healthCheckNodePort: number;
}

/** core/v1 DefaultClientIPServiceAffinitySeconds and MaxClientIPServiceAffinitySeconds. */
export const DEFAULT_AFFINITY_SECONDS = 10800;
const MAX_AFFINITY_SECONDS = 86400;

const PROTOCOLS: readonly string[] = ['TCP', 'UDP', 'SCTP'];
const TYPES: readonly string[] = ['ClusterIP', 'NodePort', 'LoadBalancer'];

type Spec = NonNullable<Service['spec']>;

const asArray = (value: unknown): readonly unknown[] => (Array.isArray(value) ? value : []);
const asObject = (value: unknown): Record<string, unknown> => (typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {});

interface FamilyBuilder {
  family: AddressFamily;
  clusterIP: string;
  externalIPs: string[];
  loadBalancerIPs: string[];
  sourceRanges: ParsedCidr[];
  allowAll: boolean;
}

/** The clusterIPs by family, or undefined when the Service gets nothing (headless, none set). */
function clusterIPsOf(spec: Spec, node: NodeFacts, report: Report): Map<AddressFamily, FamilyBuilder> | undefined {
  const listed = asArray(spec.clusterIPs);
  const texts = listed.length > 0 ? listed : spec.clusterIP === undefined || spec.clusterIP === '' ? [] : [spec.clusterIP];
  if (texts[0] === 'None') return undefined;
  if (texts.length === 0) {
    report('spec.clusterIP is not set; Service ignored');
    return undefined;
  }
  const families = new Map<AddressFamily, FamilyBuilder>();
  const seen = new Set<AddressFamily>();
  for (const text of texts) {
    const parsed = parseAddress(text);
    if (!parsed) {
      report(`clusterIP ${show(text)} is not a valid IP address; ignored`);
    } else if (seen.has(parsed.family)) {
      report(`clusterIPs has more than one ${familyName(parsed.family)} address; ${parsed.address} ignored`);
    } else {
      seen.add(parsed.family);
      if (node.families.includes(parsed.family)) {
        families.set(parsed.family, {
          family: parsed.family,
          clusterIP: parsed.address,
          externalIPs: [],
          loadBalancerIPs: [],
          sourceRanges: [],
          allowAll: false,
        });
      } else {
        report(`clusterIP ${parsed.address} is ${familyName(parsed.family)}, which this node does not have; ${familyName(parsed.family)} skipped`);
      }
    }
  }
  return families;
}

/** Sorts external or load balancer IPs into their family, reporting those no family takes. */
function placeAddresses(
  what: string,
  texts: readonly unknown[],
  families: Map<AddressFamily, FamilyBuilder>,
  node: NodeFacts,
  pick: (builder: FamilyBuilder) => string[],
  report: Report,
): void {
  const seen = new Set<string>();
  for (const text of texts) {
    const parsed = parseAddress(text);
    if (!parsed) {
      report(`${what} ${show(text)} is not a valid IP address; ignored`);
      continue;
    }
    if (seen.has(parsed.address)) {
      report(`${what} ${parsed.address} is listed twice; the duplicate is ignored`);
      continue;
    }
    seen.add(parsed.address);
    const builder = families.get(parsed.family);
    const name = familyName(parsed.family);
    if (builder) pick(builder).push(parsed.address);
    else if (!node.families.includes(parsed.family)) report(`${what} ${parsed.address} is ${name}, which this node does not have; ignored`);
    else report(`${what} ${parsed.address} is ${name} but the Service has no ${name} clusterIP; ignored`);
  }
}

/** VIP-mode ingress IPs only: with ipMode Proxy the load balancer does not send to the VIP (kube-proxy's IsVIPMode). */
function loadBalancerIPsOf(service: Service, report: Report): unknown[] {
  const ips: unknown[] = [];
  for (const ingress of asArray(asObject(asObject(service.status).loadBalancer).ingress)) {
    const { ip, ipMode } = asObject(ingress);
    if (ip === undefined || ip === '') continue;
    if (ipMode === undefined || ipMode === 'VIP') ips.push(ip);
    else if (ipMode !== 'Proxy') report(`load balancer ingress ${show(ip)} has unknown ipMode ${show(ipMode)}; ignored`);
  }
  return ips;
}

function placeSourceRanges(spec: Spec, families: Map<AddressFamily, FamilyBuilder>, report: Report): void {
  for (const text of asArray(spec.loadBalancerSourceRanges)) {
    // API validation lets whitespace padding through; kube-proxy trims it.
    const cidr = parseCidr(typeof text === 'string' ? text.trim() : text);
    if (!cidr) {
      report(`loadBalancerSourceRanges entry ${show(text)} is not a valid CIDR; ignored`);
      continue;
    }
    const builder = families.get(cidr.family);
    if (!builder) continue;
    if (cidr.prefix === 0) builder.allowAll = true;
    else if (!builder.sourceRanges.some((known) => known.address === cidr.address && known.prefix === cidr.prefix)) builder.sourceRanges.push(cidr);
  }
}

function policyIsLocal(field: string, value: unknown, report: Report): boolean {
  if (value === undefined || value === 'Cluster') return false;
  if (value === 'Local') return true;
  report(`${field} ${show(value)} is not Cluster or Local; Cluster used`);
  return false;
}

function affinityTimeoutOf(spec: Spec, report: Report): number | undefined {
  if (spec.sessionAffinity === undefined || spec.sessionAffinity === 'None') return undefined;
  if (spec.sessionAffinity !== 'ClientIP') {
    report(`sessionAffinity ${show(spec.sessionAffinity)} is not None or ClientIP; None used`);
    return undefined;
  }
  const timeout = asObject(asObject(spec.sessionAffinityConfig).clientIP).timeoutSeconds;
  if (timeout === undefined) return DEFAULT_AFFINITY_SECONDS;
  if (typeof timeout === 'number' && Number.isInteger(timeout) && timeout >= 1 && timeout <= MAX_AFFINITY_SECONDS) return timeout;
  report(`sessionAffinityConfig.clientIP.timeoutSeconds ${show(timeout)} is not in 1..${MAX_AFFINITY_SECONDS}; ${DEFAULT_AFFINITY_SECONDS} used`);
  return DEFAULT_AFFINITY_SECONDS;
}

function nodePortOf(type: string, label: string, value: unknown, report: Report): number {
  const unset = value === undefined || value === 0;
  if (type === 'ClusterIP') {
    if (!unset) report(`${label}: nodePort ${show(value)} is only valid for type NodePort or LoadBalancer; ignored`);
    return 0;
  }
  if (isPort(value)) return value;
  // A LoadBalancer may go without NodePorts (allocateLoadBalancerNodePorts: false).
  if (unset && type === 'LoadBalancer') return 0;
  report(unset ? `${label}: nodePort is not set; NodePort skipped` : `${label}: nodePort ${show(value)} is not in 1..65535; NodePort skipped`);
  return 0;
}

function portsOf(spec: Spec, type: string, report: Report): ServicePortView[] {
  const ports: ServicePortView[] = [];
  asArray(spec.ports).forEach((item, index) => {
    const raw = asObject(item);
    const name = typeof raw.name === 'string' ? raw.name : '';
    const label = name !== '' ? `port ${show(name)}` : isPort(raw.port) ? `port ${raw.port}` : `ports[${index}]`;
    const protocol = raw.protocol ?? 'TCP';
    if (typeof protocol !== 'string' || !PROTOCOLS.includes(protocol)) {
      report(`${label}: protocol ${show(protocol)} is not TCP, UDP or SCTP; port skipped`);
      return;
    }
    if (!isPort(raw.port)) {
      report(`${label}: port ${show(raw.port)} is not in 1..65535; port skipped`);
      return;
    }
    const nodePort = nodePortOf(type, label, raw.nodePort, report);
    ports.push({ label, ref: name !== '' ? name : String(raw.port), name, protocol: protocol as IpvsProtocol, port: raw.port, nodePort });
  });
  return ports;
}

/** What kube-proxy would proxy for this Service, or undefined when it proxies nothing. */
export function readService(service: Service, node: NodeFacts, report: Report): ServiceView | undefined {
  const spec = asObject(service.spec) as Spec;
  let type = spec.type ?? 'ClusterIP';
  if (type === 'ExternalName') return undefined;
  if (typeof type !== 'string' || !TYPES.includes(type)) {
    report(`spec.type ${show(type)} is not ClusterIP, NodePort, LoadBalancer or ExternalName; ClusterIP used`);
    type = 'ClusterIP';
  }
  const families = clusterIPsOf(spec, node, report);
  if (!families) return undefined;
  const externalIPs = asArray(spec.externalIPs);
  placeAddresses('externalIP', externalIPs, families, node, (builder) => builder.externalIPs, report);
  placeAddresses('load balancer ingress IP', loadBalancerIPsOf(service, report), families, node, (builder) => builder.loadBalancerIPs, report);
  placeSourceRanges(spec, families, report);

  // apiservice.ExternallyAccessible / ExternalPolicyLocal / NeedsHealthCheck.
  const externallyAccessible = type === 'LoadBalancer' || type === 'NodePort' || externalIPs.length > 0;
  const externalPolicyLocal = policyIsLocal('externalTrafficPolicy', spec.externalTrafficPolicy, report) && externallyAccessible;
  const internalPolicyLocal = policyIsLocal('internalTrafficPolicy', spec.internalTrafficPolicy, report);
  let healthCheckNodePort = 0;
  if (type === 'LoadBalancer' && externalPolicyLocal) {
    if (isPort(spec.healthCheckNodePort)) healthCheckNodePort = spec.healthCheckNodePort;
    else report(`healthCheckNodePort ${show(spec.healthCheckNodePort)} is not in 1..65535; no health check port`);
  }
  return {
    families: [...families.values()].map(({ allowAll, ...family }) => (allowAll ? { ...family, sourceRanges: [] } : family)),
    ports: portsOf(spec, type, report),
    externalPolicyLocal,
    internalPolicyLocal,
    affinityTimeout: affinityTimeoutOf(spec, report),
    healthCheckNodePort,
  };
}
