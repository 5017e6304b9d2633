// ipset against a real kernel, with the `ipset` tool as the oracle in both directions: what kipvs
// creates and adds, `ipset list` and `ipset save` show exactly; what the tool creates and adds,
// kipvs reads back identically.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IpsetClient } from '../../src/netlink/ipset/client.js';
import { formatEntry, type IpsetEntry, type IpsetSetHeader, type IpsetSetSpec } from '../../src/netlink/ipset/types.js';
import { defined } from '../support/defined.js';
import type { TestNetns } from './helpers/netns.js';
import { Teardown } from './helpers/teardown.js';

let ns: TestNetns;
let client: IpsetClient;
const teardown = new Teardown();

beforeAll(async () => {
  ns = teardown.createTestNetns('kipvs-ipset');
  client = await IpsetClient.open({ netns: ns.path });
  teardown.add(() => {
    client.close();
  });
});

afterAll(() => teardown.run());

const ipset = (...args: string[]): string => ns.run('ipset', args);
const sorted = (lines: readonly string[]): string[] => [...lines].sort();
const lines = (text: string): string[] => text.split('\n').filter((line) => line !== '');

/** `ipset list NAME` split into its header fields and its member lines. */
function toolListing(name: string): { fields: Map<string, string>; members: string[] } {
  const output = lines(ipset('list', name));
  const membersAt = output.indexOf('Members:');
  const fields = new Map(output.slice(0, membersAt).map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(': ') + 2)]));
  return { fields, members: output.slice(membersAt + 1) };
}

/** The `create` line `ipset save` prints for a set made from `spec`, with what only the kernel knows. */
function expectedCreateLine(name: string, spec: IpsetSetSpec, header: IpsetSetHeader): string {
  const comment = spec.comment ? ' comment' : '';
  if (spec.type === 'bitmap:port') return `create ${name} bitmap:port range ${spec.range.from}-${spec.range.to}${comment}`;
  if (header.type === 'bitmap:port') throw new Error('header of another type');
  const bucket =
    header.bucketSize === undefined
      ? ''
      : ` bucketsize ${header.bucketSize} initval 0x${defined(header.initval, 'the initval of a set with a bucket size').toString(16).padStart(8, '0')}`;
  return `create ${name} ${spec.type} family ${spec.family} hashsize ${spec.hashSize ?? 1024} maxelem ${spec.maxElements ?? 65536}${comment}${bucket}`;
}

/** The create arguments of `ipset create` for a spec. */
function toolCreateArgs(spec: IpsetSetSpec): string[] {
  const comment = spec.comment ? ['comment'] : [];
  if (spec.type === 'bitmap:port') return ['range', `${spec.range.from}-${spec.range.to}`, ...comment];
  const sizes = [...(spec.hashSize ? ['hashsize', String(spec.hashSize)] : []), ...(spec.maxElements ? ['maxelem', String(spec.maxElements)] : [])];
  return ['family', spec.family, ...sizes, ...comment];
}

/** A set header as `ipset list` shows it, in kipvs's terms. */
function headerFromTool(name: string, fields: Map<string, string>): IpsetSetHeader {
  const tokens = (fields.get('Header') ?? '').split(' ');
  const value = (key: string): string | undefined => {
    const at = tokens.indexOf(key);
    return at < 0 ? undefined : tokens[at + 1];
  };
  const facts = {
    name,
    revision: Number(fields.get('Revision')),
    references: Number(fields.get('References')),
    entryCount: Number(fields.get('Number of entries')),
    memorySize: Number(fields.get('Size in memory')),
    comment: tokens.includes('comment'),
  };
  const type = fields.get('Type');
  if (type === 'bitmap:port') {
    const [from, to] = defined(value('range'), 'the range of a bitmap:port set').split('-').map(Number) as [number, number];
    return { ...facts, type, range: { from, to } };
  }
  const bucketSize = value('bucketsize');
  const initval = value('initval');
  return {
    ...facts,
    type: type as Exclude<IpsetSetHeader['type'], 'bitmap:port'>,
    family: value('family') as 'inet' | 'inet6',
    hashSize: Number(value('hashsize')),
    maxElements: Number(value('maxelem')),
    ...(bucketSize === undefined ? {} : { bucketSize: Number(bucketSize) }),
    ...(initval === undefined ? {} : { initval: Number(initval) }),
  };
}

