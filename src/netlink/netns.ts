// Network namespaces. A netlink socket belongs to the namespace of the thread that created it,
// so to program another namespace's IPVS table, ipsets and links we enter it, create the socket,
// and return. Socket creation is synchronous, so no other JavaScript runs while we are inside.
import { closeSync, openSync } from 'node:fs';
import { nativeShims } from '../native.js';
import { KipvsError } from '../errors.js';

export class NetnsError extends KipvsError {
  constructor(
    readonly netns: string,
    message: string,
  ) {
    super('KIPVS_NETNS', `network namespace ${netns}: ${message}`);
  }
}

/** Resolves a namespace name (`pod-a`) to /run/netns/pod-a; paths are kept as they are. */
export function netnsPath(nameOrPath: string): string {
  return nameOrPath.includes('/') ? nameOrPath : `/run/netns/${nameOrPath}`;
}

export function withNetworkNamespace<T>(netns: string | undefined, create: () => T): T {
  if (netns === undefined) return create();
  const shims = nativeShims();
  const path = netnsPath(netns);
  let targetFd: number;
  try {
    targetFd = openSync(path, 'r');
  } catch (error) {
    throw new NetnsError(path, `cannot open: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  // The main thread's own namespace, to return to. /proc/thread-self is the calling thread's.
  const originalFd = openSync('/proc/thread-self/ns/net', 'r');
  try {
    try {
      shims.setns(targetFd, shims.CLONE_NEWNET);
    } catch (error) {
      throw new NetnsError(path, `cannot enter: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
    try {
      return create();
    } finally {
      shims.setns(originalFd, shims.CLONE_NEWNET);
    }
  } finally {
    closeSync(targetFd);
    closeSync(originalFd);
  }
}
