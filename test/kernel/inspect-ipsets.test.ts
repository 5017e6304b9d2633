// `kipvs inspect --ipsets` as a user runs it (the built CLI, in a process of its own), with
// `ipvsadm -Ln` and `ipset list` in the same namespace as the oracle: after the IPVS table, the
// output is the tool's, line for line.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatEntry, type IpsetEntry, type IpsetSet } from '../../src/netlink/ipset/types.js';
import { defined } from '../support/defined.js';
import type { TestNetns } from './helpers/netns.js';
import { Teardown } from './helpers/teardown.js';

const cli = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');

function kipvs(args: readonly string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const lines = (text: string): string[] => text.split('\n');

type Family = 'inet' | 'inet6';
const hashTypes = ['hash:ip', 'hash:ip,port', 'hash:ip,port,ip', 'hash:ip,port,net', 'hash:net'] as const;

/** A few members of each type and family, as `ipset restore` reads them (formatEntry's layout). */
function members(type: (typeof hashTypes)[number], family: Family, comment: boolean): IpsetEntry[] {
  const ip = (i: number): string => (family === 'inet' ? `10.96.${i >> 8}.${i & 255}` : `fd00:10:96::${i.toString(16)}`);
  // Networks of three prefix lengths, a host network (printed bare) among them.
  const net = (i: number): { address: string; prefix: number } => {
    const networks =
      family === 'inet'
        ? [
            { address: `10.${i}.0.0`, prefix: 16 },
            { address: `192.0.2.${i}`, prefix: 32 },
            { address: `${i * 16}.0.0.0`, prefix: 4 },
          ]
        : [
            { address: `2001:db8:${i.toString(16)}::`, prefix: 48 },
            { address: `fd00::${i.toString(16)}`, prefix: 128 },
            { address: `${(i * 0x1000).toString(16)}::`, prefix: 4 },
          ];
    return defined(networks[i % 3], `network ${String(i % 3)}`);
  };
  const protocol = (i: number): 'tcp' | 'udp' | 'sctp' => defined((['tcp', 'udp', 'sctp'] as const)[i % 3], `protocol ${String(i % 3)}`);
  const note = (i: number): { comment?: string } => (comment && i % 2 === 0 ? { comment: `ns-${i}/svc:port ${i}` } : {});
  return Array.from({ length: 6 }, (_, i): IpsetEntry => {
    switch (type) {
      case 'hash:ip':
        return { ip: ip(i + 1), ...note(i) };
      case 'hash:ip,port':
        return { ip: ip(i + 1), protocol: protocol(i), port: defined([0, 53, 443, 8080, 30000, 65535][i], `port ${String(i)}`), ...note(i) };
      case 'hash:ip,port,ip':
        return { ip: ip(i + 1), protocol: protocol(i), port: 80 + i, ip2: ip(i + 1), ...note(i) };
      case 'hash:ip,port,net':
        return { ip: ip(i + 1), protocol: protocol(i), port: 80, net: net(i + 1), ...note(i) };
      default:
        return { net: net(i + 1), ...note(i) };
    }
  });
}

const BIG_SET = 'KUBE-CLUSTER-IP';
const BIG_SET_SIZE = 4000;

/** `K-IP-PORT-NET-6-C`: the type, the family and whether entries carry comments. */
const setName = (type: string, family: Family, comment: boolean): string =>
  `K-${type.slice('hash:'.length).replaceAll(',', '-').toUpperCase()}-${family === 'inet' ? 4 : 6}${comment ? '-C' : ''}`;

/** Every type kube-proxy uses, both families, with and without comments, and one set of thousands. */
function restoreScript(): string {
  const script: string[] = [];
  for (const type of hashTypes) {
    for (const family of ['inet', 'inet6'] as const) {
      for (const comment of [true, false]) {
        const name = setName(type, family, comment);
        const sizes = family === 'inet6' ? ' hashsize 64 maxelem 1000' : '';
        script.push(`create ${name} ${type} family ${family}${sizes}${comment ? ' comment' : ''}`);
        script.push(...members(type, family, comment).map((entry) => `add ${name} ${formatEntry(entry)}`));
      }
    }
  }
  script.push('create KUBE-NODE-PORT-TCP bitmap:port range 0-65535 comment');
  script.push('add KUBE-NODE-PORT-TCP 30080 comment "default/web:http"', 'add KUBE-NODE-PORT-TCP 0', 'add KUBE-NODE-PORT-TCP 65535');
  script.push('create KUBE-NODE-PORT-UDP bitmap:port range 30000-32767', 'add KUBE-NODE-PORT-UDP 30053', 'add KUBE-NODE-PORT-UDP 32767');
  script.push('create KUBE-EMPTY hash:ip family inet');
  script.push(`create ${BIG_SET} hash:ip,port family inet comment`);
  for (let i = 0; i < BIG_SET_SIZE; i++) {
    const entry: IpsetEntry = {
      ip: `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
      protocol: i % 4 === 0 ? 'udp' : 'tcp',
      port: 80 + (i % 1000),
      ...(i % 3 === 0 ? {} : { comment: `ns-${i}/svc-${i}:port` }),
    };
    script.push(`add ${BIG_SET} ${formatEntry(entry)}`);
  }
  return `${script.join('\n')}\n`;
}

describe('kipvs inspect --ipsets', () => {
  let ns: TestNetns;
  const rule = ['INPUT', '-m', 'set', '--match-set', 'K-IP-4-C', 'src', '-j', 'ACCEPT'];
  const teardown = new Teardown();

  beforeAll(() => {
    if (!existsSync(cli)) throw new Error(`${cli} is missing: npm run build first (npm test does)`);
    ns = teardown.createTestNetns('kipvs-inspect-ipsets');
    ns.run('ipvsadm', ['-R'], '-A -t 10.96.0.1:443 -s rr\n-a -t 10.96.0.1:443 -r 10.244.1.2:6443 -m -w 1\n-A -u [fd00::a]:53 -s sh\n');
    // A set destroyed after the others were made leaves its index to the last one created, so the
    // kernel's order of sets is neither creation order nor the names' order.
    ns.run('ipset', ['restore'], 'create K-GONE hash:ip\ncreate K-KEPT hash:net\n');
    ns.run('ipset', ['restore'], restoreScript());
    ns.run('ipset', ['destroy', 'K-GONE']);
    ns.run('ipset', ['create', 'A-LAST', 'hash:ip,port', 'family', 'inet6', 'comment']);
    ns.run('ipset', ['add', 'A-LAST', 'fd00::1,tcp:80', 'comment', 'last but first']);
    ns.run('iptables-legacy', ['-A', ...rule]);
    teardown.add(() => ns.run('iptables-legacy', ['-D', ...rule]));
  });
  afterAll(() => teardown.run());

  it('prints every set after the IPVS table exactly as ipset list does, line for line', () => {
    const ours = kipvs(['inspect', '--ipsets', '--netns', ns.name]);
    expect(ours.stderr).toBe('');
    expect(ours.status).toBe(0);
    const ipvsadm = ns.run('ipvsadm', ['-Ln']);
    const ipsetList = ns.run('ipset', ['list']);
    // The fixture is what it claims: every set, in an order of the kernel's own, one of thousands.
    const names = lines(ns.run('ipset', ['list', '-n'])).filter(Boolean);
    expect(names).toHaveLength(20 + 2 + 1 + 1 + 2);
    expect(names[0]).toBe('A-LAST');
    expect(new Set(ipsetList.match(/^Type: .*$/gm))).toEqual(new Set([...hashTypes, 'bitmap:port'].map((type) => `Type: ${type}`)));
    expect(ipsetList).toContain(`Name: ${BIG_SET}\nType: hash:ip,port\n`);
    expect(ipsetList).toContain(`Number of entries: ${BIG_SET_SIZE}\n`);
    expect(ipsetList).toContain('References: 1\n');

    const ourLines = lines(ours.stdout);
    const ipvsLines = lines(ipvsadm).slice(0, -1);
    expect(ourLines.slice(0, ipvsLines.length)).toEqual(ipvsLines);
    expect(ourLines[ipvsLines.length]).toBe('');
    expect(ourLines.slice(ipvsLines.length + 1)).toEqual(lines(ipsetList));
  });

  it('prints the sets after the counters of --stats too', () => {
    const ours = kipvs(['inspect', '--stats', '--ipsets', '--netns', ns.path]);
    expect(ours.status).toBe(0);
    expect(ours.stdout).toBe(`${ns.run('ipvsadm', ['-Ln', '--stats'])}\n${ns.run('ipset', ['list'])}`);
  });

  it('holds every set, header and members, in the JSON, in the order ipset list shows them', () => {
    const ours = kipvs(['inspect', '--json', '--ipsets', '--netns', ns.name]);
    expect(ours.status).toBe(0);
    const parsed = JSON.parse(ours.stdout) as { services: unknown[]; ipsets: IpsetSet[] };
    expect(parsed.services).toHaveLength(2);
    expect(parsed.ipsets.map((set) => set.header.name)).toEqual(lines(ns.run('ipset', ['list', '-n'])).filter(Boolean));
    for (const set of parsed.ipsets) expect(set.entries, set.header.name).toHaveLength(set.header.entryCount);

    const big = defined(
      parsed.ipsets.find((set) => set.header.name === BIG_SET),
      `${BIG_SET} in the JSON`,
    );
    // The kernel may grow the hash while 4,000 entries go in (it depends on the set's random
    // initval): the tool's header says what it is now.
    const toolMembers = lines(ns.run('ipset', ['list', BIG_SET]));
    const toolHeader = defined(
      toolMembers.find((line) => line.startsWith('Header:')),
      `the Header: line of ipset list ${BIG_SET}`,
    );
    const toolHashSize = Number(defined(/hashsize (\d+)/.exec(toolHeader), `hashsize in "${toolHeader}"`)[1]);
    expect(toolHashSize).toBeGreaterThanOrEqual(1024);
    expect(big.header).toMatchObject({
      type: 'hash:ip,port',
      family: 'inet',
      comment: true,
      entryCount: BIG_SET_SIZE,
      hashSize: toolHashSize,
      maxElements: 65536,
    });
    expect(big.entries.map(formatEntry)).toEqual(toolMembers.slice(toolMembers.indexOf('Members:') + 1, -1));
    expect(parsed.ipsets.find((set) => set.header.name === 'KUBE-NODE-PORT-UDP')).toEqual({
      header: expect.objectContaining({ type: 'bitmap:port', range: { from: 30000, to: 32767 }, comment: false }) as IpsetSet['header'],
      entries: [{ port: 30053 }, { port: 32767 }],
    });
  });

  it('leaves the sets out of the JSON unless asked for', () => {
    const ours = kipvs(['inspect', '--json', '--netns', ns.name]);
    expect(ours.status).toBe(0);
    expect(Object.keys(JSON.parse(ours.stdout) as object)).toEqual(['info', 'services']);
  });
});

describe('kipvs inspect --ipsets in a namespace without sets, then with one kipvs cannot read', () => {
  let ns: TestNetns;
  const teardown = new Teardown();

  beforeAll(() => {
    if (!existsSync(cli)) throw new Error(`${cli} is missing: npm run build first (npm test does)`);
    ns = teardown.createTestNetns('kipvs-inspect-foreign');
  });
  afterAll(() => teardown.run());

  it('prints only the IPVS table when there is no set, as ipset list prints nothing', () => {
    expect(ns.run('ipset', ['list'])).toBe('');
    const ours = kipvs(['inspect', '--ipsets', '--netns', ns.name]);
    expect(ours.status).toBe(0);
    expect(ours.stdout).toBe(ns.run('ipvsadm', ['-Ln']));
  });

  it('shows a set it cannot decode by name and type, with the lines ipset list prints of any set, instead of failing', () => {
    ns.run('ipset', ['create', 'TOOL-MAC', 'hash:mac']);
    ns.run('ipset', ['add', 'TOOL-MAC', '02:00:00:00:00:01']);
    ns.run('ipset', ['create', 'TOOL-IP', 'hash:ip']);
    const ours = kipvs(['inspect', '--ipsets', '--netns', ns.name]);
    expect(ours.stderr).toBe('');
    expect(ours.status).toBe(0);
    const theirs = ns.run('ipset', ['list', 'TOOL-MAC']).split('\n');
    const shown = ours.stdout.slice(ours.stdout.indexOf('Name: TOOL-MAC')).split('\n');
    // Name, Type, Revision as ipset prints them; the options and members replaced by a note.
    expect(shown.slice(0, 3)).toEqual(theirs.slice(0, 3));
    expect(shown[3]).toBe('Header: (not decoded by kipvs: set "TOOL-MAC": set type "hash:mac" is not one kipvs reads)');
    expect(shown.slice(4, 8)).toEqual(theirs.slice(4, 8));
    expect(shown[8]).toBe('(1 not decoded by kipvs)');
    // The sets it can decode are shown as before, beside it.
    expect(ours.stdout).toContain(ns.run('ipset', ['list', 'TOOL-IP']).replace(/\n$/, ''));
  });
});
