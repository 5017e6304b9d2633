// Literal Kubernetes objects for the translation tests, and readers that turn a DesiredState into
// plain tables a test can compare exactly.
import { expect } from 'vitest';
import { familyOf } from '../../../src/ip.js';
import type { DesiredState, TranslationProblem } from '../../../src/model/desired.js';
import { formatServicePortRef } from '../../../src/model/desired.js';
import type { EndpointSlice, Service } from '../../../src/model/kubernetes.js';
import { DEFAULT_SETTINGS, type NodeFacts, type ProxySettings } from '../../../src/model/settings.js';
import { formatEntry } from '../../../src/netlink/ipset/types.js';
import type { ServiceTranslation } from '../../../src/translate/translation.js';
import { translate } from '../../../src/translate/translate.js';

export const NODE: NodeFacts = { name: 'node-a', addresses: ['192.168.1.10'], families: ['inet'] };
export const DUAL_NODE: NodeFacts = { name: 'node-a', addresses: ['192.168.1.10', '2001:db8::10'], families: ['inet', 'inet6'] };
export const SETTINGS: ProxySettings = DEFAULT_SETTINGS;
export const settings = (overrides: Partial<ProxySettings>): ProxySettings => ({ ...DEFAULT_SETTINGS, ...overrides });

/** The label the EndpointSlice controller (or a person) puts on a Service's slices. */
export const sliceLabels = (service: string) => ({ 'kubernetes.io/service-name': service });

/** One ready endpoint on another node, the most common kind. */
export const endpoint = (address: string, extra: Record<string, unknown> = {}) => ({ addresses: [address], nodeName: 'node-b', ...extra });

export interface TableVirtualServer {
  /** `scheduler flags=0x0 timeout=0 netmask=32` */
  readonly service: string;
  readonly owner: string;
  /** `10.244.1.5:8080 masq w=1`, sorted. */
  readonly realServers: readonly string[];
}

/**
 * Every virtual server as one line of settings, its owner and its real servers. Checks on the way
 * what no table needs to repeat: real servers have their address's family and zero thresholds.
 */
export function virtualServerTable(state: Pick<DesiredState, 'virtualServers'>): Record<string, TableVirtualServer> {
  const table: Record<string, TableVirtualServer> = {};
  for (const [key, { service, realServers, owner }] of state.virtualServers) {
    const realServerLines: string[] = [];
    for (const [realKey, destination] of realServers) {
      expect(destination.family).toBe(familyOf(destination.address));
      expect(destination.upperThreshold).toBe(0);
      expect(destination.lowerThreshold).toBe(0);
      realServerLines.push(`${realKey} ${destination.forwarding} w=${destination.weight}`);
    }
    table[key] = {
      service: `${service.scheduler} flags=0x${service.flags.toString(16)} timeout=${service.timeout} netmask=${service.netmask}`,
      owner: formatServicePortRef(owner),
      realServers: realServerLines.sort(),
    };
  }
  return table;
}

/** The non-empty sets, each as its sorted members the way `ipset list` prints them. */
export function ipsetTable(state: DesiredState | ServiceTranslation): Record<string, readonly string[]> {
  const table: Record<string, string[]> = {};
  const sets: Iterable<[string, ReadonlyMap<string, unknown>]> =
    'ipsets' in state ? [...state.ipsets].map(([name, set]) => [name, set.entries] as [string, ReadonlyMap<string, unknown>]) : state.ipsetEntries;
  for (const [name, entries] of sets) {
    if (entries.size === 0) continue;
    table[name] = [...entries.keys()].sort();
    for (const [key, entry] of entries) expect(formatEntry(entry as never)).toBe(key);
  }
  return table;
}

export const boundAddresses = (state: { readonly boundAddresses: ReadonlySet<string> }): string[] => [...state.boundAddresses].sort();

/** A ClusterIP Service with one named TCP port, to be overridden piece by piece. */
export function service(name: string, spec: Record<string, unknown>, metadata: Record<string, unknown> = {}, status?: Record<string, unknown>): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default', ...metadata },
    spec: { type: 'ClusterIP', ...spec },
    ...(status ? { status } : {}),
  };
}

export function slice(name: string, service: string, body: Record<string, unknown>, metadata: Record<string, unknown> = {}): EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: 'default', labels: sliceLabels(service), ...metadata },
    addressType: 'IPv4',
    ...body,
  };
}

export interface TranslationCase {
  readonly name: string;
  readonly services: readonly Service[];
  readonly slices?: readonly EndpointSlice[];
  readonly node?: NodeFacts;
  readonly settings?: ProxySettings;
  readonly virtualServers: Record<string, TableVirtualServer>;
  readonly ipsets: Record<string, readonly string[]>;
  readonly bound: readonly string[];
  readonly problems?: readonly TranslationProblem[];
}

/** Translates the case's cluster and compares every part of the desired state exactly. */
export function expectTranslation(testCase: TranslationCase): DesiredState {
  const state = translate({ services: testCase.services, endpointSlices: testCase.slices ?? [] }, testCase.node ?? NODE, testCase.settings ?? SETTINGS);
  expect(virtualServerTable(state)).toEqual(testCase.virtualServers);
  expect(ipsetTable(state)).toEqual(testCase.ipsets);
  expect(boundAddresses(state)).toEqual(testCase.bound);
  expect(state.problems).toEqual(testCase.problems ?? []);
  return state;
}

/** A virtual server line with the default scheduler and no persistence. */
export const RR_V4 = 'rr flags=0x0 timeout=0 netmask=32';
export const RR_V6 = 'rr flags=0x0 timeout=0 netmask=128';
