import { describe, expect, it } from 'vitest';
import { errnoName, NetlinkRequestError, NetlinkTransportError } from '../../../../src/netlink/errors.js';
import { IpsetRequestError, ipsetErrnoName, setKindOf } from '../../../../src/netlink/ipset/errors.js';

describe('ipset errno names', () => {
  it.each([
    [4096, undefined, 'IPSET_ERR_PRIVATE'],
    [4097, undefined, 'IPSET_ERR_PROTOCOL'],
    [4102, 'hash', 'IPSET_ERR_TYPE_MISMATCH'],
    [4103, 'bitmap', 'IPSET_ERR_EXIST'],
    [4112, undefined, 'IPSET_ERR_COMMENT'],
    [4114, undefined, 'IPSET_ERR_SKBINFO'],
    [4352, 'hash', 'IPSET_ERR_HASH_FULL'],
    [4354, 'hash', 'IPSET_ERR_INVALID_PROTO'],
    [4357, 'hash', 'IPSET_ERR_HASH_RANGE'],
    [4352, 'bitmap', 'IPSET_ERR_BITMAP_RANGE'],
    [4353, 'bitmap', 'IPSET_ERR_BITMAP_RANGE_SIZE'],
  ] as const)('%i from a %s set is %s', (errno, kind, name) => {
    expect(ipsetErrnoName(errno, kind)).toBe(name);
  });

  it('names a type-specific errno by its offset when the kind of set is unknown or has no such error', () => {
    expect(ipsetErrnoName(4352)).toBe('IPSET_ERR_TYPE_SPECIFIC');
    expect(ipsetErrnoName(4353)).toBe('IPSET_ERR_TYPE_SPECIFIC+1');
    expect(ipsetErrnoName(4360, 'bitmap')).toBe('IPSET_ERR_TYPE_SPECIFIC+8');
    expect(ipsetErrnoName(4200)).toBe('IPSET_ERR_PRIVATE+104');
  });

  it('leaves ordinary errnos to errnoName, which itself is unchanged', () => {
    expect(ipsetErrnoName(2)).toBe('ENOENT');
    expect(ipsetErrnoName(17, 'hash')).toBe('EEXIST');
    expect(ipsetErrnoName(1)).toBe('EPERM');
    expect(errnoName(2)).toBe('ENOENT');
    expect(errnoName(4103)).toBe('E4103');
  });

  it('tells bitmap sets from hash sets', () => {
    expect(setKindOf('bitmap:port')).toBe('bitmap');
    expect(setKindOf('hash:ip,port,net')).toBe('hash');
  });
});

describe('IpsetRequestError', () => {
  it('reads like the brief: operation, then the ipset name', () => {
    const error = new IpsetRequestError('add 10.0.0.1,tcp:80 to set KUBE-CLUSTER-IP', 4102);
    expect(error.message).toBe('add 10.0.0.1,tcp:80 to set KUBE-CLUSTER-IP: IPSET_ERR_TYPE_MISMATCH');
    expect(error.errnoName).toBe('IPSET_ERR_TYPE_MISMATCH');
    expect(error.errno).toBe(4102);
    expect(error.code).toBe('KIPVS_NETLINK_REQUEST');
    expect(error).toBeInstanceOf(NetlinkRequestError);
    expect(error.name).toBe('IpsetRequestError');
  });

  it('keeps extended-ACK text and names type-specific errnos by the kind given', () => {
    expect(new IpsetRequestError('add 80 to set P', 4352, 'out of range', 'bitmap').message).toBe('add 80 to set P: IPSET_ERR_BITMAP_RANGE (out of range)');
  });

  it('relabels a NetlinkRequestError and passes anything else through', () => {
    const relabelled = IpsetRequestError.from(new NetlinkRequestError('flush set S', 4097));
    expect(relabelled).toBeInstanceOf(IpsetRequestError);
    expect((relabelled as Error).message).toBe('flush set S: IPSET_ERR_PROTOCOL');
    const transport = new NetlinkTransportError('closed');
    expect(IpsetRequestError.from(transport)).toBe(transport);
    const already = new IpsetRequestError('x', 4352, undefined, 'hash');
    expect(IpsetRequestError.from(already, 'bitmap')).toBe(already);
  });
});
