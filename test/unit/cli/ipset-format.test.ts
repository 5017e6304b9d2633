// The `ipset list` layout from literal headers. The expected text is the tool's own output (ipset
// 7.17 on Linux 6.1) for sets with these headers; test/kernel/inspect-ipsets.test.ts compares
// against the tool directly.
import { describe, expect, it } from 'vitest';
import { formatIpsetHeader, formatIpsetListing } from '../../../src/cli/ipset-format.js';
import { renderInspect, type InspectResult } from '../../../src/cli/inspect.js';
import type { HashSetHeader, IpsetSet } from '../../../src/netlink/ipset/types.js';

const hashIpWithComments: IpsetSet = {
  header: {
    name: 'A',
    type: 'hash:ip',
    revision: 5,
    family: 'inet',
    hashSize: 1024,
    maxElements: 65536,
    comment: true,
    bucketSize: 12,
    initval: 0xb7b6ea38,
    memorySize: 340,
    references: 0,
    entryCount: 2,
  },
  entries: [{ ip: '10.0.0.1', comment: 'a b' }, { ip: '10.0.0.2' }],
};

const hashIpPortIpV6Header: HashSetHeader = {
  name: 'C',
  type: 'hash:ip,port,ip',
  revision: 6,
  family: 'inet6',
  hashSize: 1024,
  maxElements: 65536,
  comment: true,
  bucketSize: 12,
  initval: 0x6b579849,
  memorySize: 370,
  references: 0,
  entryCount: 1,
};
const hashIpPortIpV6: IpsetSet = {
  header: hashIpPortIpV6Header,
  entries: [{ ip: 'fd00::1', protocol: 'tcp', port: 80, ip2: 'fd00::1', comment: 'x' }],
};

const bitmapPortWithComments: IpsetSet = {
  header: { name: 'F', type: 'bitmap:port', revision: 3, range: { from: 30000, to: 32767 }, comment: true, memorySize: 22587, references: 0, entryCount: 2 },
  entries: [{ port: 30000, comment: 'np' }, { port: 31000 }],
};

const emptyBitmapPort: IpsetSet = {
  header: { name: 'G', type: 'bitmap:port', revision: 3, range: { from: 0, to: 65535 }, comment: false, memorySize: 8264, references: 0, entryCount: 0 },
  entries: [],
};

const emptyHashIpHeader: HashSetHeader = {
  name: 'H',
  type: 'hash:ip',
  revision: 5,
  family: 'inet',
  hashSize: 1024,
  maxElements: 65536,
  comment: false,
  bucketSize: 12,
  initval: 0xd79a5347,
  memorySize: 192,
  references: 0,
  entryCount: 0,
};
const emptyHashIp: IpsetSet = { header: emptyHashIpHeader, entries: [] };

describe('formatIpsetHeader', () => {
  it("prints a hash set's family and sizes, then the comment flag, then bucketsize and initval", () => {
    expect(formatIpsetHeader(hashIpWithComments.header)).toBe('family inet hashsize 1024 maxelem 65536 comment bucketsize 12 initval 0xb7b6ea38');
  });

  it('prints initval as eight hex digits, leading zeros kept', () => {
    expect(formatIpsetHeader({ ...emptyHashIpHeader, type: 'hash:ip,port', revision: 6, bucketSize: 4, initval: 0x00c0ffee })).toBe(
      'family inet hashsize 1024 maxelem 65536 bucketsize 4 initval 0x00c0ffee',
    );
    expect(formatIpsetHeader({ ...emptyHashIpHeader, initval: 0 })).toMatch(/ initval 0x00000000$/);
  });

  it('leaves out bucketsize and initval when the kernel does not report them (older revisions)', () => {
    const { bucketSize: _bucketSize, initval: _initval, ...older } = { ...hashIpPortIpV6Header, revision: 5 };
    expect(formatIpsetHeader(older)).toBe('family inet6 hashsize 1024 maxelem 65536 comment');
  });

  it("prints a bitmap:port set's range and no family", () => {
    expect(formatIpsetHeader(bitmapPortWithComments.header)).toBe('range 30000-32767 comment');
    expect(formatIpsetHeader(emptyBitmapPort.header)).toBe('range 0-65535');
  });
});

describe('formatIpsetListing', () => {
  it('prints sets as ipset list does: a blank line between two, Members: last even when empty', () => {
    const listing = [hashIpWithComments, hashIpPortIpV6, bitmapPortWithComments, emptyBitmapPort, emptyHashIp];
    expect(formatIpsetListing(listing).join('\n')).toBe(
      `Name: A
Type: hash:ip
Revision: 5
Header: family inet hashsize 1024 maxelem 65536 comment bucketsize 12 initval 0xb7b6ea38
Size in memory: 340
References: 0
Number of entries: 2
Members:
10.0.0.1 comment "a b"
10.0.0.2

Name: C
Type: hash:ip,port,ip
Revision: 6
Header: family inet6 hashsize 1024 maxelem 65536 comment bucketsize 12 initval 0x6b579849
Size in memory: 370
References: 0
Number of entries: 1
Members:
fd00::1,tcp:80,fd00::1 comment "x"

Name: F
Type: bitmap:port
Revision: 3
Header: range 30000-32767 comment
Size in memory: 22587
References: 0
Number of entries: 2
Members:
30000 comment "np"
31000

Name: G
Type: bitmap:port
Revision: 3
Header: range 0-65535
Size in memory: 8264
References: 0
Number of entries: 0
Members:

Name: H
Type: hash:ip
Revision: 5
Header: family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0xd79a5347
Size in memory: 192
References: 0
Number of entries: 0
Members:`,
    );
  });

  it("keeps the order of sets and members it is given: the kernel's, as the tool does", () => {
    const reversed: IpsetSet = { ...hashIpWithComments, entries: [...hashIpWithComments.entries].reverse() };
    const lines = formatIpsetListing([emptyHashIp, reversed]);
    expect(lines.filter((line) => line.startsWith('Name: '))).toEqual(['Name: H', 'Name: A']);
    expect(lines.slice(-2)).toEqual(['10.0.0.2', '10.0.0.1 comment "a b"']);
  });

  it('prints nothing for no sets', () => {
    expect(formatIpsetListing([])).toEqual([]);
  });
});

describe('renderInspect with ipsets', () => {
  const table: InspectResult = { info: { version: 0x010201, connectionTableSize: 4096 }, services: [] };
  const ipvsPart = [
    'IP Virtual Server version 1.2.1 (size=4096)',
    'Prot LocalAddress:Port Scheduler Flags',
    '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
  ];

  it('prints the sets after the IPVS table, a blank line between the two', () => {
    const text = renderInspect({ ...table, ipsets: [emptyBitmapPort] }, { ipsets: true });
    expect(text.split('\n')).toEqual([...ipvsPart, '', ...formatIpsetListing([emptyBitmapPort]), '']);
  });

  it('prints only the IPVS table when there are no sets, as ipset list prints nothing', () => {
    expect(renderInspect({ ...table, ipsets: [] }, { ipsets: true })).toBe(`${ipvsPart.join('\n')}\n`);
  });

  it('holds the sets, headers and members, in JSON', () => {
    const parsed = JSON.parse(renderInspect({ ...table, ipsets: [hashIpWithComments, emptyBitmapPort] }, { ipsets: true, json: true })) as InspectResult;
    expect(parsed.ipsets).toEqual([hashIpWithComments, emptyBitmapPort]);
    expect(parsed.services).toEqual([]);
  });
});
