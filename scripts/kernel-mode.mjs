// Which kernel the kernel tests run in: the host's, when it has IPVS and we may make network
// namespaces as root, else User-Mode Linux. One answer for scripts/sandbox.mjs, which runs a
// command there, and scripts/kernel-tests.mjs, which decides how many to run at once.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export function hostHasIpvs() {
  if (process.getuid?.() !== 0) return false;
  // Root in a container without CAP_SYS_ADMIN/CAP_NET_ADMIN may see /proc/net/ip_vs yet cannot
  // make the network namespaces every kernel test works in: then UML it is.
  if (spawnSync('unshare', ['-n', 'ip', 'link', 'add', 'kipvs-probe', 'type', 'dummy'], { stdio: 'ignore' }).status !== 0) return false;
  if (existsSync('/proc/net/ip_vs')) return true;
  return spawnSync('modprobe', ['ip_vs'], { stdio: 'ignore' }).status === 0 && existsSync('/proc/net/ip_vs');
}

/** 'direct' or 'uml', as KIPVS_SANDBOX forces it or the host allows. */
export const kernelMode = () => process.env.KIPVS_SANDBOX ?? (hostHasIpvs() ? 'direct' : 'uml');
