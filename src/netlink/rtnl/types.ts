// Public types for links and their addresses, named as `ip link` and `ip addr` name them, and the
// errors that concern a link by name.
import type { AddressFamily } from '../../ip.js';
import { KipvsError } from '../../errors.js';

/** The dummy interface kube-proxy's IPVS mode binds every service IP to. */
export const KUBE_IPVS_LINK = 'kube-ipvs0';

export interface Link {
  readonly index: number;
  readonly name: string;
  /** IFLA_INFO_KIND (`dummy`, `veth`, `ipip`, ...); null for links without one (lo, NICs). */
  readonly kind: string | null;
  /** Administratively up (IFF_UP), as `ip link set NAME up` makes it. */
  readonly up: boolean;
  /** All IFF_* flags as the kernel reports them. */
  readonly flags: number;
  readonly mtu: number;
}

/** An address as it is written and keyed: family, canonical address, prefix length. */
export interface InterfaceAddressKey {
  readonly family: AddressFamily;
  /** Canonical text (inet_ntop's), so `fd00:0::1` and `fd00::1` are one key. */
  readonly address: string;
  readonly prefixLength: number;
}

export interface InterfaceAddress extends InterfaceAddressKey {
  /** `10.96.0.1/32`, `fd00::1/128`: formatInterfaceAddress of this address. */
  readonly cidr: string;
  readonly linkIndex: number;
  /** IFA_F_* flags (IFA_F_NODAD, IFA_F_PERMANENT, ...). */
  readonly flags: number;
  /** RT_SCOPE_*: 0 for global, 253 for link-local (the kernel's own fe80::/64 on a link). */
  readonly scope: number;
  /** IFA_LABEL (IPv4 only). */
  readonly label?: string;
}

/** One formatting for keys, logs and errors: `10.96.0.1/32`. */
export function formatInterfaceAddress(key: Pick<InterfaceAddressKey, 'address' | 'prefixLength'>): string {
  return `${key.address}/${key.prefixLength}`;
}

export interface AddAddressOptions {
  /** An address the link already has (EEXIST) counts as added: for a sync that re-applies its state. */
  readonly ignoreExisting?: boolean;
}

export interface DeleteAddressOptions {
  /** An address the link does not have (EADDRNOTAVAIL) counts as deleted. */
  readonly ignoreMissing?: boolean;
}

export interface DeleteLinkOptions {
  /** A link that does not exist counts as deleted. */
  readonly ignoreMissing?: boolean;
}

/** The link a request names is not there (the kernel's ENODEV). */
export class LinkNotFoundError extends KipvsError {
  constructor(readonly link: string) {
    super('KIPVS_LINK_NOT_FOUND', `link ${link} does not exist`);
  }
}

/**
 * A link of the wanted name exists but is of another kind. kipvs refuses to use or change it: it
 * belongs to someone else, and binding service IPs to it would change what that link does.
 */
export class LinkKindError extends KipvsError {
  constructor(
    readonly link: string,
    readonly expectedKind: string,
    readonly actualKind: string | null,
  ) {
    super(
      'KIPVS_LINK_KIND',
      `link ${link} exists but is ${actualKind ? `a ${actualKind} link` : 'a device without a link kind'}, not a ${expectedKind}; ` +
        `kipvs leaves it alone (delete or rename it to let kipvs create its ${expectedKind} ${link})`,
    );
  }
}
