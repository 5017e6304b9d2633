// The parts of core/v1 Service and discovery.k8s.io/v1 EndpointSlice that a service proxy reads,
// in their JSON form (as `kubectl get -o yaml` prints them). Plain data: every source (file,
// API server) produces these, and translation reads nothing else.

export interface ObjectMeta {
  readonly name: string;
  readonly namespace?: string;
  readonly resourceVersion?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface ServicePort {
  readonly name?: string;
  /** TCP when absent. */
  readonly protocol?: string;
  readonly port: number;
  /** A number or the name of a container port; endpoints carry the resolved number. */
  readonly targetPort?: number | string;
  readonly nodePort?: number;
}

export interface ServiceSpec {
  /** ClusterIP, NodePort, LoadBalancer or ExternalName; ClusterIP when absent. */
  readonly type?: string;
  readonly clusterIP?: string;
  readonly clusterIPs?: readonly string[];
  readonly ipFamilies?: readonly string[];
  readonly ports?: readonly ServicePort[];
  readonly externalIPs?: readonly string[];
  readonly externalName?: string;
  readonly loadBalancerSourceRanges?: readonly string[];
  /** Cluster or Local. */
  readonly externalTrafficPolicy?: string;
  /** Cluster or Local. */
  readonly internalTrafficPolicy?: string;
  readonly healthCheckNodePort?: number;
  /** None or ClientIP. */
  readonly sessionAffinity?: string;
  readonly sessionAffinityConfig?: { readonly clientIP?: { readonly timeoutSeconds?: number } };
}

export interface LoadBalancerIngress {
  readonly ip?: string;
  readonly hostname?: string;
  /** VIP or Proxy: `Proxy` means the load balancer does not send traffic with the VIP as destination. */
  readonly ipMode?: string;
}

export interface Service {
  readonly apiVersion?: string;
  readonly kind?: 'Service';
  readonly metadata: ObjectMeta;
  readonly spec?: ServiceSpec;
  readonly status?: { readonly loadBalancer?: { readonly ingress?: readonly LoadBalancerIngress[] } };
}

export interface EndpointConditions {
  /** Unknown (absent) counts as ready, as in kube-proxy. */
  readonly ready?: boolean;
  readonly serving?: boolean;
  readonly terminating?: boolean;
}

/**
 * Read by property access only: the store keeps most endpoints compact (src/sources/compact.ts),
 * with `addresses` and `targetRef` made when read rather than own fields, so a spread, a clone
 * or Object.keys sees other fields, and each read of one of those two is a new object.
 */
export interface Endpoint {
  readonly addresses: readonly string[];
  readonly conditions?: EndpointConditions;
  readonly nodeName?: string;
  readonly zone?: string;
  readonly targetRef?: { readonly kind?: string; readonly name?: string; readonly namespace?: string };
  readonly hints?: { readonly forZones?: readonly { readonly name: string }[] };
}

export interface EndpointPort {
  readonly name?: string;
  readonly protocol?: string;
  readonly port?: number;
}

export interface EndpointSlice {
  readonly apiVersion?: string;
  readonly kind?: 'EndpointSlice';
  readonly metadata: ObjectMeta;
  /** IPv4, IPv6 or FQDN (which kube-proxy ignores). */
  readonly addressType: string;
  readonly endpoints?: readonly Endpoint[] | null;
  readonly ports?: readonly EndpointPort[] | null;
}

/** The label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** Everything translation needs from the cluster at one moment. */
export interface ClusterSnapshot {
  readonly services: readonly Service[];
  readonly endpointSlices: readonly EndpointSlice[];
}