interface Case {
  readonly label: string;
  readonly spec: IpsetSetSpec;
  readonly entries: readonly IpsetEntry[];
}

const cases: readonly Case[] = [
  {
    label: 'hash:ip inet',
    spec: { type: 'hash:ip', family: 'inet', comment: true },
    entries: [{ ip: '10.0.0.1', comment: 'default/kubernetes:https' }, { ip: '10.0.0.2' }, { ip: '192.168.255.254', comment: 'x' }],
  },
  {
    label: 'hash:ip inet6',
    spec: { type: 'hash:ip', family: 'inet6', comment: true, hashSize: 64, maxElements: 1000 },
    entries: [{ ip: '2001:db8::1', comment: 'v6 svc' }, { ip: 'fd00::a:0:0:b' }, { ip: '::ffff:10.0.0.1' }],
  },
  {
    label: 'hash:ip,port inet',
    spec: { type: 'hash:ip,port', family: 'inet', comment: true },
    entries: [
      { ip: '10.96.0.1', protocol: 'tcp', port: 443, comment: 'default/kubernetes:https' },
      { ip: '10.96.0.10', protocol: 'udp', port: 53 },
      { ip: '10.96.0.10', protocol: 'sctp', port: 9999, comment: 'kube-system/dns:sctp' },
    ],
  },
  {
    label: 'hash:ip,port inet6',
    spec: { type: 'hash:ip,port', family: 'inet6', comment: true },
    entries: [
      { ip: 'fd00:10:96::1', protocol: 'tcp', port: 443, comment: 'a' },
      { ip: 'fd00:10:96::a', protocol: 'udp', port: 0 },
    ],
  },
  {
    label: 'hash:ip,port,ip inet',
    spec: { type: 'hash:ip,port,ip', family: 'inet', comment: true },
    entries: [
      { ip: '10.244.1.5', protocol: 'tcp', port: 8080, ip2: '10.244.1.5', comment: 'hairpin' },
      { ip: '10.244.1.6', protocol: 'udp', port: 53, ip2: '10.244.1.6' },
    ],
  },
  {
    label: 'hash:ip,port,ip inet6',
    spec: { type: 'hash:ip,port,ip', family: 'inet6', comment: true },
    entries: [{ ip: 'fd00::5', protocol: 'sctp', port: 65535, ip2: 'fd00::5', comment: 'hairpin v6' }],
  },
  {
    label: 'hash:ip,port,net inet',
    spec: { type: 'hash:ip,port,net', family: 'inet', comment: true, maxElements: 4096 },
    entries: [
      { ip: '192.0.2.10', protocol: 'tcp', port: 80, net: { address: '203.0.113.0', prefix: 24 }, comment: 'lb source range' },
      { ip: '192.0.2.10', protocol: 'tcp', port: 80, net: { address: '198.51.100.7', prefix: 32 } },
    ],
  },
  {
    label: 'hash:ip,port,net inet6',
    spec: { type: 'hash:ip,port,net', family: 'inet6', comment: true },
    entries: [{ ip: '2001:db8::10', protocol: 'udp', port: 5353, net: { address: '2001:db8:1::', prefix: 48 }, comment: 'v6 range' }],
  },
  {
    label: 'hash:net inet',
    spec: { type: 'hash:net', family: 'inet', comment: true },
    entries: [{ net: { address: '10.0.0.0', prefix: 8 }, comment: 'cluster' }, { net: { address: '172.16.5.4', prefix: 32 } }],
  },
  {
    label: 'hash:net inet6',
    spec: { type: 'hash:net', family: 'inet6', comment: true },
    entries: [{ net: { address: '2001:db8::', prefix: 32 } }, { net: { address: 'fd00::1', prefix: 128 }, comment: 'host' }],
  },
  {
    label: 'bitmap:port',
    spec: { type: 'bitmap:port', range: { from: 30000, to: 32767 }, comment: true },
    entries: [{ port: 30000, comment: 'nodeport' }, { port: 32767 }, { port: 31000 }],
  },
];

