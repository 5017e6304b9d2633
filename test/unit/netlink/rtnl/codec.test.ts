// Encodings against bytes iproute2 6.1 sent for the same commands (captured with `strace -e
// write=3` in the UML sandbox), and decodings of answers the 6.1 kernel gave.
import { describe, expect, it } from 'vitest';
import { NetlinkEncodeError } from '../../../../src/netlink/errors.js';
import { encodeMessage, NLM_F_ACK, NLM_F_REQUEST } from '../../../../src/netlink/message.js';
import {
  addAddressMessage,
  checkLinkName,
  createDummyLinkMessage,
  decodeAddress,
  decodeLink,
  deleteAddressMessage,
  parseInterfaceAddress,
  setLinkUpMessage,
  type RtnlMessage,
} from '../../../../src/netlink/rtnl/codec.js';
import { IFA_F_NODAD, IFA_F_PERMANENT } from '../../../../src/netlink/rtnl/wire.js';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

/** The whole datagram the connection would send for `message` with iproute2's sequence number. */
const asSent = (message: RtnlMessage, seq: number): Buffer => encodeMessage(message.type, NLM_F_REQUEST | NLM_F_ACK | message.flags, seq, message.payload);

describe('rtnetlink requests, byte for byte', () => {
  it('creates a dummy link left down as `ip link add kube-ipvs0 type dummy` (and kube-proxy) does', () => {
    // iproute2 writes IFLA_INFO_KIND without its NUL (nla_len 9, at offset 0x34); we write it
    // NUL-terminated (nla_len 10) as the kernel's own answers do. NLA_STRING accepts both, and the
    // padded bytes are identical.
    const iproute2 = hex(`
      40000000 1000 0506 014f046b 00000000
      00 00 0000 00000000 00000000 00000000
      0f00 0300 6b7562652d69707673300000
      1000 1200 0900 0100 64756d6d79000000`);
    const ours = Buffer.from(iproute2);
    ours[0x34] = 0x0a;
    expect(asSent(createDummyLinkMessage('kube-ipvs0'), 0x6b044f01).toString('hex')).toBe(ours.toString('hex'));
  });

  it('brings a link up as `ip link set kube-ipvs0 up` does, changing only IFF_UP', () => {
    const iproute2 = hex(`
      20000000 1000 0500 024f046b 00000000
      00 00 0000 04000000 01000000 01000000`);
    expect(asSent(setLinkUpMessage(4), 0x6b044f02).toString('hex')).toBe(iproute2.toString('hex'));
  });

  it('adds an IPv4 service IP as `ip addr add 10.96.0.1/32 dev kube-ipvs0` does', () => {
    const iproute2 = hex(`
      28000000 1400 0506 024f046b 00000000
      02 20 00 00 04000000
      0800 0200 0a600001
      0800 0100 0a600001`);
    const message = addAddressMessage(4, parseInterfaceAddress('10.96.0.1/32'));
    expect(asSent(message, 0x6b044f02).toString('hex')).toBe(iproute2.toString('hex'));
  });

  it('adds an IPv6 service IP with IFA_F_NODAD as `ip addr add fd00::1/128 dev kube-ipvs0 nodad` does', () => {
    const iproute2 = hex(`
      40000000 1400 0506 024f046b 00000000
      0a 80 02 00 04000000
      1400 0200 fd000000000000000000000000000001
      1400 0100 fd000000000000000000000000000001`);
    const message = addAddressMessage(4, parseInterfaceAddress('fd00:0:0::1'));
    expect(asSent(message, 0x6b044f02).toString('hex')).toBe(iproute2.toString('hex'));
  });

  it('deletes an address as `ip addr del 10.96.0.1/32 dev kube-ipvs0` does', () => {
    const iproute2 = hex(`
      28000000 1500 0500 024f046b 00000000
      02 20 00 00 04000000
      0800 0200 0a600001
      0800 0100 0a600001`);
    const message = deleteAddressMessage(4, parseInterfaceAddress('10.96.0.1/32'));
    expect(asSent(message, 0x6b044f02).toString('hex')).toBe(iproute2.toString('hex'));
  });
});

