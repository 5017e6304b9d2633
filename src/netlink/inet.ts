// linux/in.h and linux/in6.h: the layer-4 protocol numbers the IPVS, ipset and conntrack wire
// formats carry, defined once; each family's wire.ts re-exports them, where the uapi test checks them.
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_SCTP = 132;
export const IPPROTO_UDPLITE = 136;