let setCounter = 0;
const freshName = (prefix: string): string => `${prefix}-${++setCounter}`;

describe('ipset protocol', () => {
  it('agrees on protocol 7 with this kernel', () => {
    expect(client.protocol).toBe(7);
  });

  it('speaks protocol 6 when offered no newer, and the kernel and the tool follow', async () => {
    const old = await IpsetClient.open({ netns: ns.path, maxProtocol: 6 });
    try {
      expect(old.protocol).toBe(6);
      const name = freshName('KIPVS-P6');
      await old.create(name, { type: 'hash:ip,port', family: 'inet', comment: true });
      const outcomes = await old.add(name, [{ ip: '10.0.0.1', protocol: 'tcp', port: 80, comment: 'p6' }]);
      expect(outcomes).toEqual([{ ok: true }]);
      expect(toolListing(name).members).toEqual(['10.0.0.1,tcp:80 comment "p6"']);
      expect((await old.listSet(name))?.entries).toEqual([{ ip: '10.0.0.1', protocol: 'tcp', port: 80, comment: 'p6' }]);
      await old.destroy(name);
    } finally {
      old.close();
    }
  });
});

describe.each(cases)('$label', ({ spec, entries }) => {
  const expectedMembers = sorted(entries.map(formatEntry));

  it('what kipvs creates and adds, ipset list and ipset save show exactly', async () => {
    const name = freshName('KIPVS');
    await client.create(name, spec);
    expect(await client.add(name, entries)).toEqual(entries.map(() => ({ ok: true })));
    const read = await client.listSet(name);
    expect(read).not.toBeNull();
    const { header } = defined(read, `the set ${name} read back`);

    const saved = lines(ipset('save', name));
    expect(saved[0]).toBe(expectedCreateLine(name, spec, header));
    expect(sorted(saved.slice(1))).toEqual(sorted(entries.map((entry) => `add ${name} ${formatEntry(entry)}`)));

    const listed = toolListing(name);
    expect(listed.members.sort()).toEqual(expectedMembers);
    expect(listed.fields.get('Type')).toBe(spec.type);
    expect(listed.fields.get('Revision')).toBe(String(header.revision));
    expect(listed.fields.get('Number of entries')).toBe(String(entries.length));
    expect(listed.fields.get('References')).toBe('0');
    expect(listed.fields.get('Size in memory')).toBe(String(header.memorySize));
  });

  it('what the ipset tool creates and adds, kipvs reads back identically', async () => {
    const name = freshName('TOOL');
    const script = [`create ${name} ${spec.type} ${toolCreateArgs(spec).join(' ')}`, ...entries.map((entry) => `add ${name} ${formatEntry(entry)}`)];
    ns.run('ipset', ['restore'], `${script.join('\n')}\n`);

    const listedByKipvs = await client.listSet(name);
    expect(listedByKipvs).not.toBeNull();
    const read = defined(listedByKipvs, `the set ${name} read back`);
    const listed = toolListing(name);
    expect(read.header).toEqual(headerFromTool(name, listed.fields));
    expect(sorted(read.entries.map(formatEntry))).toEqual(sorted(listed.members));
    const byText = (list: readonly IpsetEntry[]): IpsetEntry[] => [...list].sort((a, b) => formatEntry(a).localeCompare(formatEntry(b)));
    expect(byText(read.entries)).toEqual(byText(entries));
  });
});

const ipPortEntry = (index: number, protocol: 'tcp' | 'udp' = 'tcp'): IpsetEntry => ({
  ip: `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}`,
  protocol,
  port: 1024 + (index % 50000),
});

