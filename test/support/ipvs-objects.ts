// Virtual and real servers as the tests write them: kube-proxy's defaults (rr, no flags,
// masquerading, weight 1), with what a case changes.
import type { IpvsDestination, IpvsService, IpvsServiceKey } from '../../src/netlink/ipvs/types.js';

export const virtualServer = (key: IpvsServiceKey, extra: Partial<IpvsService> = {}): IpvsService => ({
  key,
  scheduler: 'rr',
  flags: 0,
  timeout: 0,
  netmask: key.family === 'inet' ? 32 : 128,
  ...extra,
});

/** A real server on port 8080 of `address`, of the address's family. */
export const realServer = (address: string, extra: Partial<IpvsDestination> = {}): IpvsDestination => ({
  address,
  port: 8080,
  family: address.includes(':') ? 'inet6' : 'inet',
  forwarding: 'masq',
  weight: 1,
  upperThreshold: 0,
  lowerThreshold: 0,
  ...extra,
});
