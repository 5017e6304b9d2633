// What a kernel refusal most likely means, where the errno alone is ambiguous: IPVS answers ENOENT
// both for a scheduler whose module is missing and for a persistence engine that is, EINVAL for
// any field it does not accept, EAFNOSUPPORT for a family it was built without. The reasons are
// those of net/netfilter/ipvs/ip_vs_ctl.c (ip_vs_add_service(), ip_vs_genl_parse_service(),
// ip_vs_genl_parse_dest(), ip_vs_check_dest()).
import { NetlinkRequestError } from '../netlink/errors.js';
import type { IpvsOperation } from '../netlink/ipvs/types.js';
import type { KernelOperation } from '../reconcile/state.js';

const schedulerModule = (scheduler: string): string => `ip_vs_${scheduler}`;

function ipvsCause(operation: IpvsOperation, errno: string): string | undefined {
  switch (operation.op) {
    case 'addService':
    case 'editService': {
      const { service } = operation;
      if (errno === 'ENOENT') {
        const module = schedulerModule(service.scheduler);
        const engine = service.persistenceEngine ? ` or persistence engine ${service.persistenceEngine} (ip_vs_pe_${service.persistenceEngine})` : '';
        return `likely cause: scheduler ${service.scheduler} is not in this kernel: module ${module} missing or not loadable (modprobe ${module})${engine}`;
      }
      if (errno === 'EAFNOSUPPORT')
        return `likely cause: this kernel's IPVS was built without ${service.key.family === 'inet6' ? 'IPv6 (CONFIG_IP_VS_IPV6)' : 'this address family'}`;
      if (errno === 'EINVAL') {
        return `likely cause: a field this kernel does not accept: flags 0x${service.flags.toString(16)}, persistence netmask /${service.netmask}, timeout ${service.timeout}s`;
      }
      return undefined;
    }
    case 'addDestination':
    case 'editDestination': {
      const { destination, service } = operation;
      if (errno === 'ESRCH') return 'likely cause: the virtual server is gone (removed by someone else since it was read)';
      if (errno === 'EAFNOSUPPORT') {
        const { family } = service;
        return family === destination.family
          ? `likely cause: this kernel's IPVS was built without ${family === 'inet6' ? 'IPv6 (CONFIG_IP_VS_IPV6)' : 'this family'}`
          : 'likely cause: a real server of another family than its virtual server, which IPVS allows only with tunnelling';
      }
      if (errno === 'EINVAL' && destination.tunnelType !== undefined && destination.tunnelType !== 'ipip') {
        return `likely cause: tunnel type ${destination.tunnelType} is not in this kernel (GUE needs Linux 5.2, GRE 5.3)`;
      }
      if (errno === 'ERANGE')
        return `likely cause: weight ${destination.weight} or thresholds ${destination.lowerThreshold}-${destination.upperThreshold} out of range`;
      return undefined;
    }
    case 'deleteService':
    case 'deleteDestination':
      return errno === 'ESRCH' || errno === 'ENOENT' ? 'likely cause: already removed by someone else' : undefined;
  }
}

function likelyCause(operation: KernelOperation, errno: string): string | undefined {
  if (operation.kind === 'ipvs') return ipvsCause(operation.operation, errno);
  if ((operation.kind === 'bindAddress' || operation.kind === 'unbindAddress') && errno === 'ENODEV') return 'likely cause: the dummy interface is gone';
  if (operation.kind === 'deleteUdpFlows' && (errno === 'EPROTONOSUPPORT' || errno === 'EOPNOTSUPP'))
    return 'likely cause: no conntrack netlink in this kernel (modprobe nf_conntrack_netlink)';
  return undefined;
}

/** The error with its likely cause added, when there is one to tell; other errors as they are. */
export function explainRefusal(operation: KernelOperation, error: Error): Error {
  // Only the plain class: ipset's errors (IpsetRequestError) name their causes themselves.
  if (!(error instanceof NetlinkRequestError) || error.constructor !== NetlinkRequestError) return error;
  const cause = likelyCause(operation, error.errnoName);
  if (cause === undefined) return error;
  return new NetlinkRequestError(error.operation, error.errno, error.extra ? `${error.extra}; ${cause}` : cause);
}
