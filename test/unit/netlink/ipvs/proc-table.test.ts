import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MAX_LINE_LENGTH, parseProcIpvsTable, ProcIpvsTableParser, ProcTableError, type ProcVirtualServer } from '../../../../src/netlink/ipvs/proc-table.js';
import { canonicalAddress } from '../../../../src/ip.js';
import { PROC_HEADER as HEADER, renderProcTable as render, procKeyText as keyText } from '../../support/proc-table.js';
import { defined } from '../../../support/defined.js';

describe('parseProcIpvsTable', () => {
  it('reads IPv4 and IPv6 virtual servers, firewall marks, persistence, one-packet scheduling and every forwarding method', () => {
    const text =
      HEADER +
      'TCP  0A600001:0050 rr \n' +
      '  -> 0AF40102:1F90      Masq    1      3          7         \n' +
      '  -> 0AF40103:1F90      Local   0      0          0         \n' +
      'UDP  0A60000A:0035 sh ops persistent 10800 FFFFFFFF\n' +
      '  -> 0AF40104:0035      Tunnel  5      0          0         \n' +
      'SCTP  [fd00:0096:0000:0000:0000:0000:0000:0001]:0050 wrr persistent 300 80000000\n' +
      '  -> [fd00:0244:0000:0000:0000:0000:0000:0002]:1F90      Route   2      1          0         \n' +
      'FWM  00000007 mh ops \n' +
      '  -> 0AF40105:0000      Route   1      0          0         \n';
    const table = parseProcIpvsTable(text);
    expect([...table.byAddress.keys()]).toEqual(['TCP 10.96.0.1:80', 'UDP 10.96.0.10:53', 'SCTP [fd00:96::1]:80']);
    expect(table.byAddress.get('TCP 10.96.0.1:80')).toEqual({
      key: { family: 'inet', protocol: 'TCP', address: '10.96.0.1', port: 80 },
      scheduler: 'rr',
      onePacket: false,
      destinations: [
        { family: 'inet', address: '10.244.1.2', port: 8080, forwarding: 'masq', weight: 1, activeConns: 3, inactiveConns: 7 },
        { family: 'inet', address: '10.244.1.3', port: 8080, forwarding: 'local', weight: 0, activeConns: 0, inactiveConns: 0 },
      ],
    });
    expect(table.byAddress.get('UDP 10.96.0.10:53')).toMatchObject({ onePacket: true, persistent: { timeout: 10800, netmask: 0xffffffff } });
    expect(table.byAddress.get('UDP 10.96.0.10:53')?.destinations[0]?.forwarding).toBe('tunnel');
    expect(table.byAddress.get('SCTP [fd00:96::1]:80')).toMatchObject({
      key: { family: 'inet6', address: 'fd00:96::1' },
      persistent: { timeout: 300, netmask: 0x80000000 },
      destinations: [{ family: 'inet6', address: 'fd00:244::2', port: 8080, forwarding: 'route', weight: 2, activeConns: 1 }],
    });
    expect(table.byFwmark.get(7)).toEqual([
      {
        key: { fwmark: 7 },
        scheduler: 'mh',
        onePacket: true,
        destinations: [{ family: 'inet', address: '10.244.1.5', port: 0, forwarding: 'route', weight: 1, activeConns: 0, inactiveConns: 0 }],
      },
    ]);
  });

  it('reads an empty table (the header alone)', () => {
    expect(parseProcIpvsTable(HEADER)).toEqual({ byAddress: new Map(), byFwmark: new Map() });
  });

  it('keeps two firewall-mark services of one mark (IPv4 and IPv6), which the table does not tell apart', () => {
    const table = parseProcIpvsTable(`${HEADER}FWM  00000009 rr \nFWM  00000009 wrr \n`);
    expect(defined(table.byFwmark.get(9), 'mark 9').map((service) => service.scheduler)).toEqual(['rr', 'wrr']);
  });

  it('skips a foreign virtual server of a protocol kipvs does not program, with its real servers, and reads the others', () => {
    const text =
      HEADER +
      'ICMP  0A600002:0000 rr \n' +
      '  -> 0AF40109:0000      Route   1      0          0         \n' +
      'TCP  0A600001:0050 rr \n' +
      '  -> 0AF40102:1F90      Masq    1      0          0         \n' +
      'IP_47  0A600003:0000 wrr persistent 300 FFFFFFFF\n' +
      '  -> 0AF40104:0000      Tunnel  1      0          0         \n';
    const table = parseProcIpvsTable(text);
    expect([...table.byAddress.keys()]).toEqual(['TCP 10.96.0.1:80']);
    expect(table.byAddress.get('TCP 10.96.0.1:80')?.destinations.map((d) => d.address)).toEqual(['10.244.1.2']);
    expect(table.byFwmark.size).toBe(0);
  });

  it.each([
    ['a header that is not the table', 'Prot LocalAddress:Port\n', /line 1: not the header/],
    ['a real server before any virtual server', `${HEADER}  -> 0AF40102:1F90      Masq    1      0          0\n`, /line 4: a real server before/],
    ['an unknown forwarding method', `${HEADER}TCP  0A600001:0050 rr \n  -> 0AF40102:1F90      Bypass  1      0          0\n`, /unknown forwarding method/],
    ['a short address', `${HEADER}TCP  0A6001:0050 rr \n`, /IPv4 address is not 8 hex digits/],
    ['a compressed IPv6 address', `${HEADER}TCP  [fd00::1]:0050 rr \n`, /not an IPv6 address as %pI6 prints one/],
    ['unknown flags', `${HEADER}TCP  0A600001:0050 rr sticky\n`, /unknown virtual server flags "sticky"/],
    ['a last line without its newline', `${HEADER}TCP  0A600001:0050 rr `, /the last line has no newline/],
    ['a truncated header', 'IP Virtual Server version 1.2.1 (size=4096)\n', /the header is incomplete/],
  ])('refuses %s', (_what, text, message) => {
    expect(() => parseProcIpvsTable(text)).toThrow(message);
    expect(() => parseProcIpvsTable(text)).toThrow(ProcTableError);
  });

  it('fails a line longer than the limit without buffering the rest of it', () => {
    const parser = new ProcIpvsTableParser(() => undefined);
    parser.push(HEADER);
    expect(() => {
      for (let i = 0; i < 100; i++) parser.push('x'.repeat(64));
    }).toThrow(new RegExp(`longer than ${MAX_LINE_LENGTH}`));
  });

  const ipv4 = fc.ipV4();
  const ipv6 = fc.ipV6().map((address) => defined(canonicalAddress(address), `the canonical form of ${address}`));
  const destination = fc
    .oneof(fc.record({ family: fc.constant('inet' as const), address: ipv4 }), fc.record({ family: fc.constant('inet6' as const), address: ipv6 }))
    .chain(({ family, address }) =>
      fc.record({
        family: fc.constant(family),
        address: fc.constant(address),
        port: fc.integer({ min: 0, max: 65535 }),
        forwarding: fc.constantFrom('masq' as const, 'local' as const, 'tunnel' as const, 'route' as const),
        weight: fc.integer({ min: 0, max: 0x7fffffff }),
        activeConns: fc.integer({ min: 0, max: 0x7fffffff }),
        inactiveConns: fc.integer({ min: 0, max: 0x7fffffff }),
      }),
    );
  const serviceKey = fc.oneof(
    fc.record({
      family: fc.constant('inet' as const),
      protocol: fc.constantFrom('TCP' as const, 'UDP' as const, 'SCTP' as const),
      address: ipv4,
      port: fc.integer({ min: 0, max: 65535 }),
    }),
    fc.record({
      family: fc.constant('inet6' as const),
      protocol: fc.constantFrom('TCP' as const, 'UDP' as const, 'SCTP' as const),
      address: ipv6,
      port: fc.integer({ min: 0, max: 65535 }),
    }),
    fc.record({ fwmark: fc.integer({ min: 1, max: 0xffffffff }) }),
  );
  const service: fc.Arbitrary<ProcVirtualServer> = fc
    .record({
      key: serviceKey,
      scheduler: fc.constantFrom('rr', 'wrr', 'lc', 'sh', 'mh', 'none'),
      onePacket: fc.boolean(),
      persistent: fc.option(fc.record({ timeout: fc.integer({ min: 1, max: 0x7fffffff }), netmask: fc.integer({ min: 0, max: 0xffffffff }) }), {
        nil: undefined,
      }),
      destinations: fc.array(destination, { maxLength: 4 }),
    })
    .map(({ persistent, ...rest }) => ({
      ...rest,
      // The kernel prints "ops" only for IPv4 and firewall-mark services.
      onePacket: rest.onePacket && !('family' in rest.key && rest.key.family === 'inet6'),
      ...(persistent ? { persistent } : {}),
    }));

  it('reads back what the kernel prints, whole or in chunks cut anywhere', () => {
    fc.assert(
      fc.property(fc.uniqueArray(service, { maxLength: 8, selector: keyText }), fc.array(fc.nat(), { maxLength: 6 }), (services, cuts) => {
        const text = render(services);
        const parsed: ProcVirtualServer[] = [];
        const parser = new ProcIpvsTableParser((service) => parsed.push(service));
        let at = 0;
        for (const cut of [...cuts.map((c) => c % (text.length + 1))].sort((a, b) => a - b)) {
          parser.push(text.slice(at, cut));
          at = cut;
        }
        parser.push(text.slice(at));
        parser.finish();

        expect(parsed.sort((a, b) => keyText(a).localeCompare(keyText(b)))).toEqual([...services].sort((a, b) => keyText(a).localeCompare(keyText(b))));
      }),
    );
  });

  it('fails with ProcTableError, never anything else, on random text after the header', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (noise) => {
        try {
          parseProcIpvsTable(HEADER + noise);
        } catch (error) {
          expect(error).toBeInstanceOf(ProcTableError);
        }
      }),
    );
  });
});
