import { describe, expect, it } from 'vitest';
import { explainRefusal } from '../../../src/kernel/refusal-causes.js';
import { describeKernelOperation } from '../../../src/kernel/netlink-kernel.js';
import { NetlinkRequestError } from '../../../src/netlink/errors.js';
import { IpsetRequestError } from '../../../src/netlink/ipset/errors.js';
import type { KernelOperation } from '../../../src/reconcile/state.js';

const key = { family: 'inet' as const, protocol: 'TCP' as const, address: '10.96.0.10', port: 80 };
const addService = (scheduler: string, extra: { persistenceEngine?: string; family?: 'inet' | 'inet6' } = {}): KernelOperation => ({
  kind: 'ipvs',
  operation: {
    op: 'addService',
    service: {
      key: extra.family === 'inet6' ? { ...key, family: 'inet6', address: 'fd00::a' } : key,
      scheduler,
      flags: 0,
      timeout: 0,
      netmask: 32,
      ...(extra.persistenceEngine ? { persistenceEngine: extra.persistenceEngine } : {}),
    },
  },
});
const refuse = (operation: KernelOperation, errno: number): string =>
  explainRefusal(operation, new NetlinkRequestError(describeKernelOperation(operation, 'kube-ipvs0'), errno)).message;

describe('explainRefusal', () => {
  it('names the scheduler module a virtual server ENOENT most likely lacks', () => {
    expect(refuse(addService('twos'), 2)).toBe(
      'add virtual server TCP 10.96.0.10:80: ENOENT (likely cause: scheduler twos is not in this kernel: module ip_vs_twos missing or not loadable (modprobe ip_vs_twos))',
    );
    expect(refuse(addService('rr', { persistenceEngine: 'sip' }), 2)).toContain('or persistence engine sip (ip_vs_pe_sip)');
  });

  it('names the address family and the fields the kernel may not accept', () => {
    expect(refuse(addService('rr', { family: 'inet6' }), 97)).toContain("likely cause: this kernel's IPVS was built without IPv6 (CONFIG_IP_VS_IPV6)");
    expect(refuse(addService('rr'), 22)).toContain('likely cause: a field this kernel does not accept: flags 0x0, persistence netmask /32, timeout 0s');
    const destination = {
      address: 'fd00::1',
      port: 8080,
      family: 'inet6' as const,
      forwarding: 'tunnel' as const,
      weight: 1,
      upperThreshold: 0,
      lowerThreshold: 0,
    };
    const mixed: KernelOperation = { kind: 'ipvs', operation: { op: 'addDestination', service: key, destination } };
    expect(refuse(mixed, 97)).toContain('a real server of another family than its virtual server');
    const gue: KernelOperation = {
      kind: 'ipvs',
      operation: { op: 'addDestination', service: key, destination: { ...destination, family: 'inet', address: '10.0.0.1', tunnelType: 'gue' } },
    };
    expect(refuse(gue, 22)).toContain('tunnel type gue is not in this kernel');
  });

  it('leaves unambiguous errors, other operations and ipset errors as they are', () => {
    const exists = new NetlinkRequestError('add virtual server TCP 10.96.0.10:80', 17);
    expect(explainRefusal(addService('rr'), exists)).toBe(exists);
    const ipset = new IpsetRequestError('add 10.96.0.10,tcp:80 to set KUBE-CLUSTER-IP', 4103);
    expect(explainRefusal({ kind: 'addIpsetEntry', set: 'KUBE-CLUSTER-IP', entry: { ip: '10.96.0.10', protocol: 'tcp', port: 80 } }, ipset)).toBe(ipset);
    const plain = new Error('socket closed');
    expect(explainRefusal(addService('rr'), plain)).toBe(plain);
  });
});
