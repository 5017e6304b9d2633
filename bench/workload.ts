// The cluster the benchmark programs: N Services with 10 endpoints each (KIPVS_BENCH_ENDPOINTS), as Service and
// EndpointSlice objects shaped like `kubectl get -o yaml` prints them (examples/web.yaml).
// Deterministic: the same N gives the same objects, byte for byte, on every run.
//
// - Every Service is a ClusterIP Service with one TCP port (80 → 8080); one in five is a NodePort
//   (externalTrafficPolicy Cluster), served on the node's one address.
// - Endpoints are spread over NODE_COUNT nodes in turn, so one in NODE_COUNT is on this node
//   (node-a): those give KUBE-LOOP-BACK entries, as kube-proxy's hairpin rules need.
// - Addresses lie inside 10.0.0.0/8 (Services in 10.96.0.0/12, pods in 10.244.0.0/14, pods that
//   the change benchmarks add in 10.248.0.0/14) and the node's in 192.168.0.0/16; the benchmark
//   programs them only in network namespaces it creates.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Endpoint, EndpointSlice, Service } from '../src/model/kubernetes.js';
import type { NodeFacts } from '../src/model/settings.js';

/**
 * 10, or KIPVS_BENCH_ENDPOINTS: 50 at 5,000 Services is the shape where kube-proxy's nftables mode
 * needs 13 minutes for a full sync (kubernetes#135639): 250,000 real servers, pods up to 10.247.x.
 */
export const ENDPOINTS_PER_SERVICE = endpointsPerService(process.env.KIPVS_BENCH_ENDPOINTS);

function endpointsPerService(text: string | undefined): number {
  const value = Number(text ?? 10);
  if (!Number.isInteger(value) || value < 1 || value > 100) throw new Error(`KIPVS_BENCH_ENDPOINTS: 1 to 100, not ${String(text)}`);
  return value;
}
export const NODE_COUNT = 20;
export const NODE_NAME = 'node-a';
/** The node's address, on a link of its own in the node's namespace; NodePorts listen on it. */
export const NODE_ADDRESS = '192.168.0.10';
export const NODE_ADDRESS_PREFIX = 24;
export const NODE: NodeFacts = { name: NODE_NAME, addresses: [NODE_ADDRESS], families: ['inet'] };
/** Services per Kubernetes namespace (and per source file). */
const SERVICES_PER_NAMESPACE = 100;
const SERVICE_PORT = 80;
const TARGET_PORT = 8080;
const FIRST_NODE_PORT = 30000;

export interface Workload {
  readonly services: readonly Service[];
  readonly endpointSlices: readonly EndpointSlice[];
}

/** `a.b.c.d` of a 32-bit number. */
const dotted = (value: number): string => [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
const SERVICE_BASE = (10 << 24) | (96 << 16); // 10.96.0.0/12
const POD_BASE = (10 << 24) | (244 << 16); // 10.244.0.0/14
const ADDED_POD_BASE = (10 << 24) | (248 << 16); // 10.248.0.0/14

/** 10.96.0.10 upwards: 10.96.0.1 is the API server's own Service in a real cluster. */
const clusterIpOf = (index: number): string => dotted(SERVICE_BASE + 10 + index);
const podAddressOf = (pod: number): string => dotted(POD_BASE + 1 + pod);
const nodeNameOf = (pod: number): string => (pod % NODE_COUNT === 0 ? NODE_NAME : `node-${String.fromCharCode(97 + (pod % NODE_COUNT))}`);
const isNodePort = (index: number): boolean => index % 5 === 0;
const namespaceOf = (index: number): string => `bench-${String(Math.floor(index / SERVICES_PER_NAMESPACE)).padStart(3, '0')}`;
const serviceNameOf = (index: number): string => `svc-${index}`;

/** A stable 5-letter suffix, as the EndpointSlice controller's generateName gives. */
function suffixOf(value: number): string {
  let x = (value * 2654435761) >>> 0;
  let text = '';
  for (let i = 0; i < 5; i++) {
    text += 'bcdfghjklmnpqrstvwxz2456789'.charAt(x % 27);
    x = Math.floor(x / 27) + 7919 * (i + 1);
  }
  return text;
}

function service(index: number): Service {
  const name = serviceNameOf(index);
  const clusterIP = clusterIpOf(index);
  const nodePort = isNodePort(index);
  // uid and selector as kubectl prints them: the agent drops both (src/sources/compact.ts).
  const metadata = {
    name,
    namespace: namespaceOf(index),
    uid: `00000000-0000-4000-8000-${String(index).padStart(12, '0')}`,
    resourceVersion: String(1000 + index),
  };
  const selector = { app: name };
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata,
    spec: {
      type: nodePort ? 'NodePort' : 'ClusterIP',
      clusterIP,
      clusterIPs: [clusterIP],
      ipFamilies: ['IPv4'],
      ...{ selector },
      ports: [{ name: 'http', protocol: 'TCP', port: SERVICE_PORT, targetPort: TARGET_PORT, ...(nodePort ? { nodePort: FIRST_NODE_PORT + index / 5 } : {}) }],
      sessionAffinity: 'None',
      ...(nodePort ? { externalTrafficPolicy: 'Cluster' } : {}),
      internalTrafficPolicy: 'Cluster',
    },
  };
}

