// Links and addresses in a real kernel, with iproute2 as the oracle both ways: what kipvs makes is
// what `ip -j` shows, and what `ip` makes is what kipvs reads. Each namespace is this file's own.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LinkClient } from '../../src/netlink/rtnl/client.js';
import { LinkKindError, LinkNotFoundError, type Link } from '../../src/netlink/rtnl/types.js';
import { IFA_F_NODAD } from '../../src/netlink/rtnl/wire.js';
import type { RequestOutcome } from '../../src/netlink/connection.js';
import { defined } from '../support/defined.js';
import type { TestNetns } from './helpers/netns.js';
import { Teardown } from './helpers/teardown.js';

interface IpLink {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  linkinfo?: { info_kind?: string };
}
interface IpAddress {
  family: string;
  local: string;
  prefixlen: number;
  scope: string;
  nodad?: boolean;
  tentative?: boolean;
}

const ipLinks = (ns: TestNetns): IpLink[] => JSON.parse(ns.run('ip', ['-j', '-d', 'link', 'show'])) as IpLink[];
const ipLink = (ns: TestNetns, name: string): IpLink | undefined => ipLinks(ns).find((link) => link.ifname === name);
const ipAddresses = (ns: TestNetns, name: string): IpAddress[] =>
  defined((JSON.parse(ns.run('ip', ['-j', 'addr', 'show', 'dev', name])) as Array<{ addr_info: IpAddress[] }>)[0], `${name} in ip -j addr show`).addr_info;
const cidrsOf = (addresses: readonly IpAddress[]): string[] => addresses.map((a) => `${a.local}/${a.prefixlen}`).sort();
/** Leaves out the fe80::/64 address the kernel gives every link that is up. */
const globalCidrs = (ns: TestNetns, name: string): string[] => cidrsOf(ipAddresses(ns, name).filter((a) => a.scope !== 'link'));

/** A link as kipvs describes it, from ip's JSON: the oracle for listLinks and getLink. */
const asLink = (link: IpLink): Link => ({
  index: link.ifindex,
  name: link.ifname,
  kind: link.linkinfo?.info_kind ?? null,
  up: link.flags.includes('UP'),
  flags: expect.any(Number) as number,
  mtu: link.mtu,
});

/** `count` IPv4 and `count` IPv6 service IPs, in their canonical spelling. */
function serviceIps(count: number): { ipv4: string[]; ipv6: string[] } {
  const ipv4: string[] = [];
  const ipv6: string[] = [];
  for (let i = 1; i <= count; i++) {
    ipv4.push(`10.96.${i >> 8}.${i & 0xff}/32`);
    ipv6.push(`fd00::${i.toString(16)}/128`);
  }
  return { ipv4, ipv6 };
}

/** Both families interleaved, as a sync that walks Services in order would add them. */
const interleave = (a: readonly string[], b: readonly string[]): string[] =>
  a.flatMap((item, i) => [item, defined(b[i], `item ${String(i)} of the second list`)]);

const failures = (outcomes: readonly RequestOutcome[]): string[] => outcomes.flatMap((outcome) => (outcome.ok ? [] : [outcome.error.message]));

