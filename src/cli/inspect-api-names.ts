// Service names for `kipvs inspect --kubeconfig`: the API server's Services and EndpointSlices,
// listed once. A module of its own so that client-node loads only when it is used.
import { CoreV1Api, DiscoveryV1Api } from '@kubernetes/client-node';
import { loadKubeConfig, toEndpointSlice, toService } from '../sources/kube-source.js';
import { serviceNamesFromObjects, type ServiceNames } from '../agent/service-names.js';

/** Names from the API server: its Services and EndpointSlices, listed once. */
export async function serviceNamesFromApiServer(kubeconfig: string): Promise<ServiceNames> {
  const config = loadKubeConfig(kubeconfig);
  const core = config.makeApiClient(CoreV1Api);
  const discovery = config.makeApiClient(DiscoveryV1Api);
  const [services, slices] = await Promise.all([core.listServiceForAllNamespaces(), discovery.listEndpointSliceForAllNamespaces()]);
  return serviceNamesFromObjects(
    services.items.map((item) => toService(item)),
    slices.items.map((item) => toEndpointSlice(item)),
    `the API server ${config.getCurrentCluster()?.server ?? ''} (--kubeconfig ${kubeconfig})`,
  );
}
