import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeAttributes, encodeAttributes } from '../../../../src/netlink/attributes.js';
import { decodeDestination, decodeService, encodeDestination, encodeService } from '../../../../src/netlink/ipvs/codec.js';
import { commandAttributes, commandAttributesWithoutStats } from '../../../../src/netlink/ipvs/wire.js';
import type { IpvsDestination, IpvsService } from '../../../../src/netlink/ipvs/types.js';
import { NetlinkDecodeError, NetlinkEncodeError } from '../../../../src/netlink/errors.js';
import { canonicalAddress } from '../../../../src/ip.js';
import { defined } from '../../../support/defined.js';

const ipv4 = fc.ipV4();
const ipv6 = fc.ipV6().map((address) => defined(canonicalAddress(address), `the canonical form of ${address}`));
const port = fc.integer({ min: 0, max: 65535 });
const scheduler = fc.constantFrom('rr', 'wrr', 'lc', 'wlc', 'sh', 'dh', 'sed', 'nq', 'mh');

const service: fc.Arbitrary<IpvsService> = fc.oneof(
  fc.record({
    key: fc.oneof(
      fc.record({ family: fc.constant('inet' as const), protocol: fc.constantFrom('TCP' as const, 'UDP' as const, 'SCTP' as const), address: ipv4, port }),
      fc.record({ family: fc.constant('inet6' as const), protocol: fc.constantFrom('TCP' as const, 'UDP' as const, 'SCTP' as const), address: ipv6, port }),
      fc.record({ family: fc.constantFrom('inet' as const, 'inet6' as const), fwmark: fc.integer({ min: 1, max: 0xffffffff }) }),
    ),
    scheduler,
    flags: fc.integer({ min: 0, max: 0x3f }).map((f) => f & ~0x2),
    timeout: fc.integer({ min: 0, max: 0xffffffff }),
    netmask: fc.integer({ min: 0, max: 32 }),
  }),
);

const destination = (family: 'inet' | 'inet6'): fc.Arbitrary<IpvsDestination> =>
  fc.record({
    address: family === 'inet' ? ipv4 : ipv6,
    port,
    family: fc.constant(family),
    forwarding: fc.constantFrom('masq' as const, 'local' as const, 'tunnel' as const, 'route' as const),
    weight: fc.integer({ min: 0, max: 0x7fffffff }),
    upperThreshold: fc.integer({ min: 0, max: 0xffffffff }),
    lowerThreshold: fc.integer({ min: 0, max: 0xffffffff }),
  });

const wireRoundTrip = <T>(value: T, encode: (v: T) => object, decode: (w: never) => unknown): unknown => {
  const bytes = encodeAttributes(commandAttributes, encode(value) as never);
  return decode(decodeAttributes(commandAttributes, bytes) as never);
};

