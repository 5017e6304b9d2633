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
    const hint = name.startsWith('net.ipv4.vs.')
      ? ' (is the ip_vs module loaded?)'
      : name.startsWith('net.netfilter.')
        ? ' (is the nf_conntrack module loaded?)'
        : '';
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

// ---- conntrack, as kube-proxy's setupConntrack (cmd/kube-proxy/app/server_linux.go, conntrack.go) ----

/** kube-proxy's conntrack settings (KubeProxyConntrackConfiguration); durations in ms, 0 leaves the kernel's value. */
export interface ConntrackConfig {
  readonly maxPerCore: number;
  readonly min: number;
  readonly tcpEstablishedTimeoutMs: number;
  readonly tcpCloseWaitTimeoutMs: number;
  readonly tcpBeLiberal: boolean;
  readonly udpTimeoutMs: number;
  readonly udpStreamTimeoutMs: number;
}

/** kube-proxy's defaults (pkg/proxy/apis/config/v1alpha1/defaults.go). */
export const DEFAULT_CONNTRACK: ConntrackConfig = {
  maxPerCore: 32 * 1024,
  min: 128 * 1024,
  tcpEstablishedTimeoutMs: 24 * 3600_000,
  tcpCloseWaitTimeoutMs: 3600_000,
  tcpBeLiberal: false,
  udpTimeoutMs: 0,
  udpStreamTimeoutMs: 0,
};

/** getConntrackMax: maxPerCore × CPUs, never below min; 0 (leave it) when maxPerCore is 0. */
export function conntrackMax(config: ConntrackConfig, cpus: number): number {
  if (config.maxPerCore <= 0) return 0;
  return Math.max(config.maxPerCore * cpus, config.min);
}

/**
 * The per-namespace conntrack sysctls kube-proxy sets, in its order: each timeout only when > 0
 * (whole seconds, as int(d / time.Second)), be_liberal only when true.
 */
export function conntrackSysctls(config: ConntrackConfig): DesiredSysctl[] {
  const seconds = (ms: number): string => String(Math.trunc(ms / 1000));
  const desired: DesiredSysctl[] = [];
  if (config.tcpEstablishedTimeoutMs > 0)
    desired.push({ name: 'net.netfilter.nf_conntrack_tcp_timeout_established', value: seconds(config.tcpEstablishedTimeoutMs) });
  if (config.tcpCloseWaitTimeoutMs > 0)
    desired.push({ name: 'net.netfilter.nf_conntrack_tcp_timeout_close_wait', value: seconds(config.tcpCloseWaitTimeoutMs) });
  if (config.tcpBeLiberal) desired.push({ name: 'net.netfilter.nf_conntrack_tcp_be_liberal', value: '1' });
  if (config.udpTimeoutMs > 0) desired.push({ name: 'net.netfilter.nf_conntrack_udp_timeout', value: seconds(config.udpTimeoutMs) });
  if (config.udpStreamTimeoutMs > 0) desired.push({ name: 'net.netfilter.nf_conntrack_udp_timeout_stream', value: seconds(config.udpStreamTimeoutMs) });
  return desired;
}

const HASHSIZE = '/sys/module/nf_conntrack/parameters/hashsize';

function hashsizeError(operation: 'read' | 'write', error: NodeJS.ErrnoException): SysctlError {
  const errno = error.code ?? 'EIO';
  const code =
    errno === 'ENOENT' ? 'KIPVS_SYSCTL_MISSING' : errno === 'EACCES' || errno === 'EPERM' || errno === 'EROFS' ? 'KIPVS_SYSCTL_PERMISSION' : 'KIPVS_SYSCTL';
  return new SysctlError(
    code,
    'nf_conntrack hashsize',
    errno,
    `${operation} ${HASHSIZE}: ${errno}${errno === 'ENOENT' ? ' (is the nf_conntrack module loaded?)' : ''}`,
  );
}

/** Whether /sys is mounted read-write (kube-proxy's isSysFSWritable reads the mount table too). */
function sysfsWritable(): boolean {
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' '));
  const sysfs = mounts.find((fields) => fields[2] === 'sysfs');
  return sysfs?.[3]?.split(',')[0] === 'rw';
}

/**
 * realConntracker.SetMax: nf_conntrack_max, then the hash table to max/4 buckets when it is
 * smaller. Both are global to the kernel: nf_conntrack_max is writable only from the initial
 * network namespace, the hashsize only by a writer in it. A read-only /sys is logged, not fatal.
 */
function ensureConntrackMax(max: number, changes: SysctlChange[], skipped: SysctlSkipped[]): void {
  changes.push(...ensureSysctls([{ name: 'net.netfilter.nf_conntrack_max', value: String(max) }]));
  let hashsize: number;
  try {
    hashsize = Number(readFileSync(HASHSIZE, 'utf8').trim());
  } catch (error) {
    throw hashsizeError('read', error as NodeJS.ErrnoException);
  }
  if (hashsize >= Math.trunc(max / 4)) return;
  if (!sysfsWritable()) {
    skipped.push({
      name: 'nf_conntrack hashsize',
      reason: `/sys is read-only: cannot raise it from ${String(hashsize)} to ${String(Math.trunc(max / 4))} (docker#24000)`,
    });
    return;
  }
  try {
    writeFileSync(HASHSIZE, String(Math.trunc(max / 4)));
  } catch (error) {
    throw hashsizeError('write', error as NodeJS.ErrnoException);
  }
  changes.push({ name: 'nf_conntrack hashsize', old: String(hashsize), new: String(Math.trunc(max / 4)) });
}

/**
 * kube-proxy's conntrack setup. The timeouts and be_liberal are per network namespace and are set
 * in `netns`. nf_conntrack_max and the hashsize are global: set only when kipvs programs its own
 * namespace (no --netns), since with --netns it programs someone else's namespace (a test's, a
 * sandbox's) and must not change the whole kernel.
 */
export function ensureConntrackSysctls(
  config: ConntrackConfig,
  options: { readonly netns?: string; readonly cpus: number },
): { changes: SysctlChange[]; skipped: SysctlSkipped[] } {
  const changes: SysctlChange[] = [];
  const skipped: SysctlSkipped[] = [];
  const max = conntrackMax(config, options.cpus);
  if (max > 0 && options.netns !== undefined) {
    skipped.push({
      name: 'net.netfilter.nf_conntrack_max',
      reason: `global to the kernel: not set for another network namespace (--netns ${options.netns}); wanted ${String(max)}`,
    });
  } else if (max > 0) {
    ensureConntrackMax(max, changes, skipped);
  }
  changes.push(...ensureSysctls(conntrackSysctls(config), options));
  return { changes, skipped };
}
