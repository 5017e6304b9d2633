// What the agent was told (flags, configuration file) and what it knows about its node.
import type { AddressFamily } from '../ip.js';

export interface NodeFacts {
  /** This node's name, to tell local endpoints (externalTrafficPolicy/internalTrafficPolicy Local). */
  readonly name: string;
  /** The node's own addresses, for NodePorts (after --nodeport-addresses filtering). */
  readonly addresses: readonly string[];
  /** The families the node has; a Service IP of another family is skipped with a reason. */
  readonly families: readonly AddressFamily[];
  /** The Node's topology.kubernetes.io/zone label, for topology hints; absent or '' when unlabelled. */
  readonly zone?: string;
  /** The Node's spec.podCIDRs (detect-local NodeCIDR); absent until the Node object is known. */
  readonly podCIDRs?: readonly string[];
  /** The Node's status.addresses, InternalIP ones first then ExternalIP (kube-proxy's node IPs, for `primary`). */
  readonly nodeIPs?: readonly string[];
}

export interface ProxySettings {
  /** The default IPVS scheduler (rr, lc, wrr, or any the kernel has: wlc, sh, dh, sed, nq, mh, ...). */
  readonly scheduler: string;
  /** Dummy interface the service addresses are bound to. */
  readonly dummyInterface: string;
  /** Masquerade all traffic to services (--masquerade-all). */
  readonly masqueradeAll: boolean;
  /** Pod CIDRs; traffic from outside them to a ClusterIP is masqueraded (--cluster-cidr). */
  readonly clusterCidrs: readonly string[];
  /** CIDRs whose virtual servers kipvs must neither create nor delete (--ipvs-exclude-cidrs). */
  readonly excludeCidrs: readonly string[];
  /** Seconds a removed TCP real server keeps weight 0 to drain before it is deleted. */
  readonly gracefulTerminationSeconds: number;
}

export const DEFAULT_SETTINGS: ProxySettings = {
  scheduler: 'rr',
  dummyInterface: 'kube-ipvs0',
  masqueradeAll: false,
  clusterCidrs: [],
  excludeCidrs: [],
  gracefulTerminationSeconds: 900,
};

/** Annotations kipvs reads on a Service. */
export const ANNOTATIONS = {
  /** Per-Service scheduler, overriding --scheduler: `kipvs.io/scheduler: wrr`. */
  scheduler: 'kipvs.io/scheduler',
  /**
   * Real server weights for weighted schedulers, by endpoint address or target (pod) name:
   * `kipvs.io/weights: "web-0=3,web-1=1,10.244.2.7=5"`. Endpoints not named get weight 1.
   */
  weights: 'kipvs.io/weights',
} as const;
