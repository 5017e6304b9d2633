// IPVS over generic netlink against the real kernel, with ipvsadm as the independent oracle in
// both directions.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IpvsClient } from '../../src/netlink/ipvs/client.js';
import type { IpvsDestination, IpvsOperation, IpvsService, IpvsServiceKey } from '../../src/netlink/ipvs/types.js';
import { NetlinkRequestError } from '../../src/netlink/errors.js';
import { formatIpvsadmListing } from '../../src/cli/ipvsadm-format.js';
import { defined } from '../support/defined.js';
import type { TestNetns } from './helpers/netns.js';
import { Teardown } from './helpers/teardown.js';
import { realServer, virtualServer } from '../support/ipvs-objects.js';

const tcp = (address: string, port: number): IpvsServiceKey => ({ family: address.includes(':') ? 'inet6' : 'inet', protocol: 'TCP', address, port });
const destination = (address: string, port: number, extra: Partial<IpvsDestination> = {}): IpvsDestination => realServer(address, { port, ...extra });

/** Drops the fields only a read-back has (counters, stats), to compare with what was programmed. */
const programmed = (d: IpvsDestination): IpvsDestination => {
  const { activeConns: _a, inactiveConns: _i, persistConns: _p, stats: _s, ...rest } = d;
  return rest;
};
const programmedService = (s: IpvsService): IpvsService => {
  const { stats: _s, ...rest } = s;
  return rest;
};