describe('rtnetlink links and addresses, checked with ip', () => {
  let ns: TestNetns;
  let client: LinkClient;
  const teardown = new Teardown();

  beforeAll(() => {
    ns = teardown.createTestNetns('kipvs-rtnl');
    client = LinkClient.open({ netns: ns.path });
    teardown.add(() => {
      client.close();
    });
  });
  afterAll(() => teardown.run());
  beforeEach(() => {
    for (const name of ['kube-ipvs0', 'other0', 'other1']) {
      try {
        ns.run('ip', ['link', 'del', name]);
      } catch {
        // not there
      }
    }
  });

  it('ensureDummy creates kube-ipvs0 as a dummy link left down, as kube-proxy does', async () => {
    const link = await client.ensureDummy();
    const shown = ipLink(ns, 'kube-ipvs0');
    expect(shown?.linkinfo?.info_kind).toBe('dummy');
    expect(shown?.flags).not.toContain('UP');
    expect(link).toEqual(asLink(defined(shown, 'kube-ipvs0 in ip -j link show')));
  });

  it('ensureDummy is idempotent: it keeps the link it made and its up/down state, as found', async () => {
    const first = await client.ensureDummy('kube-ipvs0');
    expect(await client.ensureDummy('kube-ipvs0')).toEqual(first);
    ns.run('ip', ['link', 'set', 'kube-ipvs0', 'up']);
    expect(await client.ensureDummy('kube-ipvs0')).toMatchObject({ index: first.index, up: true });
    ns.run('ip', ['link', 'set', 'kube-ipvs0', 'down']);
    expect(await client.ensureDummy('kube-ipvs0')).toMatchObject({ index: first.index, up: false });
    expect(ipLink(ns, 'kube-ipvs0')).toMatchObject({ ifindex: first.index });
    expect(ipLink(ns, 'kube-ipvs0')?.flags).not.toContain('UP');
    expect(ipLinks(ns).filter((link) => link.ifname === 'kube-ipvs0')).toHaveLength(1);
  });

  it('ensureDummy refuses a kube-ipvs0 that is not a dummy, naming it, and leaves it alone', async () => {
    ns.run('ip', ['link', 'add', 'kube-ipvs0', 'type', 'veth', 'peer', 'name', 'other1']);
    const before = ipLink(ns, 'kube-ipvs0');
    const refusal = client.ensureDummy();
    await expect(refusal).rejects.toBeInstanceOf(LinkKindError);
    await expect(refusal).rejects.toThrow(/^link kube-ipvs0 exists but is a veth link, not a dummy/);
    expect(ipLink(ns, 'kube-ipvs0')).toEqual(before);
    expect(before?.flags).not.toContain('UP');
  });

  it('lists every link as ip does: index, name, kind, up, mtu', async () => {
    ns.run('ip', ['link', 'add', 'other0', 'mtu', '1400', 'type', 'dummy']);
    ns.run('ip', ['link', 'set', 'other0', 'up']);
    ns.run('ip', ['link', 'add', 'kube-ipvs0', 'type', 'veth', 'peer', 'name', 'other1']);
    const shown = ipLinks(ns);
    expect(shown.length).toBeGreaterThanOrEqual(4); // lo, the veth pair, other0, and the tunnels modules make
    const listed = await client.listLinks();
    expect(listed.sort((a, b) => a.index - b.index)).toEqual(shown.map(asLink).sort((a, b) => a.index - b.index));
    expect(await client.getLink('other0')).toEqual(asLink(defined(ipLink(ns, 'other0'), 'other0 in ip -j link show')));
    expect(await client.getLink('other0')).toMatchObject({ kind: 'dummy', up: true, mtu: 1400 });
    expect(await client.getLink('lo')).toMatchObject({ kind: null, index: 1 });
    expect(await client.getLink('absent0')).toBeNull();
  });

  it('reads back the IPv4 and IPv6 addresses ip adds, with prefix lengths, in canonical form', async () => {
    ns.run('ip', ['link', 'add', 'other0', 'up', 'type', 'dummy']);
    ns.run('ip', ['addr', 'add', '192.0.2.5/24', 'dev', 'other0']);
    ns.run('ip', ['addr', 'add', '2001:db8:0:0::5/64', 'dev', 'other0', 'nodad']);
    ns.run('ip', ['addr', 'add', '10.96.0.1/32', 'dev', 'other0']);
    const listed = await client.listAddresses('other0');
    expect(listed.map((a) => a.cidr).sort()).toEqual(cidrsOf(ipAddresses(ns, 'other0')));
    expect(listed.map((a) => a.cidr)).toEqual(expect.arrayContaining(['192.0.2.5/24', '2001:db8::5/64', '10.96.0.1/32']));
    const withoutDad = listed.find((a) => a.cidr === '2001:db8::5/64');
    expect(withoutDad).toMatchObject({ family: 'inet6', flags: expect.any(Number) as number });
    expect(defined(withoutDad, '2001:db8::5/64 read back').flags & IFA_F_NODAD).toBe(IFA_F_NODAD);
    expect(listed.find((a) => a.cidr === '192.0.2.5/24')).toMatchObject({ family: 'inet', label: 'other0', scope: 0 });
    // Only what `keep` returns of each, in the same order (the full read's way).
    expect(await client.listAddresses('other0', (address) => (address.family === 'inet' ? address.cidr : undefined))).toEqual(
      listed.filter((address) => address.family === 'inet').map((address) => address.cidr),
    );
    expect(await client.listAddresses('other0', (address) => address)).toEqual(listed);
  });

  it('adds 1,000 IPv4 and 1,000 IPv6 service IPs in one batch; ip shows them all, IPv6 ones without DAD', async () => {
    await client.ensureDummy();
    const { ipv4, ipv6 } = serviceIps(1000);
    const ips = interleave(ipv4, ipv6);
    const outcomes = await client.addAddresses('kube-ipvs0', ips);
    expect(failures(outcomes)).toEqual([]);
    expect(outcomes).toHaveLength(2000);
    expect(globalCidrs(ns, 'kube-ipvs0')).toEqual([...ips].sort());
    const shownIpv6 = ipAddresses(ns, 'kube-ipvs0').filter((a) => a.family === 'inet6' && a.scope !== 'link');
    expect(shownIpv6).toHaveLength(1000);
    expect(shownIpv6.filter((a) => a.nodad !== true || a.tentative)).toEqual([]);
    const listed = await client.listAddresses('kube-ipvs0');
    expect(listed.map((a) => a.cidr).sort()).toEqual(cidrsOf(ipAddresses(ns, 'kube-ipvs0')));
  });

  it('deleting half of 2,000 service IPs leaves exactly the other half', async () => {
    await client.ensureDummy();
    const { ipv4, ipv6 } = serviceIps(1000);
    expect(failures(await client.addAddresses('kube-ipvs0', interleave(ipv4, ipv6)))).toEqual([]);
    // Every other address of each family, odd ones of one and even ones of the other.
    const deleted = interleave(
      ipv4.filter((_, i) => i % 2 === 0),
      ipv6.filter((_, i) => i % 2 === 1),
    );
    const kept = [...ipv4.filter((_, i) => i % 2 === 1), ...ipv6.filter((_, i) => i % 2 === 0)];
    expect(failures(await client.deleteAddresses('kube-ipvs0', deleted))).toEqual([]);
    expect(globalCidrs(ns, 'kube-ipvs0')).toEqual(kept.sort());
    expect(
      (await client.listAddresses('kube-ipvs0'))
        .filter((a) => a.scope === 0)
        .map((a) => a.cidr)
        .sort(),
    ).toEqual(kept.sort());
  });

  it('a bad address in a batch fails alone, with an error naming the address and the link', async () => {
    await client.ensureDummy();
    ns.run('ip', ['addr', 'add', '10.96.5.5/32', 'dev', 'kube-ipvs0']);
    const batch = ['10.96.5.1/32', 'not-an-address', 'fd00::5:1', '10.96.5.5/32', '10.96.5.2/33', 'ff02::1/128', '10.96.5.3'];
    const outcomes = await client.addAddresses('kube-ipvs0', batch);
    expect(outcomes.map((outcome) => outcome.ok)).toEqual([true, false, true, false, false, false, true]);
    const messages = failures(outcomes);
    expect(messages[0]).toMatch(/^add address not-an-address to kube-ipvs0: EINVAL \(.*not an IP address/);
    expect(messages[1]).toBe('add address 10.96.5.5/32 to kube-ipvs0: EEXIST');
    expect(messages[2]).toMatch(/^add address 10\.96\.5\.2\/33 to kube-ipvs0: EINVAL \(.*prefix length/);
    expect(messages[3]).toMatch(/^add address ff02::1\/128 to kube-ipvs0: E[A-Z]+/); // the kernel refuses multicast
    expect(globalCidrs(ns, 'kube-ipvs0')).toEqual(['10.96.5.1/32', '10.96.5.3/32', '10.96.5.5/32', 'fd00::5:1/128']);
  });

  it('adds and deletes idempotently when asked: EEXIST and EADDRNOTAVAIL then count as done', async () => {
    await client.ensureDummy();
    const ips = ['10.96.0.1/32', 'fd00::1/128'];
    expect(failures(await client.addAddresses('kube-ipvs0', ips))).toEqual([]);
    expect(failures(await client.addAddresses('kube-ipvs0', ips))).toEqual([
      'add address 10.96.0.1/32 to kube-ipvs0: EEXIST',
      'add address fd00::1/128 to kube-ipvs0: EEXIST',
    ]);
    expect(failures(await client.addAddresses('kube-ipvs0', ips, { ignoreExisting: true }))).toEqual([]);
    await client.addAddress('kube-ipvs0', '10.96.0.1', { ignoreExisting: true });
    expect(globalCidrs(ns, 'kube-ipvs0')).toEqual(['10.96.0.1/32', 'fd00::1/128']);

    expect(failures(await client.deleteAddresses('kube-ipvs0', ips))).toEqual([]);
    expect(failures(await client.deleteAddresses('kube-ipvs0', ips))).toEqual([
      'delete address 10.96.0.1/32 from kube-ipvs0: EADDRNOTAVAIL',
      'delete address fd00::1/128 from kube-ipvs0: EADDRNOTAVAIL',
    ]);
    expect(failures(await client.deleteAddresses('kube-ipvs0', ips, { ignoreMissing: true }))).toEqual([]);
    await expect(client.deleteAddress('kube-ipvs0', '10.96.0.1/32')).rejects.toThrow('delete address 10.96.0.1/32 from kube-ipvs0: EADDRNOTAVAIL');
    expect(globalCidrs(ns, 'kube-ipvs0')).toEqual([]);
  });

  it('a missing link gives an error that names it', async () => {
    for (const attempt of [
      client.addAddresses('kube-ipvs0', ['10.96.0.1/32']),
      client.deleteAddresses('kube-ipvs0', ['10.96.0.1/32'], { ignoreMissing: true }),
      client.listAddresses('kube-ipvs0'),
      client.deleteLink('kube-ipvs0'),
    ]) {
      await expect(attempt).rejects.toBeInstanceOf(LinkNotFoundError);
      await expect(attempt).rejects.toThrow(/^link kube-ipvs0 does not exist$/);
    }
    await client.deleteLink('kube-ipvs0', { ignoreMissing: true });
  });

  it('deletes a link by name', async () => {
    await client.ensureDummy();
    await client.deleteLink('kube-ipvs0');
    expect(ipLink(ns, 'kube-ipvs0')).toBeUndefined();
    expect(await client.getLink('kube-ipvs0')).toBeNull();
  });

  it('leaves links and addresses made by someone else as they were', async () => {
    ns.run('ip', ['link', 'add', 'other0', 'up', 'type', 'dummy']);
    ns.run('ip', ['link', 'add', 'other1', 'type', 'dummy']);
    for (const cidr of ['10.96.0.1/32', '192.0.2.1/24']) ns.run('ip', ['addr', 'add', cidr, 'dev', 'other0']);
    ns.run('ip', ['addr', 'add', 'fd00::1/128', 'dev', 'other0', 'nodad']);
    const snapshot = (): unknown =>
      ipLinks(ns)
        .filter((link) => link.ifname !== 'kube-ipvs0')
        .map((link) => ({ ...link, addresses: cidrsOf(ipAddresses(ns, link.ifname)) }));
    const before = snapshot();

    await client.ensureDummy();
    expect(failures(await client.addAddresses('kube-ipvs0', ['10.96.0.1/32', 'fd00::1/128', '10.96.0.2/32']))).toEqual([]);
    const deletions = ['10.96.0.1/32', 'fd00::1/128', '192.0.2.1/24'];
    expect(failures(await client.deleteAddresses('kube-ipvs0', deletions, { ignoreMissing: true }))).toEqual([]);
    await client.deleteLink('kube-ipvs0');

    expect(snapshot()).toEqual(before);
    expect(cidrsOf(ipAddresses(ns, 'other0').filter((a) => a.scope !== 'link'))).toEqual(['10.96.0.1/32', '192.0.2.1/24', 'fd00::1/128']);
  });
});

describe('the netns option', () => {
  let a: TestNetns;
  let b: TestNetns;
  const teardown = new Teardown();

  beforeAll(() => {
    a = teardown.createTestNetns('kipvs-rtnl-a');
    b = teardown.createTestNetns('kipvs-rtnl-b');
  });
  afterAll(() => teardown.run());

  it('a dummy created in namespace A is not seen in namespace B, nor in our own', async () => {
    const name = `iso-${randomBytes(3).toString('hex')}`;
    const inA = LinkClient.open({ netns: a.path });
    const inB = LinkClient.open({ netns: b.path });
    const here = LinkClient.open();
    try {
      const created = await inA.ensureDummy(name);
      expect(ipLink(a, name)).toMatchObject({ ifindex: created.index, linkinfo: { info_kind: 'dummy' } });
      expect(ipLink(b, name)).toBeUndefined();
      expect(await inB.getLink(name)).toBeNull();
      expect((await inB.listLinks()).map((link) => link.name)).not.toContain(name);
      expect(await here.getLink(name)).toBeNull();
    } finally {
      inA.close();
      inB.close();
      here.close();
    }
  });
});
