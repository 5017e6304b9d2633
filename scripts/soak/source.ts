// The soak's file source: bench/workload.ts's N Services (10 endpoints each, one in five a
// NodePort; their pods do not exist, they are there to be programmed) and one Service, web, whose
// endpoints are the lab's pods, for the traffic. Every file is written whole and renamed into
// place, so the agent never reads a half-written one.
import { mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { changedSlice, generateWorkload, virtualServersOf, writeWorkload, type Workload } from '../../bench/workload.js';

export const WEB_CLUSTER_IP = '10.100.0.10';
export const WEB_NODE_PORT = 32500;
export const WEB_PORT = 80;
export const POD_PORT = 8080;
/** 10.248.0.0/14, the workload's added pods, as /proc/net/ip_vs prints an address (hex). */
export const ADDED_PODS_HEX = '0AF8';

function webYaml(podAddresses: readonly string[]): string {
  const endpoints = podAddresses.map(
    (ip, i) =>
      `  - addresses: [${ip}]\n    conditions: { ready: true }\n    nodeName: node-a\n    targetRef: { kind: Pod, name: web-${String(i)}, namespace: default }`,
  );
  return `apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec:
  type: NodePort
  clusterIP: ${WEB_CLUSTER_IP}
  clusterIPs: [${WEB_CLUSTER_IP}]
  ports: [{ name: http, protocol: TCP, port: ${String(WEB_PORT)}, targetPort: ${String(POD_PORT)}, nodePort: ${String(WEB_NODE_PORT)} }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-abc, namespace: default, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
ports: [{ name: http, protocol: TCP, port: ${String(POD_PORT)} }]
endpoints:
${endpoints.join('\n')}
`;
}

/** The workload; with `extraFor`, those Services' slices carry one more endpoint (a pod in 10.248.0.0/14). */
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
    if (!only && podAddresses.length > 0) writeFileSync(join(staging, 'web.yaml'), webYaml(podAddresses));
    for (const file of readdirSync(staging)) renameSync(join(staging, file), join(dir, file));
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** Virtual servers and real servers the kernel holds for the workload (NodePorts on one node address) and web. */
export function expectedRealServers(count: number, extraFor: ReadonlySet<number> = new Set(), podCount = 3): number {
  let total = 0;
  for (let index = 0; index < count; index++) total += virtualServersOf(index) * (10 + (extraFor.has(index) ? 1 : 0));
  return total + 2 * podCount;
}
