// A namespace's IPVS table counted while a sync runs, often and cheaply: /proc/net/ip_vs read
// through /proc/<pid>/net of a process that sleeps in the namespace. `ip netns exec … cat` starts
// two processes per look, which takes tens of milliseconds in UML on a busy machine: long enough
// for a whole sync of a few hundred Services to land between two looks.
import { spawn } from 'node:child_process';
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import type { TestNetns } from '../lab/netns.js';
import { GENEROUS_MS, waitUntil } from '../lab/wait.js';

export interface TableWatch {
  /**
   * Real servers in the table; with `addressPrefixHex`, those whose address starts so
   * (/proc/net/ip_vs prints an IPv4 address as 8 hex digits: 10.248.x.x is 0AF8). The file is
   * read in pieces: while the table changes, a line may be counted twice or missed.
   */
  realServers(addressPrefixHex?: string): number;
  close(): void;
}

/** A real server's line: `  -> 0AF40001:1F90 Masq 1 0 0` (IPv6: `  -> [FD00:…]:1F90`); not the header's `  -> RemoteAddress:Port`. */
const realServerPattern = (addressPrefixHex: string): RegExp => {
  if (!/^[0-9A-F]*$/.test(addressPrefixHex)) throw new Error(`not an upper-case hex prefix: ${addressPrefixHex}`);
  return new RegExp(`^ {2}-> ${addressPrefixHex === '' ? '[0-9A-F[]' : addressPrefixHex}`, 'gm');
};

/** Counts real servers in a text of /proc/net/ip_vs. */
export function countRealServers(text: string, addressPrefixHex = ''): number {
  return text.match(realServerPattern(addressPrefixHex))?.length ?? 0;
}

export async function watchTable(ns: Pick<TestNetns, 'name' | 'path'>): Promise<TableWatch> {
  const sleeper = spawn('ip', ['netns', 'exec', ns.name, 'sleep', 'infinity'], { stdio: 'ignore' });
  const pid = sleeper.pid;
  if (pid === undefined) throw new Error(`could not start a process in ${ns.name}`);
  let exited = false;
  sleeper.once('exit', () => {
    exited = true;
  });
  const close = (): void => {
    if (!exited) sleeper.kill('SIGKILL');
  };
  // `ip netns exec` enters the namespace, then becomes `sleep` (same pid).
  const namespace = `net:[${String(statSync(ns.path).ino)}]`;
  try {
    await waitUntil(
      `a process in ${ns.name}`,
      () => {
        if (exited) throw new Error(`the process meant to sleep in ${ns.name} exited`);
        try {
          return readlinkSync(`/proc/${String(pid)}/ns/net`) === namespace;
        } catch {
          return false;
        }
      },
      GENEROUS_MS,
      10,
    );
  } catch (error) {
    close();
    throw error;
  }
  return {
    realServers(addressPrefixHex = '') {
      if (exited) throw new Error(`the process sleeping in ${ns.name} exited`);
      return countRealServers(readFileSync(`/proc/${String(pid)}/net/ip_vs`, 'latin1'), addressPrefixHex);
    },
    close,
  };
}