describe('batches', () => {
  it('adds 10,000 entries in one call, one outcome each, and reads them back across several dump messages', async () => {
    const name = freshName('KIPVS-BIG');
    await client.create(name, { type: 'hash:ip,port', family: 'inet', maxElements: 131072 });
    const entries = Array.from({ length: 10_000 }, (_, index) => ipPortEntry(index, index % 2 ? 'udp' : 'tcp'));
    const sentBefore = client.transportStats.datagramsSent;
    const outcomes = await client.add(name, entries);
    expect(outcomes).toHaveLength(entries.length);
    expect(outcomes.filter((outcome) => !outcome.ok)).toEqual([]);
    // Batched: many entries per datagram, not one sendmsg per entry.
    expect(client.transportStats.datagramsSent - sentBefore).toBeLessThan(entries.length / 10);

    expect(lines(ipset('list', '-t', name))).toContain('Number of entries: 10000');
    const added = lines(ipset('save', name)).slice(1);
    expect(added).toHaveLength(10_000);
    expect(new Set(added)).toEqual(new Set(entries.map((entry) => `add ${name} ${formatEntry(entry)}`)));

    const receivedBefore = client.transportStats.datagramsReceived;
    const read = defined(await client.listSet(name), `the set ${name} read back`);
    expect(client.transportStats.datagramsReceived - receivedBefore).toBeGreaterThan(1);
    expect(read.header.entryCount).toBe(10_000);
    expect(new Set(read.entries.map(formatEntry))).toEqual(new Set(entries.map(formatEntry)));
    expect(read.entries).toHaveLength(10_000);
  });

  it('reports a failing entry in the middle of a batch with its own error, and the others land', async () => {
    const name = freshName('KIPVS-MID');
    await client.create(name, { type: 'hash:ip,port', family: 'inet' });
    const entries: IpsetEntry[] = Array.from({ length: 101 }, (_, index) => ipPortEntry(index));
    entries[50] = { ip: '10.0.0.50', protocol: 'tcp', port: 80, comment: 'no comments here' };
    entries[70] = { ip: 'fd00::70', protocol: 'tcp', port: 80 };
    entries[90] = { ip: '10.0.0.300', protocol: 'tcp', port: 80 };
    const outcomes = await client.add(name, entries);

    const failures = outcomes.flatMap((outcome, index) => (outcome.ok ? [] : [[index, outcome.error.message] as const]));
    expect(failures).toEqual([
      [50, `add 10.0.0.50,tcp:80 comment "no comments here" to set ${name}: IPSET_ERR_COMMENT`],
      [70, `add fd00::70,tcp:80 to set ${name}: IPSET_ERR_PROTOCOL`],
      [90, expect.stringMatching(new RegExp(`^add 10\\.0\\.0\\.300,tcp:80 to set ${name}: EINVAL \\(.*not an IP address`))],
    ]);
    const landed = entries.filter((_, index) => ![50, 70, 90].includes(index));
    expect(sorted(toolListing(name).members)).toEqual(sorted(landed.map(formatEntry)));
  });
});

