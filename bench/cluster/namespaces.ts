// Network namespaces for the measurements: a node with one address, nothing else.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { NODE_ADDRESS, NODE_ADDRESS_PREFIX } from '../workload.js';
import { DUMMY, sleep } from './shared.js';

/**
 * Every measurement that programs from empty gets a namespace of its own: after a flush, deleted
 * real servers stay on the namespace's trash list for up to two minutes and every new one is first
 * looked up there (ip_vs_trash_get_dest), which would make a reload quadratic (bench/netlink.mjs).
 */
const namespaces: string[] = [];
export function freshNamespace(): string {
  const name = `kipvs-bench-${randomBytes(3).toString('hex')}`;
  const ip = (...args: string[]): void => void spawnSync('ip', ['-n', name, ...args], { stdio: 'inherit' });
  if (spawnSync('ip', ['netns', 'add', name], { stdio: 'inherit' }).status !== 0) throw new Error(`cannot create network namespace ${name}`);
  namespaces.push(name);
  ip('link', 'set', 'lo', 'up');
  // The node's own interface and address, which NodePorts listen on (not part of any measurement).
  ip('link', 'add', 'eth0', 'type', 'dummy');
  ip('address', 'add', `${NODE_ADDRESS}/${NODE_ADDRESS_PREFIX}`, 'dev', 'eth0');
  ip('link', 'set', 'eth0', 'up');
  return name;
}

/**
 * Empties a namespace and deletes it once its measurement is over. Some of the kernel's tables
 * are shared by every namespace: in 6.1 IPVS hashes the virtual servers of all namespaces into one
 * table of 256 buckets (ip_vs_svc_table, per namespace only in later kernels), and IPv4 addresses
 * into one of 256 (inet_addr_lst). 12,000 virtual servers left behind in one namespace would
 * lengthen every lookup in the next: in a first version of this benchmark, ipvsadm -R at 10,000
 * took 168 s instead of 28 s behind the namespaces of the smaller sizes. Emptying synchronously
 * (ipvsadm -C, deleting the dummy interface) puts the shared tables back as they were; the
 * namespace's own teardown then has little left to do, and a pause lets it finish.
 */
export async function retireNamespace(name: string): Promise<void> {
  spawnSync('ip', ['netns', 'exec', name, 'ipvsadm', '-C'], { stdio: 'ignore' });
  spawnSync('ip', ['-n', name, 'link', 'delete', DUMMY], { stdio: 'ignore' });
  spawnSync('ip', ['netns', 'delete', name], { stdio: 'ignore' });
  namespaces.splice(namespaces.indexOf(name), 1);
  await sleep(1_000);
}

/** Deletes the namespaces not retired yet (a measurement that failed half way). */
export function deleteNamespaces(): void {
  for (const name of namespaces) spawnSync('ip', ['netns', 'delete', name]);
}
