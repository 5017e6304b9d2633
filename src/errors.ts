/**
 * Every stable error code kipvs raises. Callers and tests branch on these, never on message text;
 * a union makes a misspelt code a type error and lists them all in one place.
 */
export type KipvsErrorCode =
  // cli/
  | 'KIPVS_USAGE'
  | 'KIPVS_CONFIG'
  | 'KIPVS_ABORTED'
  | 'KIPVS_NOT_CONVERGED'
  | 'KIPVS_CLEANUP_INCOMPLETE'
  | 'KIPVS_INTERNAL'
  // sources/
  | 'KIPVS_SOURCE'
  | 'KIPVS_KUBECONFIG'
  | 'KIPVS_KUBE_CREDENTIALS'
  // agent/
  | 'KIPVS_BIND_ADDRESS'
  | 'KIPVS_LISTEN'
  // translate/
  | 'KIPVS_IPTABLES_SETTINGS'
  // kernel/
  | 'KIPVS_IPTABLES_EXEC'
  | 'KIPVS_IPTABLES_SAVE'
  | 'KIPVS_IPTABLES_RESTORE'
  | 'KIPVS_IPTABLES_CHAIN_IN_USE'
  | 'KIPVS_SYSCTL'
  | 'KIPVS_SYSCTL_MISSING'
  | 'KIPVS_SYSCTL_PERMISSION'
  // netlink/
  | 'KIPVS_NETLINK_REQUEST'
  | 'KIPVS_NETLINK_DECODE'
  | 'KIPVS_NETLINK_ENCODE'
  | 'KIPVS_NETLINK_TRANSPORT'
  | 'KIPVS_NETLINK_DUMP_INTERRUPTED'
  | 'KIPVS_IPVS_PROC_TABLE'
  | 'KIPVS_KERNEL_UNSUPPORTED'
  | 'KIPVS_PERMISSION'
  | 'KIPVS_NETNS'
  | 'KIPVS_LINK_NOT_FOUND'
  | 'KIPVS_LINK_KIND'
  | 'KIPVS_LINK_CHANGING'
  // native shim
  | 'KIPVS_NATIVE_MISSING';

/** Base class: every kipvs error has a stable `code` that callers and tests branch on. */
export class KipvsError extends Error {
  constructor(
    readonly code: KipvsErrorCode,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** What was thrown or rejected, as an Error (a promise may reject with anything). */
export function asError(thrown: unknown): Error {
  return thrown instanceof Error ? thrown : new Error(String(thrown));
}
