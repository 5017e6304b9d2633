import { constants } from 'node:os';

import { KipvsError } from '../errors.js';

const errnoNames = new Map<number, string>(Object.entries(constants.errno).map(([name, value]) => [value, name]));

/** The symbolic name of an errno value (`EEXIST`), or `E<number>` when unknown. */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `E${errno}`;
}

/**
 * The kernel refused one netlink request. `operation` names what we asked
 * (`add real server 10.244.1.2:8080 to TCP 10.96.0.1:80`), `errno` is the kernel's answer.
 */
export class NetlinkRequestError extends KipvsError {
  constructor(
    readonly operation: string,
    readonly errno: number,
    readonly extra?: string,
  ) {
    super('KIPVS_NETLINK_REQUEST', `${operation}: ${errnoName(errno)}${extra ? ` (${extra})` : ''}`);
  }

  get errnoName(): string {
    return errnoName(this.errno);
  }
}

/** Bytes from the kernel (or anyone) that do not form valid netlink messages or attributes. */
export class NetlinkDecodeError extends KipvsError {
  constructor(
    message: string,
    readonly offset?: number,
  ) {
    super('KIPVS_NETLINK_DECODE', offset === undefined ? message : `${message} at byte ${offset}`);
  }
}

/** A value that cannot be encoded into an attribute (out of range, wrong type). */
export class NetlinkEncodeError extends KipvsError {
  constructor(message: string) {
    super('KIPVS_NETLINK_ENCODE', message);
  }
}

/** The socket itself failed: send error, receive overrun (ENOBUFS), timeout, closed. */
export class NetlinkTransportError extends KipvsError {
  constructor(
    message: string,
    readonly errno?: number,
  ) {
    super('KIPVS_NETLINK_TRANSPORT', errno === undefined ? message : `${message}: ${errnoName(errno)}`);
  }
}

/**
 * A dump the kernel interrupted (NLM_F_DUMP_INTR: the table changed while it was read) on every
 * attempt: its answer may be inconsistent, so there is none. The caller treats the read as failed.
 */
export class DumpInterruptedError extends KipvsError {
  constructor(
    readonly operation: string,
    readonly attempts: number,
  ) {
    super(
      'KIPVS_NETLINK_DUMP_INTERRUPTED',
      `${operation}: the kernel interrupted the dump ${attempts} times in a row (NLM_F_DUMP_INTR), its answer may be inconsistent`,
    );
  }
}

/** A kernel facility kipvs needs is missing (IPVS module not loaded, ipset not built). */
export class KernelUnsupportedError extends KipvsError {
  constructor(message: string) {
    super('KIPVS_KERNEL_UNSUPPORTED', message);
  }
}

/** The caller lacks a privilege (CAP_NET_ADMIN) for an operation. */
export class PermissionError extends KipvsError {
  constructor(message: string) {
    super('KIPVS_PERMISSION', message);
  }
}