describe('rtnetlink answers from the kernel', () => {
  it('reads a dummy link: index, name, kind from IFLA_LINKINFO, flags, mtu; other attributes pass by', () => {
    // An RTM_NEWLINK payload for kube-ipvs0, cut down from a 6.1 answer: ifinfomsg, IFLA_IFNAME,
    // TXQLEN, OPERSTATE, LINKMODE, MTU, MIN_MTU, GROUP, CARRIER, QDISC, XDP (nested), PAD, LINKINFO.
    const payload = hex(`
      00 00 0100 05000000 c3000100 00000000
      0f00 0300 6b7562652d69707673300000
      0800 0d00 e8030000
      0500 1000 00000000
      0500 1100 00000000
      0800 0400 dc050000
      0800 3200 00000000
      0800 1b00 00000000
      0500 2100 01000000
      0c00 0600 6e6f717565756500
      0c00 2b00 0500 0200 00000000
      0400 2a00
      1000 1200 0a00 0100 64756d6d79000000`);
    expect(decodeLink(payload)).toEqual({ index: 5, name: 'kube-ipvs0', kind: 'dummy', up: true, flags: 0x100c3, mtu: 1500 });
  });

  it('reads a link without IFLA_LINKINFO (lo, a NIC) as having no kind', () => {
    const payload = hex(`00 00 0403 01000000 08000000 00000000  0700 0300 6c6f0000  0800 0400 00000100`);
    expect(decodeLink(payload)).toEqual({ index: 1, name: 'lo', kind: null, up: false, flags: 0x8, mtu: 65536 });
  });

  it('reads an IPv4 address with its label and the flags of IFA_FLAGS', () => {
    const payload = hex(`
      02 20 80 00 05000000
      0800 0100 0a600001
      0800 0200 0a600001
      0f00 0300 6b7562652d69707673300000
      0800 0800 80000000
      1400 0600 ffffffff ffffffff 31030000 31030000`);
    expect(decodeAddress(payload)).toEqual({
      family: 'inet',
      address: '10.96.0.1',
      prefixLength: 32,
      cidr: '10.96.0.1/32',
      linkIndex: 5,
      flags: IFA_F_PERMANENT,
      scope: 0,
      label: 'kube-ipvs0',
    });
  });

  it('reads an IPv6 address from IFA_ADDRESS alone, in canonical form', () => {
    const payload = hex(`
      0a 80 00 00 05000000
      1400 0100 fd000000000000000000000000000a01
      0800 0800 82000000`);
    expect(decodeAddress(payload)).toMatchObject({ family: 'inet6', cidr: 'fd00::a01/128', flags: IFA_F_PERMANENT | IFA_F_NODAD });
  });

  it('skips address families other than IPv4 and IPv6', () => {
    expect(decodeAddress(hex('11 00 00 00 05000000'))).toBeNull();
  });
});

describe('what a request may carry', () => {
  it('takes link names the kernel takes and refuses the others with the reason', () => {
    expect(checkLinkName('kube-ipvs0')).toBe('kube-ipvs0');
    expect(checkLinkName('a'.repeat(15))).toBe('a'.repeat(15));
    for (const bad of ['', 'a'.repeat(16), '.', '..', 'a/b', 'a:b', 'a b', 'tab\t']) {
      expect(() => checkLinkName(bad), bad).toThrow(NetlinkEncodeError);
    }
    expect(() => createDummyLinkMessage('kube-ipvs0-too-long')).toThrow(/kube-ipvs0-too-long.*longer than 15 bytes/);
  });

  it('reads an address with or without a prefix length, bare meaning the host prefix', () => {
    expect(parseInterfaceAddress('10.96.0.1')).toEqual({ family: 'inet', address: '10.96.0.1', prefixLength: 32 });
    expect(parseInterfaceAddress('fd00:0::0:1')).toEqual({ family: 'inet6', address: 'fd00::1', prefixLength: 128 });
    expect(parseInterfaceAddress('192.0.2.9/24')).toEqual({ family: 'inet', address: '192.0.2.9', prefixLength: 24 });
    expect(parseInterfaceAddress('::ffff:10.0.0.1/96').address).toBe('::ffff:10.0.0.1');
  });

  it('refuses what is not an address with a prefix length the family allows', () => {
    for (const bad of ['10.96.0.1/33', '10.96.0.300', 'fd00::1/129', 'fe80::1%eth0', '10.0.0.1/', '10.0.0.1/+1', '10.0.0.1/1e1', 'kube']) {
      expect(() => parseInterfaceAddress(bad), bad).toThrow(NetlinkEncodeError);
    }
  });
});
