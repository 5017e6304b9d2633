// The node's facts as they change: the Node object's zone, podCIDRs and node IPs, and the addresses.
import { describe, expect, it } from 'vitest';
import { LiveNodeFacts, nodePortAddressesOf, ZONE_LABEL } from '../../../src/agent/node-facts.js';
import type { NodeFacts } from '../../../src/model/settings.js';

const START: NodeFacts = { name: 'node-a', addresses: ['192.0.2.1'], families: ['inet'] };
const nodeObject = (zone: string | undefined, podCIDRs: string[] = ['10.244.1.0/24']) => ({
  labels: zone === undefined ? ({} as Record<string, string>) : { [ZONE_LABEL]: zone },
  podCIDRs,
  nodeIPs: ['192.0.2.1'],
});

describe('LiveNodeFacts', () => {
  it('takes the zone label, podCIDRs and node IPs from the Node object, and tells its listeners once per change', () => {
    const live = new LiveNodeFacts(START);
    let changes = 0;
    live.onChange(() => changes++);
    live.setNodeObject(nodeObject('zone-a'));
    expect(live.current).toEqual({ ...START, zone: 'zone-a', podCIDRs: ['10.244.1.0/24'], nodeIPs: ['192.0.2.1'] });
    expect(changes).toBe(1);
    const before = live.current;
    live.setNodeObject(nodeObject('zone-a'));
    expect(live.current).toBe(before);
    expect(changes).toBe(1);
    live.setNodeObject(nodeObject('zone-b'));
    expect(live.current.zone).toBe('zone-b');
    expect(changes).toBe(2);
  });

  it('makes a new object for every change (the translator translates every Service again), and keeps the families', () => {
    const live = new LiveNodeFacts(START);
    live.setAddresses(['192.0.2.1', '198.51.100.7', '2001:db8::7']);
    expect(live.current).not.toBe(START);
    expect(live.current.addresses).toEqual(['192.0.2.1', '198.51.100.7', '2001:db8::7']);
    expect(live.current.families).toEqual(['inet']);
    const before = live.current;
    live.setAddresses(['192.0.2.1', '198.51.100.7', '2001:db8::7']);
    expect(live.current).toBe(before);
  });

  it('forgets the labels of a deleted Node (kube-proxy OnNodeDelete) but keeps its podCIDRs; an empty zone is none', () => {
    const live = new LiveNodeFacts(START);
    live.setNodeObject(nodeObject('zone-a'));
    live.setNodeObject(undefined);
    expect(live.current.zone).toBeUndefined();
    expect(live.current.podCIDRs).toEqual(['10.244.1.0/24']);
    live.setNodeObject(nodeObject(''));
    expect(live.current.zone).toBeUndefined();
  });
});

describe('--nodeport-addresses primary', () => {
  const primary = { nodePortAddresses: ['primary'] };
  const links = ['192.0.2.1', '198.51.100.7', '2001:db8::1', '2001:db8::2'];

  it("picks the node IPs among the node's addresses, one per family, as kube-proxy's NodePortAddresses", () => {
    expect(nodePortAddressesOf(links, ['198.51.100.7', '2001:db8::2'], primary)).toEqual(['198.51.100.7', '2001:db8::2']);
    expect(nodePortAddressesOf(links, ['203.0.113.9'], primary)).toEqual([]);
    expect(nodePortAddressesOf(links, [], primary)).toEqual([]);
    // Not primary: the addresses as they are (already filtered by CIDR).
    expect(nodePortAddressesOf(links, [], { nodePortAddresses: [] })).toEqual(links);
  });

  it('lets a specific --bind-address stand for the node IP of its family', () => {
    expect(nodePortAddressesOf(links, ['198.51.100.7', '2001:db8::2'], { ...primary, bindAddress: '192.0.2.1' })).toEqual(['192.0.2.1', '2001:db8::2']);
    expect(nodePortAddressesOf(links, ['198.51.100.7'], { ...primary, bindAddress: '0.0.0.0' })).toEqual(['198.51.100.7']);
    expect(nodePortAddressesOf(links, [], { ...primary, bindAddress: '2001:DB8::1' })).toEqual(['2001:db8::1']);
  });

  it('has no NodePort address until the Node object says which is primary, then follows it and the links', () => {
    const live = new LiveNodeFacts({ ...START, addresses: [] }, primary, ['192.0.2.1', '198.51.100.7']);
    expect(live.current.addresses).toEqual([]);
    live.setNodeObject({ labels: {}, podCIDRs: [], nodeIPs: ['198.51.100.7'] });
    expect(live.current.addresses).toEqual(['198.51.100.7']);
    live.setAddresses(['192.0.2.1']);
    expect(live.current.addresses).toEqual([]);
    live.setAddresses(['192.0.2.1', '198.51.100.7']);
    expect(live.current.addresses).toEqual(['198.51.100.7']);
  });
});