describe('entries', () => {
  it('adds an existing entry and deletes a missing one without error, and refuses both when strict', async () => {
    const name = freshName('KIPVS-IDEM');
    await client.create(name, { type: 'hash:ip,port', family: 'inet' });
    const entry: IpsetEntry = { ip: '10.0.0.1', protocol: 'tcp', port: 80 };
    expect(await client.add(name, [entry, entry])).toEqual([{ ok: true }, { ok: true }]);

    const [strictAdd] = await client.add(name, [entry], { strict: true });
    expect(strictAdd?.ok).toBe(false);
    expect(!strictAdd?.ok && strictAdd?.error.message).toBe(`add 10.0.0.1,tcp:80 to set ${name}: IPSET_ERR_EXIST`);
    expect(!strictAdd?.ok && strictAdd?.error.errnoName).toBe('IPSET_ERR_EXIST');

    expect(await client.del(name, [entry, entry])).toEqual([{ ok: true }, { ok: true }]);
    expect(toolListing(name).members).toEqual([]);
    const [strictDel] = await client.del(name, [entry], { strict: true });
    expect(!strictDel?.ok && strictDel?.error.message).toBe(`del 10.0.0.1,tcp:80 from set ${name}: IPSET_ERR_EXIST`);
  });

  it('replaces the comment of an entry added again, as ipset -exist add does', async () => {
    const name = freshName('KIPVS-COMMENT');
    await client.create(name, { type: 'hash:ip', family: 'inet', comment: true });
    await client.add(name, [{ ip: '10.0.0.1', comment: 'old' }]);
    await client.add(name, [{ ip: '10.0.0.1', comment: 'new' }]);
    expect(toolListing(name).members).toEqual(['10.0.0.1 comment "new"']);
  });

  it('tests membership as ipset test does', async () => {
    const name = freshName('KIPVS-TEST');
    await client.create(name, { type: 'hash:net', family: 'inet' });
    await client.add(name, [{ net: { address: '10.0.0.0', prefix: 8 } }]);
    expect(await client.test(name, { net: { address: '10.1.2.3', prefix: 32 } })).toBe(true);
    expect(await client.test(name, { net: { address: '11.0.0.0', prefix: 8 } })).toBe(false);
    expect(() => ipset('test', name, '10.1.2.3')).not.toThrow();
    expect(() => ipset('test', name, '11.0.0.0/8')).toThrow(/is NOT in set/);
  });

  it('names type-specific errors by the kind of set: IPSET_ERR_HASH_FULL, IPSET_ERR_BITMAP_RANGE', async () => {
    const hash = freshName('KIPVS-FULL');
    await client.create(hash, { type: 'hash:ip', family: 'inet', maxElements: 2 });
    const outcomes = await client.add(hash, [{ ip: '10.0.0.1' }, { ip: '10.0.0.2' }, { ip: '10.0.0.3' }]);
    expect(outcomes.map((outcome) => (outcome.ok ? 'ok' : outcome.error.errnoName))).toEqual(['ok', 'ok', 'IPSET_ERR_HASH_FULL']);

    const bitmap = freshName('KIPVS-RANGE');
    await client.create(bitmap, { type: 'bitmap:port', range: { from: 1000, to: 2000 } });
    const [outside] = await client.add(bitmap, [{ port: 80 }]);
    expect(!outside?.ok && outside?.error.message).toBe(`add 80 to set ${bitmap}: IPSET_ERR_BITMAP_RANGE`);
  });

  it('reports a missing set per entry as ENOENT, and lists it as null', async () => {
    const outcomes = await client.add('KIPVS-NO-SUCH-SET', [{ ip: '10.0.0.1' }, { ip: '10.0.0.2' }]);
    expect(outcomes.map((outcome) => (outcome.ok ? 'ok' : outcome.error.message))).toEqual([
      'add 10.0.0.1 to set KIPVS-NO-SUCH-SET: ENOENT',
      'add 10.0.0.2 to set KIPVS-NO-SUCH-SET: ENOENT',
    ]);
    expect(await client.listSet('KIPVS-NO-SUCH-SET')).toBeNull();
  });
});

