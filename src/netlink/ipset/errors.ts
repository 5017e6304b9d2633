// ipset's own errnos (4096 and up) under their uapi names, so that an error reads
// `add 10.0.0.1,tcp:80 to set KUBE-CLUSTER-IP: IPSET_ERR_EXIST` rather than `E4103`.
import { errnoName, NetlinkRequestError } from '../errors.js';
import { IPSET_ERR_PRIVATE, IPSET_ERR_TYPE_SPECIFIC, ipsetBitmapErrors, ipsetCommonErrors, ipsetHashErrors } from './wire.js';
import type { IpsetSetType } from './types.js';

/** Which table of type-specific errors applies: they overlap (4352 is HASH_FULL and BITMAP_RANGE). */
export type IpsetSetKind = 'hash' | 'bitmap';

export const setKindOf = (type: IpsetSetType): IpsetSetKind => (type.startsWith('bitmap:') ? 'bitmap' : 'hash');

/**
 * The name of an errno the kernel's ipset answered with: IPSET_ERR_* for ipset's private range,
 * the ordinary name (ENOENT, EPERM, ...) for everything else. A type-specific errno needs the kind
 * of set to be named; without it, it is named by its offset (IPSET_ERR_TYPE_SPECIFIC+1).
 */
export function ipsetErrnoName(errno: number, kind?: IpsetSetKind): string {
  if (errno >= IPSET_ERR_TYPE_SPECIFIC) {
    const offset = errno - IPSET_ERR_TYPE_SPECIFIC;
    const table = kind === 'hash' ? ipsetHashErrors : kind === 'bitmap' ? ipsetBitmapErrors : undefined;
    const name = table?.[offset];
    if (name) return name;
    return offset === 0 ? 'IPSET_ERR_TYPE_SPECIFIC' : `IPSET_ERR_TYPE_SPECIFIC+${offset}`;
  }
  if (errno >= IPSET_ERR_PRIVATE) return ipsetCommonErrors[errno - IPSET_ERR_PRIVATE] ?? `IPSET_ERR_PRIVATE+${errno - IPSET_ERR_PRIVATE}`;
  return errnoName(errno);
}

/** A NetlinkRequestError whose errno is named the ipset way; `code` and `errno` are unchanged. */
export class IpsetRequestError extends NetlinkRequestError {
  private readonly ipsetName: string;

  constructor(operation: string, errno: number, extra?: string, kind?: IpsetSetKind) {
    super(operation, errno, extra);
    this.ipsetName = ipsetErrnoName(errno, kind);
    this.message = `${operation}: ${this.ipsetName}${extra ? ` (${extra})` : ''}`;
  }

  override get errnoName(): string {
    return this.ipsetName;
  }

  /** Re-labels a NetlinkRequestError with ipset's names; other errors pass through. */
  static from(error: NetlinkRequestError, kind?: IpsetSetKind): IpsetRequestError;
  static from(error: unknown, kind?: IpsetSetKind): unknown;
  static from(error: unknown, kind?: IpsetSetKind): unknown {
    if (error instanceof IpsetRequestError || !(error instanceof NetlinkRequestError)) return error;
    return new IpsetRequestError(error.operation, error.errno, error.extra, kind);
  }
}