describe('IPVS over generic netlink, checked with ipvsadm', () => {
  let ns: TestNetns;
  let ipvs: IpvsClient;
  const teardown = new Teardown();

  beforeAll(async () => {
    ns = teardown.createTestNetns();
    ipvs = await IpvsClient.open({ netns: ns.path });
    teardown.add(() => {
      ipvs.close();
    });
  });
  afterAll(() => teardown.run());

  const ipvsadm = (...args: string[]): string => ns.run('ipvsadm', args);
  const reset = async (): Promise<void> => {
    await ipvs.flush();
    expect(ipvsadm('-Sn')).toBe('');
  };

  it('programs what ipvsadm then shows: IPv4/IPv6, TCP/UDP/SCTP, fwmark, persistence, forwarding methods', async () => {
    await reset();
    const web = tcp('10.96.0.1', 80);
    const dns = { family: 'inet', protocol: 'UDP', address: '10.96.0.10', port: 53 } as const;
    const sctp = { family: 'inet', protocol: 'SCTP', address: '10.96.0.20', port: 36412 } as const;
    const web6 = tcp('fd00:96::1', 443);
    const mark = { family: 'inet', fwmark: 7 } as const;
    const mark6 = { family: 'inet6', fwmark: 8 } as const;
    const operations: IpvsOperation[] = [
      { op: 'addService', service: virtualServer(web) },
      { op: 'addDestination', service: web, destination: destination('10.244.1.2', 8080, { weight: 3 }) },
      { op: 'addDestination', service: web, destination: destination('10.244.1.3', 8080, { forwarding: 'route', weight: 0 }) },
      {
        op: 'addDestination',
        service: web,
        destination: destination('10.244.1.4', 80, { forwarding: 'tunnel', tunnelType: 'ipip', tunnelPort: 0, tunnelFlags: 0 }),
      },
      { op: 'addService', service: virtualServer(dns, { scheduler: 'wrr', flags: 0x1, timeout: 10800, netmask: 24 }) },
      { op: 'addDestination', service: dns, destination: destination('10.244.2.2', 53, { upperThreshold: 100, lowerThreshold: 10 }) },
      { op: 'addService', service: virtualServer(sctp, { scheduler: 'lc' }) },
      { op: 'addService', service: virtualServer(web6, { scheduler: 'sh', flags: 0x8 | 0x10 }) },
      { op: 'addDestination', service: web6, destination: destination('fd00:244::2', 8443) },
      { op: 'addService', service: virtualServer(mark) },
      { op: 'addService', service: virtualServer(mark6, { flags: 0x1, timeout: 360, netmask: 64 }) },
    ];
    const outcomes = await ipvs.apply(operations);
    expect(outcomes.filter((o) => !o.ok)).toEqual([]);
    expect(ipvsadm('-Sn').trim().split('\n')).toEqual([
      '-A -t 10.96.0.1:80 -s rr',
      '-a -t 10.96.0.1:80 -r 10.244.1.2:8080 -m -w 3',
      '-a -t 10.96.0.1:80 -r 10.244.1.3:8080 -g -w 0',
      '-a -t 10.96.0.1:80 -r 10.244.1.4:80 -i -w 1 --tun-type ipip',
      '-A -u 10.96.0.10:53 -s wrr -p 10800 -M 255.255.255.0',
      '-a -u 10.96.0.10:53 -r 10.244.2.2:53 -m -w 1',
      '-A --sctp-service 10.96.0.20:36412 -s lc',
      '-A -t [fd00:96::1]:443 -s sh -b sh-fallback,sh-port',
      '-a -t [fd00:96::1]:443 -r [fd00:244::2]:8443 -m -w 1',
      '-A -f 7 -s rr',
      '-A -f 8 -6 -s rr -p 360 -M 64',
    ]);
    // ipvsadm -S leaves thresholds out; its threshold listing shows them.
    expect(ipvsadm('-Ln', '--thresholds', '-u', '10.96.0.10:53').split('\n')[3]).toMatch(/^ {2}-> 10\.244\.2\.2:53\s+100\s+10\s+0\s+0/);
    // And the inspect layout is ipvsadm -Ln, line for line.
    const info = await ipvs.info();
    expect(formatIpvsadmListing(info, await ipvs.snapshot(), 'connections')).toEqual(ipvsadm('-Ln').replace(/\n$/, '').split('\n'));
  });

  it('reads back exactly what ipvsadm programmed', async () => {
    await reset();
    ns.run(
      'ipvsadm',
      ['-R'],
      [
        '-A -t 10.0.0.1:80 -s wlc -p 600 -M 255.255.0.0',
        '-a -t 10.0.0.1:80 -r 10.1.0.1:80 -g -w 5',
        '-a -t 10.0.0.1:80 -r 10.1.0.2:8080 -m -w 2 -x 7 -y 3',
        '-A -u [fd00::53]:53 -s rr -o',
        '-a -u [fd00::53]:53 -r [fd00:1::1]:5353 -m -w 1',
        '-A --sctp-service [fd00::5]:9 -s nq',
        '-A -f 42 -s dh',
        '-a -f 42 -r 10.1.0.9:0 -i -w 1',
        '',
      ].join('\n'),
    );
    const table = await ipvs.snapshot();
    const byKey = new Map(table.map((entry) => [JSON.stringify(entry.service.key), entry]));
    const read = (key: IpvsServiceKey) => defined(byKey.get(JSON.stringify(key)), `the virtual server ${JSON.stringify(key)}`);
    expect(table).toHaveLength(4);
    expect(programmedService(read(tcp('10.0.0.1', 80)).service)).toEqual(
      virtualServer(tcp('10.0.0.1', 80), { scheduler: 'wlc', flags: 1, timeout: 600, netmask: 16 }),
    );
    expect(
      read(tcp('10.0.0.1', 80))
        .destinations.map(programmed)
        .sort((a, b) => a.port - b.port),
    ).toEqual([
      destination('10.1.0.1', 80, { forwarding: 'route', weight: 5 }),
      destination('10.1.0.2', 8080, { weight: 2, upperThreshold: 7, lowerThreshold: 3 }),
    ]);
    const udp6 = { family: 'inet6', protocol: 'UDP', address: 'fd00::53', port: 53 } as const;
    expect(programmedService(read(udp6).service)).toEqual(virtualServer(udp6, { flags: 0x4 }));
    expect(read(udp6).destinations.map(programmed)).toEqual([destination('fd00:1::1', 5353)]);
    const sctp6 = { family: 'inet6', protocol: 'SCTP', address: 'fd00::5', port: 9 } as const;
    expect(programmedService(read(sctp6).service)).toEqual(virtualServer(sctp6, { scheduler: 'nq' }));
    const mark = { family: 'inet', fwmark: 42 } as const;
    expect(programmedService(read(mark).service)).toEqual(virtualServer(mark, { scheduler: 'dh' }));
    expect(read(mark).destinations.map(programmed)).toEqual([
      destination('10.1.0.9', 0, { forwarding: 'tunnel', tunnelType: 'ipip', tunnelPort: 0, tunnelFlags: 0 }),
    ]);
    expect(formatIpvsadmListing(await ipvs.info(), table, 'connections')).toEqual(ipvsadm('-Ln').replace(/\n$/, '').split('\n'));
  });

  it('edits and deletes services and real servers', async () => {
    await reset();
    const key = tcp('10.96.5.5', 80);
    await ipvs.applyAll([
      { op: 'addService', service: virtualServer(key) },
      { op: 'addDestination', service: key, destination: destination('10.244.5.1', 80) },
      { op: 'addDestination', service: key, destination: destination('10.244.5.2', 80) },
    ]);
    await ipvs.applyAll([
      { op: 'editService', service: virtualServer(key, { scheduler: 'lc', flags: 1, timeout: 30 }) },
      { op: 'editDestination', service: key, destination: destination('10.244.5.1', 80, { weight: 0 }) },
      { op: 'deleteDestination', service: key, destination: { address: '10.244.5.2', port: 80 } },
    ]);
    expect(ipvsadm('-Sn').trim().split('\n')).toEqual(['-A -t 10.96.5.5:80 -s lc -p 30', '-a -t 10.96.5.5:80 -r 10.244.5.1:80 -m -w 0']);
    expect((await ipvs.getService(key))?.scheduler).toBe('lc');
    await ipvs.applyAll([{ op: 'deleteService', key }]);
    expect(ipvsadm('-Sn')).toBe('');
    expect(await ipvs.getService(key)).toBeNull();
  });

  it('reports each failed operation with its object and errno, and still applies the others', async () => {
    await reset();
    const key = tcp('10.96.6.6', 80);
    const missing = tcp('10.96.6.7', 80);
    const outcomes = await ipvs.apply([
      { op: 'addService', service: virtualServer(key) },
      { op: 'addService', service: virtualServer(key) },
      { op: 'addDestination', service: missing, destination: destination('10.244.6.1', 80) },
      { op: 'addService', service: virtualServer(tcp('10.96.6.8', 80), { scheduler: 'nosuch' }) },
      { op: 'addDestination', service: key, destination: destination('10.244.6.2', 80) },
      { op: 'addService', service: virtualServer(tcp('10.96.6.9', 80), { scheduler: 'bad name!' }) },
    ]);
    const messages = outcomes.map((o) => (o.ok ? 'ok' : o.error.message));
    expect(messages[0]).toBe('ok');
    expect(messages[1]).toBe('add virtual server TCP 10.96.6.6:80: EEXIST');
    expect(messages[2]).toBe('add real server 10.244.6.1:80 to TCP 10.96.6.7:80: ESRCH');
    expect(messages[3]).toBe('add virtual server TCP 10.96.6.8:80: ENOENT');
    expect(messages[4]).toBe('ok');
    expect(messages[5]).toMatch(/^add virtual server TCP 10.96.6.9:80: EINVAL \(scheduler name "bad name!" is not valid\)$/);
    const failed = defined(outcomes[1], 'the outcome of the second operation');
    expect(!failed.ok && failed.error).toBeInstanceOf(NetlinkRequestError);
    expect(!failed.ok && failed.error.errnoName).toBe('EEXIST');
    expect(ipvsadm('-Sn').trim().split('\n')).toEqual(['-A -t 10.96.6.6:80 -s rr', '-a -t 10.96.6.6:80 -r 10.244.6.2:80 -m -w 1']);
  });

  it('programs 10,000 real servers in one batched call and reads them all back', async () => {
    await reset();
    const operations: IpvsOperation[] = [];
    for (let i = 0; i < 1000; i++) {
      const key = tcp(`10.97.${i >> 8}.${i & 255}`, 80);
      operations.push({ op: 'addService', service: virtualServer(key) });
      // One service with 300 real servers: its listing spans several datagrams.
      for (let j = 0; j < (i === 0 ? 300 : 10); j++)
        operations.push({ op: 'addDestination', service: key, destination: destination(`10.${245 + (j >> 8)}.${j & 255}.${i & 255}`, 8000 + (i >> 8)) });
    }
    const outcomes = await ipvs.apply(operations);
    expect(outcomes.filter((o) => !o.ok)).toEqual([]);
    const saved = ipvsadm('-Sn').trim().split('\n');
    expect(saved.filter((line) => line.startsWith('-A'))).toHaveLength(1000);
    expect(saved.filter((line) => line.startsWith('-a'))).toHaveLength(10_290);
    const table = await ipvs.snapshot();
    expect(table.reduce((n, entry) => n + entry.destinations.length, 0)).toBe(10_290);
    expect(formatIpvsadmListing(await ipvs.info(), table, 'connections')).toEqual(ipvsadm('-Ln').replace(/\n$/, '').split('\n'));
  });

  it('reads and sets the connection timeouts', async () => {
    await ipvs.setTimeouts({ tcp: 1234, tcpFin: 56, udp: 78 });
    expect(ipvsadm('-L', '--timeout').trim()).toBe('Timeout (tcp tcpfin udp): 1234 56 78');
    expect(await ipvs.timeouts()).toEqual({ tcp: 1234, tcpFin: 56, udp: 78 });
    ipvsadm('--set', '900', '120', '300');
    expect(await ipvs.timeouts()).toEqual({ tcp: 900, tcpFin: 120, udp: 300 });
  });

  it('reports the IPVS version and connection table size as ipvsadm does', async () => {
    const info = await ipvs.info();
    const header = ipvsadm('-Ln').split('\n')[0];
    const version = `${info.version >> 16}.${(info.version >> 8) & 0xff}.${info.version & 0xff}`;
    expect(header).toBe(`IP Virtual Server version ${version} (size=${info.connectionTableSize})`);
  });
});
