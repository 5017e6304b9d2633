// The soak's file source: bench/workload.ts's N Services (10 endpoints each, one in five a
// NodePort; their pods do not exist, they are there to be programmed) and one Service, web, whose
// endpoints are the lab's pods, for the traffic. Every file is written whole and renamed into
// place, so the agent never reads a half-written one.
import { mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ENDPOINTS_PER_SERVICE, changedSlice, expectedCounts, generateWorkload, virtualServersOf, writeWorkload, type Workload } from '../../bench/workload.js';
import type { EndpointSlice, Service } from '../../src/model/kubernetes.js';

export const WEB_CLUSTER_IP = '10.100.0.10';
export const WEB_NODE_PORT = 32500;
export const WEB_PORT = 80;
export const POD_PORT = 8080;
/** 10.248.0.0/16, where the workload's added pods are (10.248.0.1 + the Service's index), as /proc/net/ip_vs prints an address (hex). */
export const ADDED_PODS_HEX = '0AF8';

/** Web, a NodePort Service whose endpoints are the pods at `podAddresses` (on this node, node-a). */
export function webObjects(podAddresses: readonly string[]): { service: Service; slice: EndpointSlice } {
  return {
    service: {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: 'default' },
      spec: {
        type: 'NodePort',
        clusterIP: WEB_CLUSTER_IP,
        clusterIPs: [WEB_CLUSTER_IP],
        ports: [{ name: 'http', protocol: 'TCP', port: WEB_PORT, targetPort: POD_PORT, nodePort: WEB_NODE_PORT }],
      },
    },
    slice: {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'web-abc', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', protocol: 'TCP', port: POD_PORT }],
      endpoints: podAddresses.map((ip, i) => ({
        addresses: [ip],
        conditions: { ready: true },
        nodeName: 'node-a',
        targetRef: { kind: 'Pod', name: `web-${String(i)}`, namespace: 'default' },
      })),
    },
  };
}

/** The workload; with `extraFor`, those Services' slices carry one more endpoint (a pod in 10.248.0.0/16). */
export function workloadWith(count: number, extraFor: ReadonlySet<number> = new Set(), generation = 1): Workload {
  const base = generateWorkload(count);
  return {
    services: base.services,
    endpointSlices: base.endpointSlices.map((slice, index) => (extraFor.has(index) ? changedSlice(index, { extra: index }, generation) : slice)),
  };
}

/** Writes the workload's files (all, or only those of the Services in `only`) and, given pods, web.yaml into `dir`, each renamed into place. */
export function writeSource(dir: string, workload: Workload, podAddresses: readonly string[], only?: ReadonlySet<number>): void {
  const staging = mkdtempSync(join(tmpdir(), 'kipvs-soak-staging-'));
  try {
    const pick = <T>(items: readonly T[]): T[] => (only ? items.filter((_, index) => only.has(index)) : [...items]);
    writeWorkload(staging, { services: pick(workload.services), endpointSlices: pick(workload.endpointSlices) });
    if (!only && podAddresses.length > 0) {
      const web = webObjects(podAddresses);
      writeFileSync(join(staging, 'web.yaml'), `---\n${stringify(web.service)}---\n${stringify(web.slice)}`);
    }
    for (const file of readdirSync(staging)) renameSync(join(staging, file), join(dir, file));
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

export interface ExpectedOptions {
  /** Services whose slice carries the extra endpoint (workloadWith's `extraFor`). */
  readonly extraFor?: ReadonlySet<number>;
  /** Web's endpoints; 0 when web.yaml is not written. 3 unless told. */
  readonly pods?: number;
  /** Node addresses NodePorts are served on (after --nodeport-addresses): each has its virtual server per NodePort. 1 unless told. */
  readonly nodePortAddresses?: number;
}

/**
 * Real servers the kernel holds for the workload and web: bench/workload.ts's count (which serves
 * NodePorts on one node address), the NodePorts' real servers again for every further node
 * address, one (or one per virtual server) for each extra endpoint, and web's pods behind its
 * ClusterIP and its NodePort on each address.
 */
export function expectedRealServers(count: number, options: ExpectedOptions = {}): number {
  const { extraFor = new Set(), pods = 3, nodePortAddresses = 1 } = options;
  const counts = expectedCounts(count);
  const nodePorts = counts.virtualServers - count;
  let total = counts.realServers + (nodePortAddresses - 1) * nodePorts * ENDPOINTS_PER_SERVICE;
  for (const index of extraFor) total += 1 + (virtualServersOf(index) - 1) * nodePortAddresses;
  return total + pods * (1 + nodePortAddresses);
}
