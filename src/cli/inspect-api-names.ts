// Service names for `kipvs inspect --kubeconfig`: the API server's Services and EndpointSlices,
// listed once. A module of its own so that the API source's modules load only when it is used.
import { loadKubeAccess, toEndpointSlice, toService } from '../sources/kube-source.js';
import { listPages } from '../sources/kube-http.js';
import { serviceNamesFromObjects, type ServiceNames } from '../agent/service-names.js';
import type { EndpointSlice, Service } from '../model/kubernetes.js';

const LIST = { pageSize: 500, timeoutMs: 60_000 };

/** Names from the API server: its Services and EndpointSlices, listed once. */
export async function serviceNamesFromApiServer(kubeconfig: string): Promise<ServiceNames> {
  const access = await loadKubeAccess(kubeconfig);
  const services: Service[] = [];
  const slices: EndpointSlice[] = [];
  await Promise.all([
    listPages(access, '/api/v1/services', {}, LIST, (items) => {
      for (const item of items) services.push(toService(item));
    }),
    listPages(access, '/apis/discovery.k8s.io/v1/endpointslices', {}, LIST, (items) => {
      for (const item of items) slices.push(toEndpointSlice(item));
    }),
  ]);
  return serviceNamesFromObjects(services, slices, `the API server ${access.server} (--kubeconfig ${kubeconfig})`);
}