describe('IPVS codec', () => {
  it('encodes a TCP service as the kernel expects: af u16, protocol u16, 16-byte address, port in network order', () => {
    const wire = encodeService({
      key: { family: 'inet', protocol: 'TCP', address: '10.96.0.1', port: 443 },
      scheduler: 'rr',
      flags: 0,
      timeout: 0,
      netmask: 32,
    });
    expect(wire.af).toBe(2);
    expect(wire.protocol).toBe(6);
    expect([...defined(wire.addr, 'an address')]).toEqual([10, 96, 0, 1, ...new Array<number>(12).fill(0)]);
    expect(wire.port).toBe(443);
    const bytes = encodeAttributes(commandAttributes, { service: wire });
    const portAttribute = bytes.indexOf(Buffer.from([6, 0, 4, 0]));
    expect([...bytes.subarray(portAttribute + 4, portAttribute + 6)]).toEqual([0x01, 0xbb]);
    expect([...defined(wire.netmask, 'a netmask')]).toEqual([255, 255, 255, 255]);
  });

  it('encodes the persistence netmask as a mask for IPv4 and a prefix length for IPv6, as ipvsadm does', () => {
    const v4 = encodeService({ key: { family: 'inet', protocol: 'TCP', address: '10.0.0.1', port: 80 }, scheduler: 'rr', flags: 1, timeout: 60, netmask: 24 });
    expect([...defined(v4.netmask, 'a netmask')]).toEqual([255, 255, 255, 0]);
    const v6 = encodeService({ key: { family: 'inet6', protocol: 'TCP', address: 'fd00::1', port: 80 }, scheduler: 'rr', flags: 1, timeout: 60, netmask: 64 });
    expect(v6.netmask?.readUInt32LE(0)).toBe(64);
  });

  it('round-trips services (property)', () => {
    fc.assert(
      fc.property(service, (value) => {
        const netmask = value.key.family === 'inet6' ? value.netmask * 4 : value.netmask;
        const input = { ...value, netmask };
        const decoded = wireRoundTrip(
          input,
          (s) => ({ service: encodeService(s) }),
          (w: { service: never }) => decodeService(w.service),
        );
        expect(decoded).toEqual(input);
      }),
    );
  });

  it('round-trips real servers of both families (property)', () => {
    for (const family of ['inet', 'inet6'] as const) {
      fc.assert(
        fc.property(destination(family), (value) => {
          const decoded = wireRoundTrip(
            value,
            (d) => ({ dest: encodeDestination(d, family) }),
            (w: { dest: never }) => decodeDestination(w.dest, family),
          );
          expect(decoded).toEqual({ ...value, activeConns: 0, inactiveConns: 0, persistConns: 0 });
        }),
      );
    }
  });

  it('carries the real server weight as u32 both ways (the moby/ipvs u16 bug cannot happen)', () => {
    const dest: IpvsDestination = { address: '10.0.0.2', port: 80, family: 'inet', forwarding: 'masq', weight: 70000, upperThreshold: 0, lowerThreshold: 0 };
    const bytes = encodeAttributes(commandAttributes, { dest: encodeDestination(dest, 'inet') });
    expect(decodeDestination(defined(decodeAttributes(commandAttributes, bytes).dest, 'a real server'), 'inet').weight).toBe(70000);
  });

  it('reads a real server without its counters when asked, and without mistaking them for unknown attributes', () => {
    const dest: IpvsDestination = { address: '10.0.0.2', port: 80, family: 'inet', forwarding: 'masq', weight: 2, upperThreshold: 0, lowerThreshold: 0 };
    const stats = { conns: 5, inPackets: 6, outPackets: 7, inBytes: 8n, outBytes: 9n, cps: 0, inPps: 0, outPps: 0, inBps: 0, outBps: 0 };
    const stats64 = { conns: 5, inPackets: 6, outPackets: 7, inBytes: 8, outBytes: 9, cps: 0, inPps: 0, outPps: 0, inBps: 0, outBps: 0 };
    const bytes = encodeAttributes(commandAttributes, { dest: { ...encodeDestination(dest, 'inet'), activeConns: 3, stats, stats64 } });
    const full = defined(decodeAttributes(commandAttributes, bytes).dest, 'a real server');
    expect(decodeDestination(full, 'inet').stats?.conns).toBe(5);
    const lean = defined(decodeAttributes(commandAttributesWithoutStats, bytes).dest, 'a real server');
    expect(lean).not.toHaveProperty('stats');
    expect(lean).not.toHaveProperty('stats64');
    expect(lean).not.toHaveProperty('unknown');
    expect(decodeDestination(lean as never, 'inet')).toEqual({ ...dest, activeConns: 3, inactiveConns: 0, persistConns: 0 });
  });

  it('refuses bad input with an error that names it', () => {
    const key = { family: 'inet' as const, protocol: 'TCP' as const, address: '10.0.0.1', port: 80 };
    expect(() => encodeService({ key: { ...key, address: 'fd00::1' }, scheduler: 'rr', flags: 0, timeout: 0, netmask: 32 })).toThrow(/fd00::1.*IPv4/);
    expect(() => encodeService({ key: { ...key, port: 70000 }, scheduler: 'rr', flags: 0, timeout: 0, netmask: 32 })).toThrow(NetlinkEncodeError);
    expect(() => encodeService({ key, scheduler: 'r r', flags: 0, timeout: 0, netmask: 32 })).toThrow(/scheduler/);
    expect(() => encodeService({ key: { family: 'inet', fwmark: 0 }, scheduler: 'rr', flags: 0, timeout: 0, netmask: 32 })).toThrow(/mark/);
  });

  it('decoding random attribute bytes yields a typed error, never a crash (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          const wire = decodeAttributes(commandAttributes, Buffer.from(bytes));
          if (wire.service) decodeService(wire.service);
          if (wire.dest) decodeDestination(wire.dest, 'inet');
        } catch (error) {
          expect(error).toBeInstanceOf(NetlinkDecodeError);
        }
      }),
      { numRuns: 5000 },
    );
  });
});
