// The kernel mirror on its own: what it holds after plans and what it refuses. The sandbox's
// test/kernel/mirror-contract.test.ts holds the same behaviour to the real kernel.
import { describe, expect, it } from 'vitest';
import { KernelMirror } from '../../../src/kernel/mirror.js';
import type { IpvsServiceKey } from '../../../src/netlink/ipvs/types.js';
import type { FreshObservedState, KernelOperation, Plan } from '../../../src/reconcile/state.js';
import { realServer } from '../../support/ipvs-objects.js';

const web: IpvsServiceKey = { family: 'inet', protocol: 'TCP', address: '10.96.0.1', port: 80 };
const service = { key: web, scheduler: 'rr', flags: 0, timeout: 0, netmask: 32 };
const empty = (): FreshObservedState => ({ dummyInterfaceExists: false, virtualServers: new Map(), boundAddresses: new Set(), ipsets: new Map() });
const plan = (...operations: KernelOperation[]): Plan => ({ operations, draining: new Map() });

describe('KernelMirror', () => {
  it('refuses what the kernel refuses, with its errno, and applies the rest in order', () => {
    const mirror = KernelMirror.adopt(empty(), 'kube-ipvs0');
    const failures = mirror.apply(
      plan(
        { kind: 'ipvs', operation: { op: 'addDestination', service: web, destination: realServer('10.244.0.1') } },
        { kind: 'ipvs', operation: { op: 'addService', service: { ...service, scheduler: 'nosuch' } } },
        { kind: 'ipvs', operation: { op: 'addService', service } },
        { kind: 'ipvs', operation: { op: 'addService', service } },
        { kind: 'ipvs', operation: { op: 'addDestination', service: web, destination: realServer('10.244.0.1', { lowerThreshold: 10 }) } },
        { kind: 'ipvs', operation: { op: 'addDestination', service: web, destination: realServer('fd00::1', { family: 'inet6' }) } },
        { kind: 'ipvs', operation: { op: 'deleteDestination', service: web, destination: { address: '10.244.0.9', port: 8080 } } },
        { kind: 'addIpsetEntry', set: 'KUBE-CLUSTER-IP', entry: { ip: '10.96.0.1', protocol: 'tcp', port: 80 } },
        { kind: 'createIpset', name: 'KUBE-CLUSTER-IP', spec: { type: 'hash:ip,port', family: 'inet', comment: true } },
        { kind: 'createIpset', name: 'KUBE-CLUSTER-IP', spec: { type: 'hash:ip', family: 'inet', comment: true } },
        { kind: 'bindAddress', address: '10.96.0.1' },
        { kind: 'unbindAddress', address: '10.96.0.1' },
      ),
    );
    expect(failures.map((f) => f.error.message)).toEqual([
      'add real server 10.244.0.1:8080 to TCP 10.96.0.1:80: ESRCH',
      'add virtual server TCP 10.96.0.1:80: ENOENT',
      'add virtual server TCP 10.96.0.1:80: EEXIST',
      'add real server 10.244.0.1:8080 to TCP 10.96.0.1:80: ERANGE',
      'add real server [fd00::1]:8080 to TCP 10.96.0.1:80: EINVAL',
      'delete real server 10.244.0.9:8080 from TCP 10.96.0.1:80: ENOENT',
      'add 10.96.0.1,tcp:80 to set KUBE-CLUSTER-IP: ENOENT',
      'create ipset KUBE-CLUSTER-IP (hash:ip): EEXIST',
      'bind 10.96.0.1 to kube-ipvs0: ENODEV',
      'unbind 10.96.0.1 from kube-ipvs0: ENODEV',
    ]);
    expect([...mirror.view().virtualServers.keys()]).toEqual(['TCP 10.96.0.1:80']);
    expect(mirror.view().ipsets.get('KUBE-CLUSTER-IP')?.spec.type).toBe('hash:ip,port');
  });

  it('accepts what the adapter sends as idempotent: a bound address again, an absent one unbound, entries added twice or deleted when absent', () => {
    const mirror = KernelMirror.adopt(empty(), 'kube-ipvs0');
    const entry = { ip: '10.96.0.1', protocol: 'tcp', port: 80 } as const;
    const failures = mirror.apply(
      plan(
        { kind: 'ensureDummyInterface', name: 'kube-ipvs0' },
        { kind: 'bindAddress', address: '10.96.0.1' },
        { kind: 'bindAddress', address: '10.96.0.1' },
        { kind: 'unbindAddress', address: '10.96.0.2' },
        { kind: 'createIpset', name: 'KUBE-CLUSTER-IP', spec: { type: 'hash:ip,port', family: 'inet', comment: true } },
        { kind: 'createIpset', name: 'KUBE-CLUSTER-IP', spec: { type: 'hash:ip,port', family: 'inet', comment: true, hashSize: 4096 } },
        { kind: 'addIpsetEntry', set: 'KUBE-CLUSTER-IP', entry: { ...entry, comment: 'old' } },
        { kind: 'addIpsetEntry', set: 'KUBE-CLUSTER-IP', entry: { ...entry, comment: 'new' } },
        { kind: 'deleteIpsetEntry', set: 'KUBE-CLUSTER-IP', entry: { ip: '10.96.0.2', protocol: 'tcp', port: 80 } },
        { kind: 'deleteUdpFlows', virtualServer: web, endpoint: { address: '10.244.0.1', port: 8080 } },
      ),
    );
    expect(failures).toEqual([]);
    expect([...mirror.view().boundAddresses]).toEqual(['10.96.0.1']);
    expect([...(mirror.view().ipsets.get('KUBE-CLUSTER-IP')?.entries.values() ?? [])]).toEqual([{ ...entry, comment: 'new' }]);
  });

  it("holds the desired state's real-server objects as they are, and keeps the kernel's counters on an edit", () => {
    const observed = empty();
    const counted = { ...realServer('10.244.0.1'), activeConns: 4, inactiveConns: 1, persistConns: 0 };
    observed.virtualServers.set('TCP 10.96.0.1:80', { service, realServers: new Map([['10.244.0.1:8080', counted]]) });
    const mirror = KernelMirror.adopt(observed, 'kube-ipvs0');
    const added = realServer('10.244.0.2');
    const edited = realServer('10.244.0.1', { weight: 0 });
    const tunnelled = realServer('10.244.0.3', { forwarding: 'tunnel' });
    expect(
      mirror.apply(
        plan(
          { kind: 'ipvs', operation: { op: 'addDestination', service: web, destination: added } },
          { kind: 'ipvs', operation: { op: 'editDestination', service: web, destination: edited } },
          { kind: 'ipvs', operation: { op: 'addDestination', service: web, destination: tunnelled } },
        ),
      ),
    ).toEqual([]);
    const held = mirror.view().virtualServers.get('TCP 10.96.0.1:80')?.realServers;
    expect(held?.get('10.244.0.2:8080')).toBe(added);
    expect(held?.get('10.244.0.1:8080')).toEqual({ ...edited, activeConns: 4, inactiveConns: 1, persistConns: 0 });
    // As the kernel reads a tunnelled real server back: IPIP, port and flags 0.
    expect(held?.get('10.244.0.3:8080')).toEqual({ ...tunnelled, tunnelType: 'ipip', tunnelPort: 0, tunnelFlags: 0 });
  });

  it('keeps a kube-proxy set of a type kipvs does not decode until a plan replaces it, refusing what the kernel refuses of it', () => {
    const mirror = KernelMirror.adopt({ ...empty(), undecodedIpsets: new Map([['KUBE-CLUSTER-IP', 'hash:mac']]) }, 'kube-ipvs0');
    expect(mirror.view().undecodedIpsets).toEqual(new Map([['KUBE-CLUSTER-IP', 'hash:mac']]));
    expect(mirror.copy().undecodedIpsets).toEqual(new Map([['KUBE-CLUSTER-IP', 'hash:mac']]));
    const spec = { type: 'hash:ip,port', family: 'inet', comment: true } as const;
    const entry = { ip: '10.96.0.1', protocol: 'tcp', port: 80 } as const;
    const refused = mirror.apply(plan({ kind: 'createIpset', name: 'KUBE-CLUSTER-IP', spec }, { kind: 'addIpsetEntry', set: 'KUBE-CLUSTER-IP', entry }));
    // As the sandbox kernel answered the agent that planned a plain create (agent-faults.test.ts).
    expect(refused.map((f) => f.error.message)).toEqual([
      'create ipset KUBE-CLUSTER-IP (hash:ip,port): EEXIST',
      'add 10.96.0.1,tcp:80 to set KUBE-CLUSTER-IP: IPSET_ERR_PROTOCOL',
    ]);
    expect(
      mirror.apply(
        plan({ kind: 'createIpset', name: 'KUBE-CLUSTER-IP', spec, replacing: 'hash:mac' }, { kind: 'addIpsetEntry', set: 'KUBE-CLUSTER-IP', entry }),
      ),
    ).toEqual([]);
    expect(mirror.view().undecodedIpsets).toBeUndefined();
    expect(mirror.copy().undecodedIpsets).toBeUndefined();
    expect([...(mirror.view().ipsets.get('KUBE-CLUSTER-IP')?.entries.values() ?? [])]).toEqual([entry]);
  });

  it("holds the desired state's map where it matches (counters aside), and never changes that map", () => {
    const observed = empty();
    const counted = { ...realServer('10.244.0.1'), activeConns: 4, inactiveConns: 1, persistConns: 0 };
    observed.virtualServers.set('TCP 10.96.0.1:80', { service, realServers: new Map([['10.244.0.1:8080', counted]]) });
    const mirror = KernelMirror.adopt(observed, 'kube-ipvs0');
    const wanted = new Map([['10.244.0.1:8080', realServer('10.244.0.1')]]);
    const heavier = new Map([['10.244.0.1:8080', realServer('10.244.0.1', { weight: 2 })]]);
    // Another weight is another real server to the diff: not shared.
    mirror.share(new Map([['TCP 10.96.0.1:80', { realServers: heavier }]]), ['TCP 10.96.0.1:80']);
    expect(mirror.view().virtualServers.get('TCP 10.96.0.1:80')?.realServers).not.toBe(heavier);
    mirror.share(new Map([['TCP 10.96.0.1:80', { realServers: wanted }]]), ['TCP 10.96.0.1:80', 'TCP 10.96.0.2:80']);
    expect(mirror.view().virtualServers.get('TCP 10.96.0.1:80')?.realServers).toBe(wanted);
    // A plan changes the mirror's own copy; the desired map stays as it was.
    expect(
      mirror.apply(
        plan(
          { kind: 'ipvs', operation: { op: 'addDestination', service: web, destination: realServer('10.244.0.2') } },
          { kind: 'ipvs', operation: { op: 'deleteDestination', service: web, destination: realServer('10.244.0.1') } },
        ),
      ),
    ).toEqual([]);
    expect([...wanted.keys()]).toEqual(['10.244.0.1:8080']);
    expect([...(mirror.view().virtualServers.get('TCP 10.96.0.1:80')?.realServers.keys() ?? [])]).toEqual(['10.244.0.2:8080']);
    // Deleting what is not there is refused, shared or not, and changes nothing.
    const now = new Map([['10.244.0.2:8080', realServer('10.244.0.2')]]);
    mirror.share(new Map([['TCP 10.96.0.1:80', { realServers: now }]]), ['TCP 10.96.0.1:80']);
    const refused = mirror.apply(plan({ kind: 'ipvs', operation: { op: 'deleteDestination', service: web, destination: realServer('10.244.0.9') } }));
    expect(refused.map((f) => f.error.message)).toEqual(['delete real server 10.244.0.9:8080 from TCP 10.96.0.1:80: ENOENT']);
    expect(mirror.view().virtualServers.get('TCP 10.96.0.1:80')?.realServers).toBe(now);
    expect(now.size).toBe(1);
  });

  it('hands out copies that later plans do not change', () => {
    const mirror = KernelMirror.adopt(empty(), 'kube-ipvs0');
    mirror.apply(plan({ kind: 'ipvs', operation: { op: 'addService', service } }));
    const copy = mirror.copy();
    mirror.apply(plan({ kind: 'ipvs', operation: { op: 'addDestination', service: web, destination: realServer('10.244.0.1') } }));
    expect(copy.virtualServers.get('TCP 10.96.0.1:80')?.realServers.size).toBe(0);
    expect(mirror.view().virtualServers.get('TCP 10.96.0.1:80')?.realServers.size).toBe(1);
  });
});