function endpoint(address: string, nodeName: string, podName: string, namespace: string): Endpoint {
  return {
    addresses: [address],
    conditions: { ready: true, serving: true, terminating: false },
    nodeName,
    targetRef: { kind: 'Pod', name: podName, namespace },
  };
}

function endpointsOf(index: number): Endpoint[] {
  const namespace = namespaceOf(index);
  return Array.from({ length: ENDPOINTS_PER_SERVICE }, (_, j) => {
    const pod = index * ENDPOINTS_PER_SERVICE + j;
    return endpoint(podAddressOf(pod), nodeNameOf(pod), `${serviceNameOf(index)}-${suffixOf(pod)}`, namespace);
  });
}

function slice(index: number, endpoints: readonly Endpoint[], generation: number): EndpointSlice {
  const name = serviceNameOf(index);
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `${name}-${suffixOf(index + 1_000_000)}`,
      namespace: namespaceOf(index),
      resourceVersion: String(100_000 + index + generation),
      labels: { 'kubernetes.io/service-name': name, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
    },
    addressType: 'IPv4',
    ports: [{ name: 'http', protocol: 'TCP', port: TARGET_PORT }],
    endpoints,
  };
}

export function generateWorkload(count: number): Workload {
  const services: Service[] = [];
  const endpointSlices: EndpointSlice[] = [];
  for (let index = 0; index < count; index++) {
    services.push(service(index));
    endpointSlices.push(slice(index, endpointsOf(index), 0));
  }
  return { services, endpointSlices };
}

/** Multi-document YAML, one file per Kubernetes namespace, as `kubectl get svc,endpointslices -o yaml` per namespace. */
export function writeWorkload(directory: string, workload: Workload): void {
  mkdirSync(directory, { recursive: true });
  const byNamespace = new Map<string, string[]>();
  const documents = [...workload.services, ...workload.endpointSlices];
  for (const object of documents) {
    const namespace = object.metadata.namespace ?? 'default';
    let texts = byNamespace.get(namespace);
    if (!texts) byNamespace.set(namespace, (texts = []));
    texts.push(stringify(object));
  }
  for (const [namespace, texts] of byNamespace) writeFileSync(join(directory, `${namespace}.yaml`), texts.map((text) => `---\n${text}`).join(''));
}

/** What the kernel must hold for `count` Services (a check independent of kipvs's translation). */
export function expectedCounts(count: number): { virtualServers: number; realServers: number; boundAddresses: number; loopBackEntries: number } {
  const nodePorts = Math.ceil(count / 5);
  const pods = count * ENDPOINTS_PER_SERVICE;
  return {
    virtualServers: count + nodePorts,
    realServers: (count + nodePorts) * ENDPOINTS_PER_SERVICE,
    boundAddresses: count,
    loopBackEntries: Math.ceil(pods / NODE_COUNT),
  };
}

/**
 * One endpoint change of a Service's only slice, as a new object (sources hand over a new object
 * for every update). `extra` pods join the 10 (on another node, so that the change is exactly one
 * real server); `removed` drops the original endpoint at that position.
 */
export function changedSlice(index: number, change: { readonly extra?: number; readonly removed?: number }, generation: number): EndpointSlice {
  let endpoints = endpointsOf(index);
  if (change.removed !== undefined) endpoints = endpoints.filter((_, j) => j !== change.removed);
  if (change.extra !== undefined) {
    endpoints.push(endpoint(dotted(ADDED_POD_BASE + 1 + change.extra), 'node-b', `${serviceNameOf(index)}-added-${change.extra}`, namespaceOf(index)));
  }
  return slice(index, endpoints, generation);
}

/**
 * A second slice of the Service, named apart from its first, with one pod of its own (pod `n` of
 * 10.248.0.0/14, on another node): for the file source's churn, a file that holds it now for one
 * Service and next for another adds a real server to one and takes one from the other. (A changed
 * copy of a slice that an earlier file holds too changes nothing: the store keeps the first copy.)
 */
export function extraSlice(index: number, n: number): EndpointSlice {
  const first = slice(index, [endpoint(dotted(ADDED_POD_BASE + 1 + n), 'node-b', `${serviceNameOf(index)}-extra-${n}`, namespaceOf(index))], n + 1);
  return { ...first, metadata: { ...first.metadata, name: `${first.metadata.name}-extra` } };
}

/** The Service's original slice (the workload's object itself, so its identity is kept). */
export function originalSlice(workload: Workload, index: number): EndpointSlice {
  const slice = workload.endpointSlices[index];
  if (!slice) throw new Error(`the workload has no Service ${index}`);
  return slice;
}

/** An endpoint position of the Service whose pod is on another node (removing it is one real server). */
export function remoteEndpointOf(index: number): number {
  for (let j = 0; j < ENDPOINTS_PER_SERVICE; j++) if (nodeNameOf(index * ENDPOINTS_PER_SERVICE + j) !== NODE_NAME) return j;
  throw new Error(`service ${index} has no endpoint on another node`);
}

/** The virtual servers one endpoint of the Service is a real server of: its ClusterIP's, and its NodePort's. */
export const virtualServersOf = (index: number): number => (isNodePort(index) ? 2 : 1);

/** The n-th of a sequence of distinct Services spread over the cluster (a stride prime to N). */
export const spreadServiceIndex = (n: number, count: number, offset = 0): number => (n * 7919 + offset) % count;
