// The IPVS schedulers the kernel ships (net/netfilter/ipvs/ip_vs_*.c), by the names ipvsadm uses:
// the one list the flags, the configuration file, the Service annotation and the kernel mirror check.
export const IPVS_SCHEDULERS: readonly string[] = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'twos'];

export const isIpvsScheduler = (name: string): boolean => IPVS_SCHEDULERS.includes(name);