describe('sets', () => {
  it('creates an identical set again without error, and refuses a different one of the same name', async () => {
    const name = freshName('KIPVS-AGAIN');
    const spec: IpsetSetSpec = { type: 'hash:ip', family: 'inet', comment: true };
    await client.create(name, spec);
    await expect(client.create(name, spec)).resolves.toBeUndefined();
    await expect(client.create(name, spec, { strict: true })).rejects.toThrow(`create set ${name} (hash:ip family inet): EEXIST`);
    await expect(client.create(name, { type: 'hash:net', family: 'inet' })).rejects.toThrow(/EEXIST/);
  });

  it('renames, swaps, flushes and destroys sets, and the tool sees each step', async () => {
    const first = freshName('KIPVS-A');
    const second = freshName('KIPVS-B');
    const renamed = freshName('KIPVS-C');
    await client.create(first, { type: 'hash:ip', family: 'inet' });
    await client.create(second, { type: 'hash:ip', family: 'inet' });
    await client.add(first, [{ ip: '10.0.0.1' }]);
    await client.add(second, [{ ip: '10.0.0.2' }, { ip: '10.0.0.3' }]);

    await client.swap(first, second);
    expect(sorted(toolListing(first).members)).toEqual(['10.0.0.2', '10.0.0.3']);
    expect(toolListing(second).members).toEqual(['10.0.0.1']);

    await client.rename(second, renamed);
    const names = lines(ipset('list', '-n'));
    expect(names).toContain(renamed);
    expect(names).not.toContain(second);
    expect(toolListing(renamed).members).toEqual(['10.0.0.1']);
    await expect(client.rename(first, renamed)).rejects.toThrow(`rename set ${first} to ${renamed}: IPSET_ERR_EXIST_SETNAME2`);

    await client.flush(first);
    expect(toolListing(first).members).toEqual([]);
    expect(lines(ipset('list', '-t', first))).toContain('Number of entries: 0');

    await client.destroy(first);
    await client.destroy(renamed);
    expect(lines(ipset('list', '-n'))).not.toEqual(expect.arrayContaining([first]));
    expect(lines(ipset('list', '-n'))).not.toEqual(expect.arrayContaining([renamed]));
    await expect(client.destroy(first)).resolves.toBeUndefined();
    await expect(client.destroy(first, { strict: true })).rejects.toThrow(`destroy set ${first}: ENOENT`);
  });

  it('refuses to swap sets of different types with IPSET_ERR_TYPE_MISMATCH', async () => {
    const hashIp = freshName('KIPVS-SWAP-IP');
    const hashNet = freshName('KIPVS-SWAP-NET');
    await client.create(hashIp, { type: 'hash:ip', family: 'inet' });
    await client.create(hashNet, { type: 'hash:ip,port', family: 'inet' });
    await expect(client.swap(hashIp, hashNet)).rejects.toThrow(`swap sets ${hashIp} and ${hashNet}: IPSET_ERR_TYPE_MISMATCH`);
  });

  it("lists the names of every set, its own and the tool's, whatever their type", async () => {
    const own = freshName('KIPVS-NAMES');
    const foreign = freshName('TOOL-MAC');
    await client.create(own, { type: 'bitmap:port', range: { from: 0, to: 1023 } });
    ipset('create', foreign, 'hash:mac');
    const names = await client.listSetNames();
    expect(names).toEqual(lines(ipset('list', '-n')));
    expect(names).toEqual(expect.arrayContaining([own, foreign]));
    // Listing the members of a type kipvs does not read fails clearly instead of guessing.
    await expect(client.listSet(foreign)).rejects.toThrow(`set "${foreign}": set type "hash:mac" is not one kipvs reads`);
  });

  it('counts an iptables rule as a reference, and will not destroy or rename a set in use', async () => {
    const name = freshName('KIPVS-USED');
    await client.create(name, { type: 'hash:ip', family: 'inet' });
    const rule = ['INPUT', '-m', 'set', '--match-set', name, 'src', '-j', 'ACCEPT'];
    ns.run('iptables-legacy', ['-A', ...rule]);
    try {
      expect((await client.listSet(name))?.header.references).toBe(1);
      expect(toolListing(name).fields.get('References')).toBe('1');
      await expect(client.destroy(name)).rejects.toThrow(`destroy set ${name}: IPSET_ERR_BUSY`);
      await expect(client.rename(name, `${name}-X`)).rejects.toThrow(`rename set ${name} to ${name}-X: IPSET_ERR_REFERENCED`);
    } finally {
      ns.run('iptables-legacy', ['-D', ...rule]);
    }
    await client.destroy(name);
    expect(lines(ipset('list', '-n'))).not.toContain(name);
  });

  it('leaves a set the tool created, and kipvs did not touch, exactly as it was', async () => {
    const foreign = freshName('TOOL-UNTOUCHED');
    ns.run('ipset', ['restore'], `create ${foreign} hash:ip,port family inet hashsize 128 comment\nadd ${foreign} 10.9.9.9,udp:53 comment "theirs"\n`);
    const before = ipset('save', foreign);
    const own = freshName('KIPVS-NEIGHBOUR');
    await client.create(own, { type: 'hash:ip,port', family: 'inet', comment: true });
    await client.add(own, [{ ip: '10.9.9.9', protocol: 'udp', port: 53, comment: 'ours' }]);
    await client.del(own, [{ ip: '10.9.9.9', protocol: 'udp', port: 53 }]);
    await client.flush(own);
    await client.listSetNames();
    await client.destroy(own);
    expect(ipset('save', foreign)).toBe(before);
  });
});
