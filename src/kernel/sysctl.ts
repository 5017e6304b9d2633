// The sysctls IPVS mode needs, set as kube-proxy's NewProxier sets them (pkg/proxy/ipvs/proxier.go,
// EnsureSysctl: read, and write only when the value differs). Read and written through /proc/sys;
// for another network namespace we enter it around the synchronous file operations
// (withNetworkNamespace), since every net.* sysctl here is per namespace.
import { readFileSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { KipvsError } from '../errors.js';
import { withNetworkNamespace } from '../netlink/netns.js';

export interface DesiredSysctl {
  /** Dotted name: net.ipv4.vs.conntrack. */
  readonly name: string;
  readonly value: string;
}

/** A sysctl kipvs changed, for the agent to log. */
export interface SysctlChange {
  readonly name: string;
  readonly old: string;
  readonly new: string;
}

/** A sysctl deliberately left alone, and why. */
export interface SysctlSkipped {
  readonly name: string;
  readonly reason: string;
}

export interface IpvsSysctlOptions {
  /** --ipvs-strict-arp: answer ARP only for addresses on the receiving interface, not for VIPs on kube-ipvs0. */
  readonly strictArp?: boolean;
  /** The running kernel's release (`uname -r`); conn_reuse_mode depends on it. */
  readonly kernelRelease?: string;
}

export class SysctlError extends KipvsError {
  constructor(
    code: 'KIPVS_SYSCTL_MISSING' | 'KIPVS_SYSCTL_PERMISSION' | 'KIPVS_SYSCTL',
    readonly sysctl: string,
    readonly errnoCode: string,
    message: string,
  ) {
    super(code, message);
  }
}

/** utilkernel.IPVSConnReuseModeMinSupportedKernelVersion and IPVSConnReuseModeFixedKernelVersion. */
const CONN_REUSE_MODE_MIN_KERNEL = [4, 1] as const;
const CONN_REUSE_MODE_FIXED_KERNEL = [5, 9] as const;

function kernelAtLeast(kernelRelease: string, [major, minor]: readonly [number, number]): boolean {
  const [, kernelMajor = '0', kernelMinor = '0'] = /^(\d+)\.(\d+)/.exec(kernelRelease) ?? [];
  return Number(kernelMajor) > major || (Number(kernelMajor) === major && Number(kernelMinor) >= minor);
}

/** The values kube-proxy's IPVS mode sets, in its order, and the ones it leaves alone. */
export function ipvsSysctls(options: IpvsSysctlOptions = {}): { desired: DesiredSysctl[]; skipped: SysctlSkipped[] } {
  const kernelRelease = options.kernelRelease ?? release();
  // Without conntrack for IPVS connections, the MASQUERADE and filter rules never see them.
  const desired: DesiredSysctl[] = [{ name: 'net.ipv4.vs.conntrack', value: '1' }];
  const skipped: SysctlSkipped[] = [];
  // With conn_reuse_mode=1 the kernel dropped the first packet of a connection that reused a
  // stale conntrack entry: a 1 s delay under load (kubernetes#70747), so kube-proxy sets 0. But 0
  // keeps sending reused source ports to a removed real server (kubernetes#81775); kernel 5.9
  // fixed both (torvalds/linux@35dfb013), and kube-proxy leaves the default from then on
  // (kubernetes#93297). Before 4.1 the sysctl does not exist.
  if (!kernelAtLeast(kernelRelease, CONN_REUSE_MODE_MIN_KERNEL)) {
    skipped.push({ name: 'net.ipv4.vs.conn_reuse_mode', reason: `kernel ${kernelRelease} is older than 4.1, which introduced it` });
  } else if (kernelAtLeast(kernelRelease, CONN_REUSE_MODE_FIXED_KERNEL)) {
    skipped.push({ name: 'net.ipv4.vs.conn_reuse_mode', reason: `left as-is: kernel ${kernelRelease} has the 5.9 fix (kubernetes#93297)` });
  } else {
    desired.push({ name: 'net.ipv4.vs.conn_reuse_mode', value: '0' });
  }
  desired.push(
    // Drop connections to a deleted real server at once instead of blackholing their packets.
    { name: 'net.ipv4.vs.expire_nodest_conn', value: '1' },
    // Expire persistence (session affinity) templates of a real server whose weight went to 0.
    { name: 'net.ipv4.vs.expire_quiescent_template', value: '1' },
    { name: 'net.ipv4.ip_forward', value: '1' },
  );
  if (options.strictArp) {
    desired.push({ name: 'net.ipv4.conf.all.arp_ignore', value: '1' }, { name: 'net.ipv4.conf.all.arp_announce', value: '2' });
  }
  return { desired, skipped };
}

const sysctlPath = (name: string): string => `/proc/sys/${name.replaceAll('.', '/')}`;

function sysctlError(name: string, operation: 'read' | 'write', error: NodeJS.ErrnoException): SysctlError {
  const errno = error.code ?? 'EIO';
  if (errno === 'ENOENT') {
    const hint = name.startsWith('net.ipv4.vs.') ? ' (is the ip_vs module loaded?)' : '';
    return new SysctlError('KIPVS_SYSCTL_MISSING', name, errno, `${operation} sysctl ${name}: ${sysctlPath(name)} does not exist${hint}`);
  }
  const code = errno === 'EACCES' || errno === 'EPERM' || errno === 'EROFS' ? 'KIPVS_SYSCTL_PERMISSION' : 'KIPVS_SYSCTL';
  return new SysctlError(code, name, errno, `${operation} sysctl ${name}: ${errno}`);
}

/** Sets each sysctl that differs from its desired value; returns the changes made, in order. */
export function ensureSysctls(desired: readonly DesiredSysctl[], options: { readonly netns?: string } = {}): SysctlChange[] {
  // Synchronous throughout: no other JavaScript runs while we are inside the namespace.
  return withNetworkNamespace(options.netns, () => {
    const changes: SysctlChange[] = [];
    for (const { name, value } of desired) {
      let old: string;
      try {
        old = readFileSync(sysctlPath(name), 'utf8').trim();
      } catch (error) {
        throw sysctlError(name, 'read', error as NodeJS.ErrnoException);
      }
      if (old === value) continue;
      try {
        writeFileSync(sysctlPath(name), `${value}\n`);
      } catch (error) {
        throw sysctlError(name, 'write', error as NodeJS.ErrnoException);
      }
      changes.push({ name, old, new: value });
    }
    return changes;
  });
}

/** kube-proxy's IPVS-mode sysctls: what changed (to log each) and what was left alone, and why. */
export function ensureIpvsSysctls(options: IpvsSysctlOptions & { readonly netns?: string } = {}): { changes: SysctlChange[]; skipped: SysctlSkipped[] } {
  const { desired, skipped } = ipvsSysctls(options);
  return { changes: ensureSysctls(desired, options), skipped };
}
