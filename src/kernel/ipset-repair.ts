// Replacing a kube-proxy-named set that exists with a type kipvs cannot use (someone's
// `ipset create KUBE-CLUSTER-IP hash:mac`, a set of the wrong family): the set is kube-proxy's name,
// so kipvs owns it, and without it the Services that need it are not masqueraded or filtered.
import { createHash } from 'node:crypto';
import type { IpsetClient } from '../netlink/ipset/client.js';
import { IpsetRequestError } from '../netlink/ipset/errors.js';
import type { IpsetSetSpec } from '../netlink/ipset/types.js';
import { NetlinkRequestError } from '../netlink/errors.js';

/** A name of at most 31 characters (IPSET_MAXNAMELEN), one per set replaced. */
export function temporarySetName(name: string): string {
  return `KIPVS-TMP-${createHash('sha256').update(name).digest('hex').slice(0, 12)}`;
}

/**
 * Replaces `name` by an empty set of `spec`. The new set is made first under a temporary name, so a
 * kernel without the type's module leaves the old one alone. Then, as kube-proxy's sets are swapped:
 * `swap` exchanges the two atomically and the iptables rules that use the name follow it. The kernel
 * swaps only sets of the same features and family (ip_set_swap() answers IPSET_ERR_TYPE_MISMATCH);
 * a set of another type is destroyed and the new one renamed, which the kernel allows only while
 * nothing references it (IPSET_ERR_BUSY): then the old set stays and the error says why.
 */
export async function replaceIpset(ipsets: IpsetClient, name: string, spec: IpsetSetSpec): Promise<void> {
  const temporary = temporarySetName(name);
  await ipsets.destroy(temporary); // left by a run that died half-way
  await ipsets.create(temporary, spec, { strict: true });
  try {
    await ipsets.swap(temporary, name);
  } catch (error) {
    if (!hasErrno(error, 'IPSET_ERR_TYPE_MISMATCH')) {
      await ipsets.destroy(temporary);
      throw error;
    }
    await destroyThenRename(ipsets, name, temporary);
    return;
  }
  await ipsets.destroy(temporary); // now the old set, referenced by nothing
}

async function destroyThenRename(ipsets: IpsetClient, name: string, temporary: string): Promise<void> {
  try {
    await ipsets.destroy(name);
  } catch (error) {
    await ipsets.destroy(temporary);
    if (hasErrno(error, 'IPSET_ERR_BUSY') && error instanceof NetlinkRequestError) {
      throw new IpsetRequestError(error.operation, error.errno, 'a set of another type cannot be swapped, and iptables rules or a list:set still use this one');
    }
    throw error;
  }
  await ipsets.rename(temporary, name);
}

const hasErrno = (error: unknown, name: string): boolean => error instanceof NetlinkRequestError && error.errnoName === name;
